"""The catalogue: each hospital's latest published dataset profile."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic.alias_generators import to_camel

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


def profile_value(profile: Mapping[str, Any], name: str) -> Any:
    """A profile field by its snake_case name; nodes publish the camelCase HealthDCAT-AP names."""
    if name in profile:
        return profile[name]
    return profile.get(to_camel(name))
