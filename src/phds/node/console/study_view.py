"""Everything a steward sees about one study before deciding: read from ``node.db`` and the policy.

The request itself (:class:`~phds.node.approvals.PendingApproval`) holds what the approval binds: the
analysis, every parameter, the requester and its category (taken from the verified attestation when the
study is signed), the service type and the hospitals. The audit log adds which policy rule filed it
(the ``decision`` entry) and the attestation the node checked (the ``task_received`` entry of that task).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError

from phds.cohorts.describe import CohortDescription, describe_cohort
from phds.errors import InputError
from phds.node.approvals import ApprovalDecision, PendingApproval
from phds.node.audit import AuditEntry, AuditKind, AuditLog
from phds.node.policy import Policy, PolicyRule, TaskRequest, rule_label

_INLINE_CHARS = 100


@dataclass(frozen=True)
class ParamRow:
    """One top-level parameter: its name and its value as text (``block``: shown preformatted)."""

    name: str
    text: str
    block: bool


@dataclass(frozen=True)
class CohortView:
    """A cohort found in the parameters: where, as written, and as read (or why it cannot be read)."""

    path: str
    raw: str
    description: CohortDescription | None
    problem: str | None


@dataclass(frozen=True)
class RuleView:
    """Why the study waits: the audited decision, and the rule of the current policy that matches."""

    audited_reason: str | None
    audited_at: str | None
    number: int | None
    label: str | None
    rule: PolicyRule | None


@dataclass(frozen=True)
class StudyForSteward:
    """A study as the console shows it."""

    request: PendingApproval
    params: dict[str, Any]
    rows: tuple[ParamRow, ...]
    params_json: str
    hospitals: tuple[str, ...]
    cohorts: tuple[CohortView, ...]
    attestation: dict[str, Any] | None
    rule: RuleView
    decision: ApprovalDecision | None


@cache
def concept_names() -> dict[int, str]:
    """Concept names of the OMOP vocabulary subset shipped with PHDS (standard ids name the same concept
    in every vocabulary release)."""
    from phds.omop.vocabulary import vocabulary_tables

    table = vocabulary_tables()["concept"]
    ids, names = table.column("concept_id").to_pylist(), table.column("concept_name").to_pylist()
    return {int(i): str(n) for i, n in zip(ids, names, strict=True) if i is not None and n}


def param_rows(params: dict[str, Any]) -> tuple[ParamRow, ...]:
    rows = []
    for name, value in params.items():
        if isinstance(value, str):
            rows.append(ParamRow(name, value, "\n" in value or len(value) > _INLINE_CHARS))
        elif isinstance(value, dict | list):
            rows.append(ParamRow(name, json.dumps(value, indent=2, ensure_ascii=False), True))
        else:
            rows.append(ParamRow(name, json.dumps(value), False))
    return tuple(rows)


def find_cohorts(value: Any, path: str = "") -> Iterator[tuple[str, str | dict[str, Any]]]:
    """Every ``cohort`` parameter (Circe or YAML text, or a Circe object), at any depth, with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "cohort" and isinstance(item, str | dict):
                yield where, item
            else:
                yield from find_cohorts(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from find_cohorts(item, f"{path}[{i}]")


def cohort_view(path: str, definition: str | dict[str, Any]) -> CohortView:
    raw = definition if isinstance(definition, str) else json.dumps(definition, indent=2, ensure_ascii=False)
    try:
        return CohortView(path, raw, describe_cohort(definition, names=concept_names().get), None)
    except InputError as exc:
        return CohortView(path, raw, None, exc.message)


def filing_decision(entries: list[AuditEntry]) -> AuditEntry | None:
    """The newest ``decision`` entry that sent the study to the steward."""
    return next(
        (e for e in reversed(entries) if e.kind == AuditKind.DECISION and e.payload.get("needs_approval")),
        None,
    )


def rule_view(policy: Policy, request: PendingApproval, decided: AuditEntry | None) -> RuleView:
    name, _, version = request.analysis.partition("@")
    matched = None
    try:
        task = TaskRequest.model_validate(
            {
                "study_id": request.study_id,
                "analysis": name,
                "analysis_version": version or "1",
                "requester_org": request.requester_org,
                "requester_category": request.requester_category,
                "service_type": request.service_type,
            }
        )
        matched = policy.matching_rule(task)
    except ValidationError:  # a request filed before the service type was recorded
        pass
    return RuleView(
        audited_reason=str(decided.payload.get("reason")) if decided else None,
        audited_at=decided.ts if decided else None,
        number=matched[0] if matched else None,
        label=rule_label(*matched) if matched else None,
        rule=matched[1] if matched else None,
    )


def attestation_of(entries: list[AuditEntry], decided_task: str | None) -> dict[str, Any] | None:
    """The attestation of the task the policy filed (the node verified it before deciding)."""
    received = [e for e in entries if e.kind == AuditKind.TASK_RECEIVED]
    if decided_task:
        received = [e for e in received if e.task_id == decided_task] or received
    found = received[-1].payload.get("attestation") if received else None
    return found if isinstance(found, dict) else None


def study_for_steward(
    audit: AuditLog, policy: Policy, request: PendingApproval, decision: ApprovalDecision | None
) -> StudyForSteward:
    params: dict[str, Any] = json.loads(request.params)
    entries = audit.entries(request.study_id)
    decided = filing_decision(entries)
    return StudyForSteward(
        request=request,
        params=params,
        rows=param_rows(params),
        params_json=json.dumps(params, indent=2, sort_keys=True, ensure_ascii=False),
        hospitals=tuple(json.loads(request.hospitals)),
        cohorts=tuple(cohort_view(path, value) for path, value in find_cohorts(params)),
        attestation=attestation_of(entries, decided.task_id if decided else None),
        rule=rule_view(policy, request, decided),
        decision=decision,
    )


__all__ = [
    "CohortView",
    "ParamRow",
    "RuleView",
    "StudyForSteward",
    "concept_names",
    "find_cohorts",
    "study_for_steward",
]
