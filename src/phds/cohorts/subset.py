"""The subset of OHDSI Circe cohort JSON that PHDS runs, checked before any node runs anything.

:func:`check_expression` walks an ATLAS export key by key against an allow-list. Whatever is not on
the list (a criterion type, an attribute, a text filter, an operator) is an :class:`InputError` whose
``field`` is the JSON path, e.g. ``PrimaryCriteria.CriteriaList[0].Specimen``. circepy itself ignores
unknown keys silently, so a misspelt attribute would otherwise change a cohort without a word.

The walk also returns the *semantic* expression: the same JSON without its cosmetic parts (title,
concept-set and rule names, concept metadata other than ``CONCEPT_ID``). Only that form is given to
circepy and hashed into the fingerprint, so no free text written by a requester reaches the database,
and renaming a cohort neither misses the node's cache nor evades the differencing guard.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from phds.errors import InputError

__all__ = ["ATTRIBUTE_KINDS", "SUPPORTED_CRITERIA", "CheckResult", "check_expression"]


@dataclass
class CheckResult:
    """The semantic expression and what it refers to."""

    expression: dict[str, Any]
    concept_ids: set[int] = field(default_factory=set)
    codeset_ids: set[int] = field(default_factory=set)
    codeset_refs: list[tuple[str, int]] = field(default_factory=list)


Check = Callable[[Any, str, CheckResult], Any]
DROP = object()  # a cosmetic value: validated loosely, left out of the semantic expression


def _fail(path: str, message: str) -> InputError:
    return InputError(message, field=path or "(root)")


INT64_MAX = 2**63 - 1


def _int(minimum: int | None = None) -> Check:
    def check(v: Any, path: str, res: CheckResult) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(path, f"expected a whole number, got {v!r}")
        if minimum is not None and v < minimum:
            raise _fail(path, f"must be at least {minimum}, got {v}")
        if abs(v) > INT64_MAX:
            raise _fail(path, f"{v} is too large")
        return v

    return check


def _number(v: Any, path: str, res: CheckResult) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _fail(path, f"expected a finite number, got {v!r}")
    if isinstance(v, int):
        return _int()(v, path, res)
    return int(v) if isinstance(v, float) and v.is_integer() else v  # 2.0 and 2 hash alike


def _bool(v: Any, path: str, res: CheckResult) -> Any:
    if not isinstance(v, bool):
        raise _fail(path, f"expected true or false, got {v!r}")
    return v


def _enum(*values: Any) -> Check:
    def check(v: Any, path: str, res: CheckResult) -> Any:
        if isinstance(v, bool) or v not in values:
            raise _fail(path, f"{v!r} is not supported; use one of {', '.join(map(repr, values))}")
        return v

    return check


def _date(v: Any, path: str, res: CheckResult) -> Any:
    try:
        return dt.date.fromisoformat(v).isoformat()
    except (TypeError, ValueError):
        raise _fail(path, f"expected a date YYYY-MM-DD, got {v!r}") from None


def _cosmetic(v: Any, path: str, res: CheckResult) -> Any:
    if v is not None and not isinstance(v, str | int | float | bool):
        raise _fail(path, f"expected text, got {type(v).__name__}")
    return DROP


def _list(item: Check, *, min_len: int = 0) -> Check:
    def check(v: Any, path: str, res: CheckResult) -> Any:
        if not isinstance(v, list):
            raise _fail(path, f"expected a list, got {type(v).__name__}")
        if len(v) < min_len:
            raise _fail(path, f"needs at least {min_len} item(s)")
        return [item(x, f"{path}[{i}]", res) for i, x in enumerate(v)]

    return check


def _obj(optional: dict[str, Check], required: tuple[str, ...] = (), *, open_cosmetic: bool = False) -> Check:
    """A JSON object with known keys; unknown keys are refused unless ``open_cosmetic``."""

    def check(v: Any, path: str, res: CheckResult) -> Any:
        if not isinstance(v, dict):
            raise _fail(path, f"expected an object, got {type(v).__name__}")
        out: dict[str, Any] = {}
        for key in required:
            if v.get(key) is None:
                raise _fail(_join(path, key), "is required")
        for key, value in v.items():
            sub = _join(path, str(key))
            spec = optional.get(key)
            if spec is None:
                if open_cosmetic:
                    continue
                raise _fail(sub, "not supported")
            if value is None:
                continue
            checked = spec(value, sub, res)
            if checked is not DROP:
                out[key] = checked
        return out

    return check


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _concept(v: Any, path: str, res: CheckResult) -> Any:
    out = _obj({"CONCEPT_ID": _int(0)}, ("CONCEPT_ID",), open_cosmetic=True)(v, path, res)
    res.concept_ids.add(out["CONCEPT_ID"])
    return out


_concepts = _list(_concept)


def _codeset_ref(v: Any, path: str, res: CheckResult) -> Any:
    _int(0)(v, path, res)
    res.codeset_refs.append((path, v))
    return v


_NUM_OPS = ("lt", "lte", "eq", "gt", "gte", "bt")  # circepy 0.3 has no "!eq" / "!bt"


def _range(value: Check) -> Check:
    base = _obj({"Op": _enum(*_NUM_OPS), "Value": value, "Extent": value}, ("Op", "Value"))

    def check(v: Any, path: str, res: CheckResult) -> Any:
        out = base(v, path, res)
        if out["Op"] == "bt" and "Extent" not in out:
            raise _fail(_join(path, "Extent"), "is required when Op is 'bt'")
        return out

    return check


_numeric_range = _range(_number)
_date_range = _range(_date)

#: Criterion attribute -> its kind of value, shared by every criterion type that has the attribute.
ATTRIBUTE_KINDS: dict[str, str] = {
    "CodesetId": "codeset",
    "First": "bool",
    "Abnormal": "bool",
    "Age": "numeric_range",
    "OccurrenceStartDate": "date_range",
    "OccurrenceEndDate": "date_range",
}
for _name in ("Condition", "Drug", "Procedure", "Measurement", "Observation", "Visit", "Device", "Death"):
    ATTRIBUTE_KINDS |= {f"{_name}Type": "concepts", f"{_name}TypeExclude": "bool"}
    ATTRIBUTE_KINDS[f"{_name}SourceConcept"] = "codeset"
for _name in (
    "Gender", "VisitType", "ConditionStatus", "RouteConcept", "Operator", "ValueAsConcept", "Unit",
    "Qualifier", "Modifier", "PlaceOfService", "PeriodType",
):  # fmt: skip
    ATTRIBUTE_KINDS[_name] = "concepts"
for _name in (
    "ValueAsNumber", "RangeLow", "RangeHigh", "RangeLowRatio", "RangeHighRatio", "Quantity", "DaysSupply",
    "Refills", "VisitLength", "EraLength", "OccurrenceCount", "GapDays", "AgeAtStart", "AgeAtEnd",
    "PeriodLength",
):  # fmt: skip
    ATTRIBUTE_KINDS[_name] = "numeric_range"
for _name in ("EraStartDate", "EraEndDate", "PeriodStartDate", "PeriodEndDate"):
    ATTRIBUTE_KINDS[_name] = "date_range"

_KIND_CHECKS: dict[str, Check] = {
    "codeset": _codeset_ref,
    "bool": _bool,
    "concepts": _concepts,
    "numeric_range": _numeric_range,
    "date_range": _date_range,
}
_ATTRIBUTES: dict[str, Check] = {name: _KIND_CHECKS[kind] for name, kind in ATTRIBUTE_KINDS.items()}

_COMMON = ("CodesetId", "First", "OccurrenceStartDate", "OccurrenceEndDate", "Age", "Gender")
_ERA = ("CodesetId", "First", "EraStartDate", "EraEndDate", "OccurrenceCount", "EraLength", "AgeAtStart",
        "AgeAtEnd", "Gender")  # fmt: skip

#: Criterion types PHDS runs, with the attributes allowed on each (besides CorrelatedCriteria).
SUPPORTED_CRITERIA: dict[str, tuple[str, ...]] = {
    "ConditionOccurrence": (*_COMMON, "ConditionType", "ConditionTypeExclude", "ConditionStatus",
                            "ConditionSourceConcept", "VisitType"),
    "DrugExposure": (*_COMMON, "DrugType", "DrugTypeExclude", "DrugSourceConcept", "RouteConcept",
                     "Quantity", "DaysSupply", "Refills", "VisitType"),
    "ProcedureOccurrence": (*_COMMON, "ProcedureType", "ProcedureTypeExclude", "ProcedureSourceConcept",
                            "Modifier", "Quantity", "VisitType"),
    "Measurement": (*_COMMON, "MeasurementType", "MeasurementTypeExclude", "MeasurementSourceConcept",
                    "Operator", "ValueAsNumber", "ValueAsConcept", "Unit", "RangeLow", "RangeHigh",
                    "RangeLowRatio", "RangeHighRatio", "Abnormal", "VisitType"),
    "Observation": (*_COMMON, "ObservationType", "ObservationTypeExclude", "ObservationSourceConcept",
                    "ValueAsNumber", "ValueAsConcept", "Unit", "Qualifier", "VisitType"),
    "VisitOccurrence": (*_COMMON, "VisitType", "VisitTypeExclude", "VisitSourceConcept", "VisitLength",
                        "PlaceOfService"),
    "DeviceExposure": (*_COMMON, "DeviceType", "DeviceTypeExclude", "DeviceSourceConcept", "Quantity"),
    "Death": ("CodesetId", "OccurrenceStartDate", "Age", "Gender", "DeathType", "DeathTypeExclude",
              "DeathSourceConcept"),
    "ConditionEra": _ERA,
    "DrugEra": (*_ERA, "GapDays"),
    "ObservationPeriod": ("First", "PeriodStartDate", "PeriodEndDate", "PeriodType", "PeriodLength",
                          "AgeAtStart", "AgeAtEnd"),
}  # fmt: skip


def _criterion(v: Any, path: str, res: CheckResult) -> Any:
    if not isinstance(v, dict) or len(v) != 1:
        raise _fail(
            path, "expected an object with exactly one criterion type, e.g. {'ConditionOccurrence': {...}}"
        )
    ((kind, body),) = v.items()
    sub = _join(path, str(kind))
    allowed = SUPPORTED_CRITERIA.get(kind)
    if allowed is None:
        raise _fail(sub, f"not supported; supported criteria: {', '.join(SUPPORTED_CRITERIA)}")
    checks = {a: _ATTRIBUTES[a] for a in allowed}
    checks["CorrelatedCriteria"] = _group
    out = _obj(checks)(body if body is not None else {}, sub, res)
    _one_concept_filter(out, sub)
    return {kind: out}


def _one_concept_filter(body: dict[str, Any], path: str) -> None:
    """circepy 0.3 fails ("Ambiguous field reference") when one criterion has two concept filters.

    Measured for every pair of attributes: CodesetId with a *SourceConcept, or two concept-list
    attributes (types, status, visit type, unit, ...) other than Gender. Refuse them here, not at a node.
    """
    source = [a for a in body if a.endswith("SourceConcept")]
    if "CodesetId" in body and source:
        raise _fail(
            _join(path, source[0]), "cannot be combined with CodesetId (circepy 0.3); use one of them"
        )
    lists = [a for a in body if ATTRIBUTE_KINDS.get(a) == "concepts" and a != "Gender"]
    if len(lists) > 1:
        raise _fail(
            _join(path, lists[1]),
            f"cannot be combined with {lists[0]} in one criterion (circepy 0.3 allows one concept-list "
            "filter per criterion); split it into a second criterion",
        )


_bound = _obj({"Days": _int(0), "Coeff": _enum(-1, 1)}, ("Coeff",))
_window = _obj({"Start": _bound, "End": _bound, "UseEventEnd": _bool, "UseIndexEnd": _bool})
_occurrence = _obj({"Type": _enum(0, 1, 2), "Count": _int(0), "IsDistinct": _bool}, ("Type", "Count"))
_correlated = _obj(
    {
        "Criteria": _criterion,
        "StartWindow": _window,
        "EndWindow": _window,
        "RestrictVisit": _bool,
        "IgnoreObservationPeriod": _bool,
        "Occurrence": _occurrence,
    },
    ("Criteria", "StartWindow", "Occurrence"),
)
_demographic = _obj(
    {
        "Age": _numeric_range,
        "Gender": _concepts,
        "Race": _concepts,
        "Ethnicity": _concepts,
        "OccurrenceStartDate": _date_range,
        "OccurrenceEndDate": _date_range,
    }
)


MAX_GROUP_DEPTH = 8  # nested criteria groups (and correlated criteria inside criteria)


def _group(v: Any, path: str, res: CheckResult) -> Any:
    if path.count("Groups[") + path.count("CorrelatedCriteria") >= MAX_GROUP_DEPTH:
        raise _fail(path, f"criteria are nested more than {MAX_GROUP_DEPTH} levels deep")
    out = _obj(
        {
            "Type": _enum("ALL", "ANY", "AT_LEAST", "AT_MOST"),
            "Count": _int(0),
            "CriteriaList": _list(_correlated),
            "DemographicCriteriaList": _list(_demographic),
            "Groups": _list(_group),
        }
    )(v, path, res)
    if out.get("Type") in {"AT_LEAST", "AT_MOST"} and "Count" not in out:
        raise _fail(_join(path, "Count"), f"is required when Type is {out['Type']!r}")
    return out


def _concept_set(v: Any, path: str, res: CheckResult) -> Any:
    item = _obj(
        {"concept": _concept, "isExcluded": _bool, "includeDescendants": _bool, "includeMapped": _bool},
        ("concept",),
    )
    expression = _obj({"items": _list(item)}, open_cosmetic=True)
    out = _obj(
        {"id": _int(0), "name": _cosmetic, "description": _cosmetic, "expression": expression},
        ("id", "expression"),
        open_cosmetic=True,
    )(v, path, res)
    if out["id"] in res.codeset_ids:
        raise _fail(_join(path, "id"), f"concept set id {out['id']} is used twice")
    res.codeset_ids.add(out["id"])
    return out


_limit = _obj({"Type": _enum("First", "All", "Last")})
_date_offset = _obj({"DateField": _enum("StartDate", "EndDate"), "Offset": _int(0)}, ("DateField", "Offset"))
_rule = _obj({"name": _cosmetic, "description": _cosmetic, "expression": _group}, ("expression",))
_ROOT = _obj(
    {
        "Title": _cosmetic,
        "cdmVersionRange": _cosmetic,
        "ConceptSets": _list(_concept_set),
        "PrimaryCriteria": _obj(
            {
                "CriteriaList": _list(_criterion, min_len=1),
                "ObservationWindow": _obj({"PriorDays": _int(0), "PostDays": _int(0)}),
                "PrimaryCriteriaLimit": _limit,
            },
            ("CriteriaList",),
        ),
        "AdditionalCriteria": _group,
        "QualifiedLimit": _limit,
        "ExpressionLimit": _limit,
        "InclusionRules": _list(_rule),
        "EndStrategy": _obj({"DateOffset": _date_offset}),
        "CensoringCriteria": _list(_criterion),
        "CollapseSettings": _obj({"CollapseType": _enum("ERA"), "EraPad": _int(0)}, ("EraPad",)),
        "CensorWindow": _obj({"StartDate": _date, "EndDate": _date}),
    },
    ("PrimaryCriteria",),
)


def check_expression(expression: Any, *, path: str = "") -> CheckResult:
    """Check a Circe expression against the supported subset; return its semantic form.

    Raises :class:`InputError` with ``field`` set to the JSON path of the first problem.
    """
    res = CheckResult(expression={})
    res.expression = _ROOT(expression, path, res)
    for path, codeset in res.codeset_refs:
        if codeset not in res.codeset_ids:
            raise _fail(path, f"concept set {codeset} is not defined in ConceptSets")
    return res
