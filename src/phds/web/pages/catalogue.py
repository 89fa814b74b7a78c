"""The catalogue: every hospital's published dataset profile, filtered, and one hospital in detail.

The profiles are the HealthDCAT-AP descriptions each node publishes (:mod:`phds.omop.profile_model`),
read from the hub's ``GET /api/v1/catalogue``. Filtering is a plain GET form (bookmarkable, works
without JavaScript); HTMX replaces only the results table. The hospitals a requester ticks go to the
feasibility builder as ``/portal/feasibility?hospitals=a&hospitals=b``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from phds.protocol.catalogue import CatalogueEntry, profile_value
from phds.web.render import page
from phds.web.session import CurrentViewer

router = APIRouter()

RESULTS_ID = "catalogue-results"


def _count(value: Any) -> int:
    """A released count as a number for filtering: ``"<5"`` and unknown count as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class HospitalCard:
    """One hospital's catalogue entry, with the profile fields the portal shows."""

    hospital: str
    display_name: str
    country: str | None
    published_at: datetime
    profile: dict[str, Any]

    @classmethod
    def of(cls, entry: CatalogueEntry) -> HospitalCard:
        return cls(entry.hospital, entry.display_name, entry.country, entry.published_at, entry.profile)

    def get(self, name: str) -> Any:
        return profile_value(self.profile, name)

    @property
    def persons(self) -> Any:
        return self.get("number_of_unique_individuals")

    @property
    def ages(self) -> tuple[int | None, int | None]:
        return self.get("min_typical_age"), self.get("max_typical_age")

    @property
    def temporal(self) -> tuple[str | None, str | None]:
        temporal = self.get("temporal") or {}
        return profile_value(temporal, "start_date"), profile_value(temporal, "end_date")

    @property
    def domains(self) -> list[dict[str, Any]]:
        return [d for d in self.get("domains") or [] if isinstance(d, dict)]

    def searchable(self) -> str:
        """Every text a free-text filter looks in, lower case."""
        parts = [self.hospital, self.display_name, self.country or ""]
        parts += [str(self.get(k) or "") for k in ("title", "description", "publisher", "cdm_version")]
        parts += [str(d.get("domain", "")) for d in self.domains]
        parts += [str(s) for s in self.get("has_coding_system") or []]
        for top in self.get("top_concepts") or []:
            parts += [
                str(c.get("conceptName") or c.get("concept_name") or "") for c in top.get("concepts", [])
            ]
        return " ".join(parts).lower()


@dataclass
class CatalogueFilter:
    """The filter form's values, read leniently: a malformed number is an error next to its field."""

    country: str = ""
    min_persons: int | None = None
    age_min: int | None = None
    age_max: int | None = None
    q: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, country: str, min_persons: str, age_min: str, age_max: str, q: str) -> CatalogueFilter:
        chosen = cls(country=country.strip().upper()[:2], q=q.strip()[:200])
        chosen.min_persons = chosen._number("min_persons", min_persons, "Minimum persons")
        chosen.age_min = chosen._number("age_min", age_min, "Youngest age")
        chosen.age_max = chosen._number("age_max", age_max, "Oldest age")
        if chosen.age_min is not None and chosen.age_max is not None and chosen.age_min > chosen.age_max:
            chosen.errors["age_max"] = "The oldest age is below the youngest; swap them."
        return chosen

    def _number(self, name: str, text: str, label: str) -> int | None:
        if not text.strip():
            return None
        try:
            value = int(text)
        except ValueError:
            self.errors[name] = f"{label} must be a whole number, like 10."
            return None
        if value < 0:
            self.errors[name] = f"{label} cannot be negative."
            return None
        return value

    @property
    def active(self) -> bool:
        return bool(self.country or self.q or self.min_persons or self.age_min is not None or self.age_max)

    def matches(self, card: HospitalCard) -> bool:
        if self.country and (card.country or "").upper() != self.country:
            return False
        if self.min_persons is not None and _count(card.persons) < self.min_persons:
            return False
        if self.age_min is not None or self.age_max is not None:
            low, high = card.ages
            if low is None or high is None:
                return False  # no typical age range published: it cannot be said to overlap
            if self.age_max is not None and low > self.age_max:
                return False
            if self.age_min is not None and high < self.age_min:
                return False
        return not self.q or self.q.lower() in card.searchable()


async def hospital_cards(viewer: Any) -> list[HospitalCard]:
    """Every catalogue entry visible to *viewer*, by display name."""
    entries = [CatalogueEntry.model_validate(e) for e in await viewer.api.get("/catalogue")]
    return sorted((HospitalCard.of(e) for e in entries), key=lambda c: (c.display_name.lower(), c.hospital))


@router.get("/catalogue", response_class=HTMLResponse)
async def catalogue(
    request: Request,
    viewer: CurrentViewer,
    country: str = "",
    min_persons: str = "",
    age_min: str = "",
    age_max: str = "",
    q: str = "",
    hospitals: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """The hospitals, filtered; HTMX asks for the results table only (``HX-Target``)."""
    cards = await hospital_cards(viewer)
    chosen = CatalogueFilter.read(country, min_persons, age_min, age_max, q)
    shown = [c for c in cards if chosen.matches(c)]
    context: dict[str, Any] = {
        "cards": shown,
        "total": len(cards),
        "chosen": chosen,
        "countries": sorted({c.country for c in cards if c.country}),
        "picked": set(hospitals or []),
        "can_build": viewer.role == "requester",
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == RESULTS_ID:
        return page(request, "catalogue_results.html", viewer, oob=True, **context)
    return page(request, "catalogue.html", viewer, **context)


@router.get("/catalogue/{hospital}", response_class=HTMLResponse)
async def hospital(request: Request, viewer: CurrentViewer, hospital: str) -> Response:
    """One hospital's whole profile: ages, sex, domains, frequent concepts, coding systems."""
    entry = CatalogueEntry.model_validate(await viewer.api.get(f"/catalogue/{quote(hospital, safe='')}"))
    card = HospitalCard.of(entry)
    top = [t for t in card.get("top_concepts") or [] if isinstance(t, dict)]
    bands = [
        b for b in card.get("age_bands") or [] if isinstance(b, dict) and b.get("persons") not in (0, None)
    ]
    return page(
        request,
        "catalogue_hospital.html",
        viewer,
        card=card,
        top_concepts=top,
        age_bands=bands,
        profile_value=profile_value,
        can_build=viewer.role == "requester",
    )
