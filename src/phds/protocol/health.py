"""The hub's health report."""

from __future__ import annotations

from typing import Literal

from phds.protocol.common import WireModel


class Health(WireModel):
    """``status`` is ``ok`` when the database answers, ``degraded`` otherwise."""

    status: Literal["ok", "degraded"]
    version: str
    database: Literal["ok", "unreachable"]
    database_backend: str
    schema_revision: str | None
