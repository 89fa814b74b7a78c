"""The feasibility builder's form as a cohort: read the fields, check them, write the YAML short form.

The builder is one plain HTML form whose fields hold the whole draft (no server-side state): the entry
event's concepts, an age range, sex, and a few criteria (an event that must or must not occur, at least
so many times, within a window of days around the index date, with a value range for measurements and
observations). :func:`cohort_yaml` writes the YAML form of :mod:`phds.cohorts.yaml_form` that every node
accepts; :func:`check_cohort` parses it back with :func:`phds.cohorts.parse_cohort` (and so circepy),
and names the form field of any problem, so the page can show it next to that field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from phds.cohorts import CohortDefinition, parse_cohort
from phds.errors import InputError
from phds.protocol.vocabulary import ConceptView

EVENT_DOMAINS: dict[str, str] = {
    "Condition": "condition",
    "Drug": "drug",
    "Procedure": "procedure",
    "Measurement": "measurement",
    "Observation": "observation",
    "Visit": "visit",
    "Device": "device",
}
"""OMOP domain_id → the YAML form's event key (:data:`phds.cohorts.yaml_form.DOMAINS`)."""
WITH_VALUE = frozenset({"Measurement", "Observation"})
SEXES = ("female", "male")
BREAKDOWNS = ("sex", "age_group", "year")
MAX_CRITERIA = 8
MAX_ENTRY_CONCEPTS = 50
_CRITERION_FIELD = re.compile(r"^c-(\d+)-concept$")
_WINDOW_DAYS = 100_000


@dataclass
class Criterion:
    """An event that must (``require``) or must not (``exclude``) occur around the index date."""

    concept: int
    kind: Literal["require", "exclude"] = "require"
    min_count: str = "1"
    start: str = ""
    end: str = ""
    value_min: str = ""
    value_max: str = ""
    descendants: bool = True


@dataclass
class CohortDraft:
    """The builder's fields as typed; numbers stay text until :func:`check_draft` reads them."""

    entry: list[int] = field(default_factory=list)
    entry_descendants: bool = True
    age_min: str = ""
    age_max: str = ""
    sex: list[str] = field(default_factory=list)
    criteria: list[Criterion] = field(default_factory=list)
    name: str = ""

    def concept_ids(self) -> list[int]:
        return list(dict.fromkeys([*self.entry, *(c.concept for c in self.criteria)]))


def _ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.strip().lstrip("-").isdigit()]


def _text(form: Mapping[str, Any], index: int, name: str) -> str:
    return str(form.get(f"c-{index}-{name}", "")).strip()


def draft_from_form(form: Mapping[str, Any], getlist: Any) -> CohortDraft:
    """The draft in a submitted form (*getlist(name)* returns every value of a repeated field)."""
    criteria: list[Criterion] = []
    indexes = sorted(int(m.group(1)) for key in form if (m := _CRITERION_FIELD.match(str(key))))
    for i in indexes[:MAX_CRITERIA]:
        concept = _ids([_text(form, i, "concept")])
        if concept:
            criteria.append(
                Criterion(
                    concept=concept[0],
                    kind="exclude" if _text(form, i, "kind") == "exclude" else "require",
                    min_count=_text(form, i, "min_count") or "1",
                    start=_text(form, i, "start"),
                    end=_text(form, i, "end"),
                    value_min=_text(form, i, "value_min"),
                    value_max=_text(form, i, "value_max"),
                    descendants=bool(form.get(f"c-{i}-descendants")),
                )
            )
    return CohortDraft(
        entry=list(dict.fromkeys(_ids([str(v) for v in getlist("entry")])))[:MAX_ENTRY_CONCEPTS],
        entry_descendants=bool(form.get("entry_descendants")),
        age_min=str(form.get("age_min", "")).strip(),
        age_max=str(form.get("age_max", "")).strip(),
        sex=[s for s in SEXES if s in getlist("sex")],
        criteria=criteria,
        name=str(form.get("cohort_name", "")).strip()[:200],
    )


def _integer(value: str, name: str, errors: dict[str, str], low: int, high: int, what: str) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        errors[name] = f"{what} must be a whole number"
        return None
    if not low <= number <= high:
        errors[name] = f"{what} must be between {low:,} and {high:,}"
        return None
    return number


def _decimal(value: str, name: str, errors: dict[str, str], what: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        errors[name] = f"{what} must be a number"
        return None


def _domain_key(concept: ConceptView) -> str | None:
    return EVENT_DOMAINS.get(concept.domain)


def cohort_mapping(
    draft: CohortDraft, concepts: Mapping[int, ConceptView]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The YAML form of *draft* as a mapping, and the problems found, by form field name."""
    errors: dict[str, str] = {}
    mapping: dict[str, Any] = {}
    if draft.name:
        mapping["name"] = draft.name
    unknown = [c for c in draft.concept_ids() if c not in concepts]
    if unknown:
        errors["q"] = f"the hub's vocabulary has no concept {', '.join(map(str, unknown))}; search again"
    entry = [concepts[c] for c in draft.entry if c in concepts]
    if not draft.entry:
        errors["entry"] = "pick at least one concept for the entry event (search, then “Add as entry”)"
    domains = sorted({c.domain for c in entry})
    if len(domains) > 1:
        errors["entry"] = (
            f"the entry event's concepts must share one domain, these are {' and '.join(domains)}: "
            "remove one, and add it as a criterion instead"
        )
    elif entry and _domain_key(entry[0]) is None:
        errors["entry"] = f"a {entry[0].domain} concept cannot be an event; pick a condition, drug, …"
    elif entry:
        key = _domain_key(entry[0])
        mapping["entry"] = {key: {"concepts": [c.id for c in entry], "descendants": draft.entry_descendants}}
    require: list[dict[str, Any]] = []
    exclude: list[dict[str, Any]] = []
    for i, criterion in enumerate(draft.criteria):
        item = _criterion(i, criterion, concepts.get(criterion.concept), errors)
        if item is not None:
            (require if criterion.kind == "require" else exclude).append(item)
    if require:
        mapping["require"] = require
    if exclude:
        mapping["exclude"] = exclude
    low = _integer(draft.age_min, "age_min", errors, 0, 130, "the youngest age")
    high = _integer(draft.age_max, "age_max", errors, 0, 130, "the oldest age")
    if low is not None and high is not None and low > high:
        errors["age_max"] = f"the oldest age ({high}) is below the youngest ({low})"
    elif low is not None or high is not None:
        mapping["age"] = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    if draft.sex and len(draft.sex) < len(SEXES):
        mapping["sex"] = list(draft.sex)
    return mapping, errors


def _criterion(
    i: int, criterion: Criterion, concept: ConceptView | None, errors: dict[str, str]
) -> dict[str, Any] | None:
    """One ``require``/``exclude`` item of the YAML form; problems go to ``c-<i>-<field>``."""
    if concept is None:
        return None
    key = _domain_key(concept)
    if key is None:
        errors[f"c-{i}-concept"] = f"a {concept.domain} concept cannot be an event; remove this criterion"
        return None
    item: dict[str, Any] = {key: {"concepts": [concept.id], "descendants": criterion.descendants}}
    start = _integer(criterion.start, f"c-{i}-start", errors, -_WINDOW_DAYS, _WINDOW_DAYS, "the first day")
    end = _integer(criterion.end, f"c-{i}-end", errors, -_WINDOW_DAYS, _WINDOW_DAYS, "the last day")
    if start is not None and end is not None and start > end:
        errors[f"c-{i}-end"] = f"the last day ({end}) is before the first ({start})"
    elif start is not None or end is not None:
        item["window"] = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    if criterion.kind == "require":
        count = _integer(criterion.min_count or "1", f"c-{i}-min_count", errors, 1, 10_000, "the count")
        if count is not None and count != 1:
            item["min_count"] = count
    if concept.domain in WITH_VALUE:
        low = _decimal(criterion.value_min, f"c-{i}-value_min", errors, "the lowest value")
        high = _decimal(criterion.value_max, f"c-{i}-value_max", errors, "the highest value")
        if low is not None and high is not None and low > high:
            errors[f"c-{i}-value_max"] = f"the highest value ({high:g}) is below the lowest ({low:g})"
        elif low is not None or high is not None:
            item["value"] = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    return item


def _describe(concept: ConceptView) -> str:
    return f"{concept.id} {concept.name} ({concept.domain}, {concept.vocabulary} {concept.code})"


def cohort_yaml(mapping: Mapping[str, Any], used: list[ConceptView]) -> str:
    """The YAML text of a cohort mapping, with a comment naming each concept in *used*."""
    lines = ["# Built with the PHDS portal's feasibility builder (the YAML form of docs/howto/cohorts.md)."]
    lines += [f"#   {_describe(c)}" for c in used]
    body = yaml.safe_dump(dict(mapping), sort_keys=False, default_flow_style=None, allow_unicode=True)
    return "\n".join(lines) + "\n" + body


def criterion_fields(draft: CohortDraft) -> dict[str, str]:
    """YAML-form locations (``require[0]``, ``exclude[1]``) → the builder's field of that criterion."""
    places: dict[str, str] = {}
    counters = {"require": 0, "exclude": 0}
    for i, criterion in enumerate(draft.criteria):
        places[f"{criterion.kind}[{counters[criterion.kind]}]"] = f"c-{i}-concept"
        counters[criterion.kind] += 1
    return places


def check_cohort(text: str, places: Mapping[str, str] | None = None) -> CohortDefinition:
    """Parse the cohort as the hub and nodes will; an error names the builder field it belongs to."""
    try:
        return parse_cohort(text, filename="the cohort")
    except InputError as exc:
        where = exc.field or ""
        target = "cohort"
        for prefix, name in (places or {}).items():
            if where.startswith(prefix):
                target = name
        if where.startswith("age"):
            target = "age_min"
        elif where.startswith("entry"):
            target = "entry"
        raise InputError(bare_message(exc), field=target) from None


def bare_message(exc: InputError) -> str:
    """The message of *exc* without its ``file …, line …, field …:`` prefix."""
    located = exc.file is not None or exc.line is not None or exc.field is not None
    return exc.message.split(": ", 1)[-1] if located else exc.message
