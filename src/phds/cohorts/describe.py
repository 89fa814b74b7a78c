"""A cohort definition as a person reads it: concept sets, entry event, age and sex, criteria, exit.

For a data steward deciding on a study (the node's console) and anyone reviewing one. The definition is
parsed and checked as a node would run it (:func:`~phds.cohorts.circe.parse_cohort`; the YAML short form
is compiled to Circe first), then each part of the Circe expression becomes a short sentence. Concept
names come from the definition (ATLAS exports carry ``CONCEPT_NAME``) or from the caller's *names*
lookup; names and rule titles the requester wrote are shown as labels only, never as what is run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from phds.cohorts.circe import parse_cohort

__all__ = ["CohortDescription", "ConceptSetView", "Line", "describe_cohort"]

Names = Callable[[int], str | None]


@dataclass(frozen=True)
class Line:
    """One readable statement, with the statements it groups."""

    text: str
    children: tuple[Line, ...] = ()


@dataclass(frozen=True)
class ConceptSetView:
    """A concept set: its number, the requester's name for it, and each concept as text."""

    id: int
    name: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class CohortDescription:
    """Everything :func:`describe_cohort` found, in reading order."""

    name: str | None
    kind: str
    fingerprint: str
    concept_sets: tuple[ConceptSetView, ...]
    entry: tuple[Line, ...]
    age: str | None
    sex: str | None
    criteria: tuple[Line, ...]
    exit: tuple[str, ...]


_OPS = {
    "lt": "below {v}",
    "lte": "at most {v}",
    "eq": "exactly {v}",
    "gt": "above {v}",
    "gte": "at least {v}",
    "bt": "from {v} to {e}",
}
_GROUPS = {"ALL": "all of", "ANY": "any of", "AT_LEAST": "at least {n} of", "AT_MOST": "at most {n} of"}
_OCCURS = {0: "exactly {n}", 1: "at most {n}", 2: "at least {n}"}
_LIMITS = {"First": "each person's earliest", "All": "every", "Last": "each person's latest"}


def describe_cohort(definition: str | Mapping[str, Any], *, names: Names | None = None) -> CohortDescription:
    """Describe *definition* (Circe JSON or YAML text, or a Circe object); an unreadable one raises
    :class:`~phds.errors.InputError` as it would at a node."""
    text = definition if isinstance(definition, str) else json.dumps(definition)
    parsed = parse_cohort(text)
    expr = parsed.expression
    reader = _Reader(expr, names or (lambda _concept: None))
    primary = expr["PrimaryCriteria"]
    entry = [
        Line(f"{_LIMITS.get(_limit(primary), 'every')} event that is {reader.criterion(c)}", reader.nested(c))
        for c in primary["CriteriaList"]
    ]
    window = primary.get("ObservationWindow") or {}
    prior, post = window.get("PriorDays", 0), window.get("PostDays", 0)
    if prior or post:
        entry.append(Line(f"with at least {prior} days of observation before it and {post} days after it"))
    criteria: list[Line] = []
    if expr.get("AdditionalCriteria"):
        criteria.append(Line("the entry event must also meet", (reader.group(expr["AdditionalCriteria"]),)))
    for i, rule in enumerate(expr.get("InclusionRules") or [], start=1):
        label = f"inclusion rule {i}" + (f" (named “{rule['name']}”)" if rule.get("name") else "")
        criteria.append(Line(label, (reader.group(rule["expression"]),)))
    age, sex = reader.demographics()
    return CohortDescription(
        name=parsed.name,
        kind=parsed.kind,
        fingerprint=parsed.fingerprint,
        concept_sets=tuple(reader.views),
        entry=tuple(entry),
        age=age,
        sex=sex,
        criteria=tuple(criteria),
        exit=tuple(reader.exit()),
    )


def _limit(part: Mapping[str, Any]) -> str:
    return str((part.get("PrimaryCriteriaLimit") or {}).get("Type", "All"))


def _range(r: Mapping[str, Any], unit: str = "") -> str:
    text = _OPS[r["Op"]].format(v=r["Value"], e=r.get("Extent"))
    return f"{text} {unit}".rstrip()


def _words(name: str) -> str:
    """``ValueAsNumber`` as ``value as number``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


class _Reader:
    def __init__(self, expr: Mapping[str, Any], names: Names) -> None:
        self.expr = expr
        self.names = names
        self.sets = {int(s["id"]): s for s in expr.get("ConceptSets") or []}

    def concept(self, concept: Mapping[str, Any]) -> str:
        cid = int(concept["CONCEPT_ID"])
        name = concept.get("CONCEPT_NAME") or self.names(cid)
        return f"{cid} {name}" if name else f"{cid} (unnamed)"

    @cached_property
    def views(self) -> list[ConceptSetView]:
        out = []
        for set_id, cs in sorted(self.sets.items()):
            items = []
            for item in (cs.get("expression") or {}).get("items") or []:
                text = self.concept(item["concept"])
                if item.get("includeDescendants"):
                    text += ", with its descendants"
                if item.get("includeMapped"):
                    text += ", with mapped concepts"
                items.append(f"not {text}" if item.get("isExcluded") else text)
            out.append(ConceptSetView(set_id, str(cs.get("name") or f"concept set {set_id}"), tuple(items)))
        return out

    def codeset(self, set_id: int) -> str:
        """``concept set 0 (317009 Asthma, with its descendants)``; long sets are listed apart."""
        view = next((v for v in self.views if v.id == set_id), None)
        if view is None:
            return f"concept set {set_id}"
        named = f" “{view.name}”" if view.name != f"concept set {set_id}" else ""
        if len(view.items) <= 3:
            return f"concept set {set_id}{named} ({'; '.join(view.items)})"
        return f"concept set {set_id}{named} ({len(view.items)} concepts, listed with the concept sets)"

    def concepts(self, values: list[Mapping[str, Any]]) -> str:
        return ", ".join(self.concept(c) for c in values)

    def attribute(self, name: str, value: Any) -> str | None:
        if name == "CodesetId":
            return f"in {self.codeset(int(value))}"
        if name.endswith("SourceConcept"):
            return f"with a source concept in {self.codeset(int(value))}"
        if name == "First":
            return "the first in the person's history" if value else None
        if name == "Age":
            return f"at an age {_range(value, 'years')}"
        if name == "Gender":
            return f"of sex {self.concepts(value)}"
        if name.endswith("TypeExclude") or name == "CorrelatedCriteria":
            return None
        if isinstance(value, list):
            return f"with {_words(name)} {self.concepts(value)}"
        if isinstance(value, Mapping) and "Op" in value:
            return f"with {_words(name)} {_range(value)}"
        return f"with {_words(name)} {value}"

    def criterion(self, criterion: Mapping[str, Any]) -> str:
        ((kind, body),) = criterion.items()
        parts = [f"a {_words(kind)}"]
        for name, value in body.items():
            text = self.attribute(name, value)
            if text is not None and name.endswith("Type") and body.get(f"{name}Exclude"):
                text = text.replace("with ", "without ", 1)
            if text:
                parts.append(text)
        return " ".join(parts)

    def nested(self, criterion: Mapping[str, Any]) -> tuple[Line, ...]:
        ((_kind, body),) = criterion.items()
        group = body.get("CorrelatedCriteria")
        return (Line("and around it", (self.group(group),)),) if group else ()

    def group(self, group: Mapping[str, Any]) -> Line:
        kind = str(group.get("Type", "ALL"))
        head = _GROUPS[kind].format(n=group.get("Count"))
        items = [self.correlated(c) for c in group.get("CriteriaList") or []]
        items += [Line(t) for d in group.get("DemographicCriteriaList") or [] for t in self.demographic(d)]
        items += [self.group(g) for g in group.get("Groups") or []]
        if len(items) == 1 and kind in {"ALL", "ANY"}:
            return items[0]
        return Line(f"{head}:", tuple(items))

    def correlated(self, c: Mapping[str, Any]) -> Line:
        occurrence = c["Occurrence"]
        count = int(occurrence["Count"])
        how = "no" if (occurrence["Type"], count) == (0, 0) else _OCCURS[occurrence["Type"]].format(n=count)
        if occurrence.get("IsDistinct"):
            how += " distinct"
        text = f"{how}{' ' if how == 'no' else ' × '}{self.criterion(c['Criteria']).removeprefix('a ')}"
        text += f", {_window(c['StartWindow'], 'starting')}"
        if c.get("EndWindow"):
            text += f", {_window(c['EndWindow'], 'ending')}"
        if c.get("RestrictVisit"):
            text += ", in the same visit"
        if c.get("IgnoreObservationPeriod"):
            text += ", also outside the observation period"
        return Line(text, self.nested(c["Criteria"]))

    def demographic(self, d: Mapping[str, Any]) -> list[str]:
        out = []
        if d.get("Age"):
            out.append(f"age at the entry event {_range(d['Age'], 'years')}")
        if d.get("Gender"):
            out.append(f"sex: {self.concepts(d['Gender'])}")
        for name in ("Race", "Ethnicity"):
            if d.get(name):
                out.append(f"{name.lower()}: {self.concepts(d[name])}")
        for name in ("OccurrenceStartDate", "OccurrenceEndDate"):
            if d.get(name):
                out.append(f"entry event {_words(name).removeprefix('occurrence ')} {_range(d[name])}")
        return out

    def demographics(self) -> tuple[str | None, str | None]:
        """The age range and sex every member must have (from rules that apply to all)."""
        groups = [r["expression"] for r in self.expr.get("InclusionRules") or []]
        if self.expr.get("AdditionalCriteria"):
            groups.append(self.expr["AdditionalCriteria"])
        ages = [
            d["Age"]
            for g in groups
            if g.get("Type", "ALL") == "ALL"
            for d in g.get("DemographicCriteriaList") or []
            if d.get("Age")
        ]
        sexes = [
            d["Gender"]
            for g in groups
            if g.get("Type", "ALL") == "ALL"
            for d in g.get("DemographicCriteriaList") or []
            if d.get("Gender")
        ]
        age = "; and ".join(f"{_range(a, 'years')} at the entry event" for a in ages) or None
        sex = "; and ".join(self.concepts(s) for s in sexes) or None
        return age, sex

    def exit(self) -> list[str]:
        out = []
        offset = (self.expr.get("EndStrategy") or {}).get("DateOffset")
        if offset:
            field = "start" if offset["DateField"] == "StartDate" else "end"
            out.append(f"membership ends {offset['Offset']} days after the entry event's {field} date")
        else:
            out.append("membership ends at the end of the person's observation period")
        censoring = self.expr.get("CensoringCriteria") or []
        if censoring:
            what = "; ".join(self.criterion(c) for c in censoring)
            out.append(f"or earlier, at the first event that is {what}")
        pad = (self.expr.get("CollapseSettings") or {}).get("EraPad", 0)
        if pad:
            out.append(f"entries at most {pad} days apart are merged into one")
        window = self.expr.get("CensorWindow") or {}
        if window:
            out.append(
                f"only time from {window.get('StartDate', 'the start')} to "
                f"{window.get('EndDate', 'the end')} counts"
            )
        primary = _limit(self.expr["PrimaryCriteria"])
        for key, label in (("QualifiedLimit", "after the entry criteria"), ("ExpressionLimit", "in the end")):
            kind = (self.expr.get(key) or {}).get("Type")
            if kind and kind != primary:
                kept = {"First": "the earliest entry", "Last": "the latest entry"}.get(kind, "every entry")
                out.append(f"{label}, {kept} per person is kept")
        return out


def _window(window: Mapping[str, Any], verb: str) -> str:
    start, end = window.get("Start") or {"Coeff": -1}, window.get("End") or {"Coeff": 1}
    if "Days" not in start and "Days" not in end:
        return "at any time"
    anchor = "end" if window.get("UseIndexEnd") else "date"
    return f"{verb} between {_bound(start, anchor)} and {_bound(end, anchor)}"


def _bound(bound: Mapping[str, Any], anchor: str) -> str:
    side = "before" if bound.get("Coeff", 1) == -1 else "after"
    days = bound.get("Days")
    if days is None:
        return f"any time {side} the entry {anchor}"
    if days == 0:
        return f"the entry {anchor}"
    return f"{days} days {side} the entry {anchor}"
