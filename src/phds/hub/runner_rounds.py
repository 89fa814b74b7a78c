"""The study runner's transitions inside one transaction: hospital answers, round completion, finishing.

Every function here works on rows of a unit of work whose study row is locked, and records which nodes
and studies must be woken once the transaction commits (:class:`Wakeups`). Round completion runs the
analysis's ``combine`` in the same transaction as the event that completed the round, so a crash
either loses both (the node answers again) or neither.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from phds.analyses import Final, NextRound, get_analysis
from phds.analyses.base import released_budgets
from phds.errors import PhdsError
from phds.hub.store import UnitOfWork
from phds.hub.store.secagg_models import STAGE_FAILED
from phds.hub.store.study_models import OPEN_TASK_STATES, StudyRow, StudyTargetRow, TaskRow
from phds.protocol.studies import HospitalState, StudyState
from phds.protocol.tasks import ResultStatus

log = logging.getLogger(__name__)

ATTRIBUTION = ("answered", "declined", "refused", "failed", "timed_out")
"""Outcome of each hospital, and the attribution lists of a study's result."""

_BY_STATUS: dict[ResultStatus, tuple[HospitalState, str]] = {
    ResultStatus.OK: (HospitalState.ANSWERED, "answered"),
    ResultStatus.DECLINED: (HospitalState.DECLINED, "declined"),
    ResultStatus.REFUSED: (HospitalState.DECLINED, "refused"),
    ResultStatus.ERROR: (HospitalState.FAILED, "failed"),
}


@dataclass
class Wakeups:
    """Whom to wake after the transaction commits: nodes with new tasks, studies that changed."""

    nodes: set[uuid.UUID] = field(default_factory=set)
    studies: set[uuid.UUID] = field(default_factory=set)
    stage_seconds: float = 60.0  # how long a secure-aggregation stage opened now waits (hub setting)


def target_of(study: StudyRow, organisation_id: uuid.UUID) -> StudyTargetRow:
    for target in study.targets:
        if target.organisation_id == organisation_id:
            return target
    raise LookupError(f"study {study.id} has no target {organisation_id}")


def set_target(target: StudyTargetRow, state: HospitalState, reason: str | None, now: datetime) -> None:
    target.state, target.reason, target.updated_at = state.value, reason, now


def record_answer(target: StudyTargetRow, status: ResultStatus, reason: str | None, now: datetime) -> None:
    """A hospital's final answer to this round's task."""
    state, outcome = _BY_STATUS[status]
    if status is ResultStatus.REFUSED and reason is not None:
        reason = f"disclosure gate refused: {reason}"
    set_target(target, state, reason, now)
    target.outcome = outcome


def new_task(study: StudyRow, target: StudyTargetRow, now: datetime) -> TaskRow:
    """A queued task of the study's current round for *target*'s node."""
    return TaskRow(
        study_id=study.id,
        organisation_id=target.organisation_id,
        node_id=target.node_id,
        round=study.round,
        state="queued",
        attempt=1,
        params=dict(study.spec["analysis"]["params"]),
        created_at=now,
        updated_at=now,
    )


def changed(study: StudyRow, wake: Wakeups) -> None:
    """Bump the study's version and, while it runs, derive its state from its hospitals'."""
    study.version += 1
    wake.studies.add(study.id)
    if StudyState(study.state).is_final:
        return
    states = {t.state for t in study.targets}
    if HospitalState.AWAITING_APPROVAL.value in states:
        study.state = StudyState.AWAITING_APPROVAL.value
    elif study.round > 1 or states != {HospitalState.PENDING.value}:
        study.state = StudyState.RUNNING.value
    else:
        study.state = StudyState.SUBMITTED.value


def advance(uow: UnitOfWork, study: StudyRow, now: datetime, wake: Wakeups) -> None:
    """Complete the study's round when every task of it is answered or cancelled; then mark it changed."""
    if not StudyState(study.state).is_final:
        session = uow.secagg.get(study.id, study.round)
        if session is not None:  # a secure round is completed by its session (phds.hub.secagg)
            if session.stage == STAGE_FAILED:
                finish(
                    uow, study, StudyState.FAILED, now, error=f"secure aggregation failed: {session.error}"
                )
        else:
            tasks = uow.tasks.of_study(study.id, round_no=study.round)
            if not any(t.state in OPEN_TASK_STATES for t in tasks):
                _complete_round(uow, study, tasks, now, wake)
    changed(study, wake)


def _complete_round(
    uow: UnitOfWork, study: StudyRow, tasks: list[TaskRow], now: datetime, wake: Wakeups
) -> None:
    names = {t.organisation_id: t.organisation.name for t in study.targets}
    results = uow.results.for_tasks([t.id for t in tasks if t.state == "done"])
    released: dict[str, dict[str, Any]] = {
        names[task.organisation_id]: result.payload
        for task in tasks
        for result in results
        if result.task_id == task.id and result.status == ResultStatus.OK.value
    }
    if not released:
        outcomes = {t.outcome for t in study.targets}
        if outcomes == {"declined"}:
            finish(uow, study, StudyState.REJECTED, now, error="every hospital declined")
        else:
            finish(uow, study, StudyState.FAILED, now, error=f"no hospital answered round {study.round}")
        return
    analysis = get_analysis(study.analysis, study.analysis_version)
    try:
        params = analysis.parse_params(study.spec["analysis"]["params"])
        # Hospitals in name order: combining is then reproducible bit for bit (``phds study verify``
        # recomputes it from the signed releases in the same order; float sums depend on it).
        state = uow.studies.round_state(study)
        outcome = analysis.combine(params, study.round, state, dict(sorted(released.items())))
    except PhdsError as exc:
        log.warning("study %s: combine of round %d failed: %s", study.id, study.round, exc.message)
        finish(uow, study, StudyState.FAILED, now, error=f"combine failed: {exc.message}")
        return
    except Exception as exc:  # an analysis bug must fail the study, not the node's request
        log.exception("study %s: combine of round %d raised", study.id, study.round)
        finish(uow, study, StudyState.FAILED, now, error=f"combine failed: {type(exc).__name__}: {exc}")
        return
    extra = None
    if study.spec.get("secure_aggregation"):  # a clear last round (e.g. an evaluation) after secure ones
        from phds.hub.runner_secure import secure_summary

        extra = {"secure_aggregation": secure_summary(uow, study)}
    apply_outcome(
        uow, study, outcome, sorted(released), now, wake, budgets=released_budgets(released), extra=extra
    )


def apply_outcome(
    uow: UnitOfWork,
    study: StudyRow,
    outcome: Final | NextRound,
    answering: list[str],
    now: datetime,
    wake: Wakeups,
    *,
    budgets: dict[str, list[dict[str, Any]]] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Start the next round for the *answering* hospitals, or finish the study with its result."""
    if isinstance(outcome, NextRound):
        if now >= study.deadline_at:
            finish(
                uow, study, StudyState.FAILED, now, error=f"deadline passed before round {study.round + 1}"
            )
            return
        uow.studies.start_round(study, study.round + 1, dict(outcome.state), now)
        for target in study.targets:
            if target.organisation.name in answering:
                set_target(target, HospitalState.PENDING, None, now)
                uow.tasks.add(new_task(study, target, now))
                wake.nodes.add(target.node_id)
        from phds.hub.secagg import open_session

        open_session(uow, study, list(answering), now, wake.stage_seconds)
        log.info("study %s: round %d for %d hospital(s)", study.id, study.round, len(answering))
        return
    answered = all(t.outcome == "answered" for t in study.targets)
    state = StudyState.COMPLETED if answered else StudyState.PARTIALLY_COMPLETED
    stragglers = [
        f"{t.organisation.name}: {t.reason}"
        for t in study.targets
        if t.outcome == "timed_out" and (t.reason or "").startswith("straggler")
    ]
    result = {**outcome.result, "notes": [*outcome.notes, *stragglers], **(extra or {})}
    if budgets:
        result["dp_budget"] = budgets
    finish(uow, study, state, now, result=result)


def finish(
    uow: UnitOfWork,
    study: StudyRow,
    state: StudyState,
    now: datetime,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Put the study in a final state; cancel its unanswered tasks; attribute the result."""
    uow.tasks.cancel_open(study.id, now)
    for target in study.targets:
        if not HospitalState(target.state).is_final:  # still pending after a failed combine
            set_target(target, HospitalState.FAILED, target.reason or "the study ended first", now)
            target.outcome = target.outcome or "failed"
    study.state, study.finished_at, study.error = state.value, now, error
    if result is not None:
        by_outcome: dict[str, list[str]] = {name: [] for name in ATTRIBUTION}
        for target in study.targets:
            by_outcome[target.outcome or "failed"].append(target.organisation.name)
        study.result = {**result, "attribution": {k: sorted(v) for k, v in by_outcome.items()}}
    log.info("study %s %s%s", study.id, state.value, f": {error}" if error else "")
