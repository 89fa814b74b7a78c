"""The catalogue: each hospital's latest published dataset profile."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from phds.protocol.common import WireModel


class CatalogueEntry(WireModel):
    """One hospital's published profile (``phds.omop.profile.DatasetProfile`` as JSON)."""

    id: int
    hospital: str
    display_name: str
    country: str | None
    node_id: uuid.UUID
    published_at: datetime
    profile: dict[str, Any]
