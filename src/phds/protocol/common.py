"""Types shared by every wire model: slugs, country codes, the strict base model."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
"""A lowercase DNS-label-like name (``gosh``, ``bambino-gesu``); hospitals' slugs are their node names."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""An ISO 3166-1 alpha-2 country code (``GB``, ``IT``)."""

DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class WireModel(BaseModel):
    """Base of every wire model: unknown fields are refused, so typos surface as 422."""

    model_config = ConfigDict(extra="forbid", frozen=True)
