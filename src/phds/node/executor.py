"""Answer one task at the node: policy, steward approval, vetted analysis, disclosure gate. No network.

:func:`execute_task` turns a :class:`~phds.protocol.tasks.Task` into a
:class:`~phds.protocol.tasks.TaskResult`:

1. audit ``task_received``; a task answered before (delivered again after a lease expired) gets the
   stored answer, so nothing is computed, released or counted twice;
2. the hospital's policy decides (audited ``decision``); refused → ``declined`` with the rule's reason;
3. ``manual`` rules need the steward: a decided study continues or is ``declined``; an undecided one is
   filed for approval, the task is parked in ``node.db`` and the answer is ``awaiting_approval``. Later
   rounds of an approved study run without asking again;
4. the analysis is looked up and its parameters validated (``error`` naming the field), ``query_run``
   is audited, the local step runs, and the gate releases its aggregates (auditing ``value_released``)
   → ``ok`` with exactly the released payload and the hash of that audit entry.

A gate refusal is ``refused`` with its reason; an :class:`~phds.errors.InputError` is ``error`` with its
message; anything else is ``error`` with a generic message, logged here with its traceback and never
sent. Every final answer is stored (:class:`~phds.node.taskstore.TaskStore`) before it is returned.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from phds.analyses import get_analysis
from phds.analyses.base import Analysis
from phds.errors import DisclosureRefused, InputError
from phds.node.approvals import ApprovalStore
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.config import NodeConfig
from phds.node.gate import Gate, GateContext, GateResult
from phds.node.policy import CATEGORIES, Policy, TaskRequest
from phds.node.sources import NodeData
from phds.node.taskstore import TaskStore
from phds.protocol.tasks import ResultStatus, Task, TaskResult

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error at the node; see its log"
_SUMMARY_CHARS = 200
_REASON_CHARS = 2000  # TaskResult.reason's limit


@dataclass
class NodeRuntime:
    """Everything a node needs to answer tasks: its configuration, data and state database."""

    config: NodeConfig
    data: NodeData
    db: NodeDatabase
    audit: AuditLog
    gate: Gate
    approvals: ApprovalStore
    tasks: TaskStore

    @property
    def policy(self) -> Policy:
        return self.config.policy

    @classmethod
    def open(cls, config: NodeConfig, data: NodeData | None = None) -> NodeRuntime:
        """Open ``node.db`` and the node's data sources (lazily) as configured."""
        if data is None:
            data = NodeData(
                {s.name: s.url for s in config.sources.omop},
                {s.name: s.path for s in config.sources.tabular},
                min_cell_count=config.policy.min_cell_count,
            )
        db = NodeDatabase(config.db_path)
        audit = AuditLog(db)
        return cls(
            config=config,
            data=data,
            db=db,
            audit=audit,
            gate=Gate(config.policy, audit),
            approvals=ApprovalStore(audit),
            tasks=TaskStore(db),
        )

    def close(self) -> None:
        self.data.close()
        self.db.close()


def execute_task(task: Task, runtime: NodeRuntime, *, resumed: bool = False) -> TaskResult:
    """Answer *task* (see the module docstring); *resumed* marks a parked task run after a decision."""
    runtime.audit.append(
        "task_received",
        study_id=task.study_id,
        task_id=task.id,
        payload={
            "analysis": task.analysis,
            "analysis_version": task.analysis_version,
            "round": task.round,
            "requester_org": task.requester.organisation,
            "requester_category": task.requester.category,
            "service_type": task.service_type.value,
            "attempt": task.attempt,
            "resumed": resumed,
        },
    )
    previous = runtime.tasks.outcome(task.id)
    if previous is not None:
        log.info("task %s (study %s) was answered before: %s; answering again", task.id, task.study_id,
                 previous.status.value)  # fmt: skip
        return previous
    result = _answer(task, runtime)
    if result.status is not ResultStatus.AWAITING_APPROVAL:
        runtime.tasks.record(task.study_id, result)
    log.info("task %s (study %s, round %d): %s", task.id, task.study_id, task.round, result.status.value)
    return result


def _answer(task: Task, runtime: NodeRuntime) -> TaskResult:
    def finish(status: ResultStatus, reason: str | None = None) -> TaskResult:
        if reason is not None and len(reason) > _REASON_CHARS:
            reason = reason[: _REASON_CHARS - 1] + "…"
        return TaskResult(task_id=task.id, status=status, reason=reason)

    if task.hospital != runtime.config.node.name:
        reason = f"this node serves hospital {runtime.config.node.name}, not {task.hospital}"
        _audit_error(runtime, task, "misdelivered", reason)
        return finish(ResultStatus.ERROR, reason)
    if task.requester.category not in CATEGORIES:
        reason = (
            f"requester {task.requester.organisation} has no requester category; this node's policy "
            "decides only for requester organisations"
        )
        _audit_decision(runtime, task, allowed=False, needs_approval=False, reason=reason)
        return finish(ResultStatus.DECLINED, reason)
    request = TaskRequest.model_validate(
        {
            "study_id": task.study_id,
            "task_id": task.id,
            "analysis": task.analysis,
            "analysis_version": task.analysis_version,
            "requester_org": task.requester.organisation,
            "requester_category": task.requester.category,
            "service_type": task.service_type.value,
            "round": task.round,
        }
    )
    decision = runtime.policy.decide(request)
    allowed, needs_approval = decision.allowed, decision.needs_approval
    _audit_decision(runtime, task, allowed=allowed, needs_approval=needs_approval, reason=decision.reason)
    if not decision.allowed:
        return finish(ResultStatus.DECLINED, decision.reason)
    if decision.needs_approval:
        steward = runtime.approvals.decision_for(task.study_id)
        if steward is None:
            runtime.approvals.add_pending(
                task.study_id,
                title=task.study_title,
                requester_org=task.requester.organisation,
                requester_category=task.requester.category or "",
                analysis=f"{task.analysis}@{task.analysis_version}",
                params_summary=params_summary(task.params),
            )
            runtime.tasks.park(task)
            return finish(ResultStatus.AWAITING_APPROVAL, "waiting for the hospital's data steward")
        if not steward.approved:
            return finish(ResultStatus.DECLINED, f"rejected by the hospital's data steward: {steward.reason}")
    try:
        return _run(task, runtime)
    except DisclosureRefused as exc:  # the gate has audited it
        return finish(ResultStatus.REFUSED, exc.message)
    except InputError as exc:
        _audit_error(runtime, task, "input", exc.message)
        return finish(ResultStatus.ERROR, exc.message)
    except Exception as exc:
        log.exception("task %s (study %s): %s failed", task.id, task.study_id, task.analysis)
        _audit_error(runtime, task, "internal", type(exc).__name__)
        return finish(ResultStatus.ERROR, INTERNAL_ERROR)


def _run(task: Task, runtime: NodeRuntime) -> TaskResult:
    analysis = get_analysis(task.analysis, task.analysis_version)
    params = analysis.parse_params(task.params)
    runtime.audit.append(
        "query_run",
        study_id=task.study_id,
        task_id=task.id,
        payload={
            "analysis": analysis.name,
            "analysis_version": analysis.version,
            "round": task.round,
            "source": _source_name(analysis, params, runtime.data),
        },
    )
    started = time.perf_counter()
    try:
        step = analysis.local(runtime.data, params, task.round, task.state)
    except DisclosureRefused as exc:  # refused by the analysis's own rules, before the gate: audit it too
        _audit_error(runtime, task, "disclosure_refused", exc.message)
        raise
    compute = step.compute_seconds or (time.perf_counter() - started)
    ctx = GateContext(task.study_id, task.id, task.requester.organisation, analysis.name)

    def answer(released: GateResult) -> TaskResult:
        return TaskResult(
            task_id=task.id,
            status=ResultStatus.OK,
            payload=released.payload,
            compute_seconds=max(compute, 0.0),
            audit_hash=released.audit_hash,
        )

    # The answer is stored in the same transaction as the value_released audit entry.
    released = runtime.gate.release(
        ctx, step.aggregates, on_release=lambda r: runtime.tasks.record(task.study_id, answer(r))
    )
    return answer(released)


def _source_name(analysis: Analysis[Any], params: Any, data: NodeData) -> str:
    if analysis.data_kind == "tabular":
        return str(getattr(params, "dataset", "") or "")
    if analysis.data_kind == "omop":
        named = getattr(params, "source", None)
        return str(named or (data.omop_names[0] if data.omop_names else ""))
    return ""


def _audit_decision(
    runtime: NodeRuntime, task: Task, *, allowed: bool, needs_approval: bool, reason: str
) -> None:
    runtime.audit.append(
        "decision",
        study_id=task.study_id,
        task_id=task.id,
        payload={"allowed": allowed, "needs_approval": needs_approval, "reason": reason},
    )


def _audit_error(runtime: NodeRuntime, task: Task, kind: str, detail: str) -> None:
    try:
        runtime.audit.append(
            "error",
            study_id=task.study_id,
            task_id=task.id,
            payload={"error": kind, "analysis": task.analysis, "reason": detail},
        )
    except Exception:  # pragma: no cover - the state database itself failed; the log has it
        log.exception("task %s: could not audit the error", task.id)


def params_summary(params: dict[str, Any]) -> str:
    """A short, one-line summary of a task's parameters for the steward's list."""
    parts = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, dict):
            shown = f"{{{len(value)} keys}}"
        elif isinstance(value, str) and len(value) > 60:
            shown = f"<text, {len(value)} chars>"
        else:
            shown = json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown}")
    text = ", ".join(parts) or "(none)"
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"


__all__ = ["INTERNAL_ERROR", "NodeRuntime", "execute_task", "params_summary"]
