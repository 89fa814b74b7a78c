"""Organisations: the network operator, hospitals (data holders) and requesters."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import model_validator

from phds.protocol.common import CountryCode, DisplayName, Slug, WireModel


class OrganisationKind(enum.StrEnum):
    """What an organisation is to the network."""

    OPERATOR = "operator"
    HOSPITAL = "hospital"
    REQUESTER = "requester"


class RequesterCategory(enum.StrEnum):
    """A requester's category; tariffs depend on it."""

    ACADEMIC = "academic"
    PUBLIC = "public"
    NON_PROFIT = "non-profit"
    SME = "sme"
    INDUSTRY = "industry"


class OrganisationCreate(WireModel):
    """An organisation to add. Hospitals need a country; requesters need a category."""

    name: Slug
    display_name: DisplayName
    kind: OrganisationKind
    country: CountryCode | None = None
    category: RequesterCategory | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> OrganisationCreate:
        if self.kind is OrganisationKind.HOSPITAL and self.country is None:
            raise ValueError("a hospital needs a country")
        if self.kind is OrganisationKind.REQUESTER and self.category is None:
            raise ValueError("a requester needs a category")
        if self.kind is not OrganisationKind.REQUESTER and self.category is not None:
            raise ValueError("only requesters have a category")
        return self


class Organisation(WireModel):
    """An organisation as the hub stores it."""

    id: uuid.UUID
    name: str
    display_name: str
    kind: OrganisationKind
    country: str | None
    category: RequesterCategory | None
    created_at: datetime
