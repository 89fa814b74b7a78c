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

import logging
import time
from dataclasses import dataclass
from typing import Any

from phds.analyses import get_analysis
from phds.analyses.base import Analysis
from phds.analyses.context import LocalContext, RequesterInfo, Thresholds
from phds.errors import DisclosureRefused, InputError, SignatureInvalid
from phds.node.approvals import ApprovalStore
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.binding import params_summary, task_binding
from phds.node.config import NodeConfig
from phds.node.dp_ledger import resolve_dp
from phds.node.gate import Gate, GateContext, GateResult
from phds.node.memory import MemoryStore, StudyRounds
from phds.node.policy import CATEGORIES, Policy, TaskRequest
from phds.node.receipts import with_receipt
from phds.node.secure_round import check_secure_task, secure_contribution
from phds.node.taskstore import TaskStore
from phds.node.verify import TaskVerifier
from phds.protocol.canonical import canonical_hash
from phds.protocol.tasks import ResultStatus, Task, TaskResult
from phds.sources import NodeData
from phds.trust.envelopes import seal
from phds.trust.keys import KeyPair, load_or_create

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error at the node; see its log"
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
    memory: MemoryStore
    rounds: StudyRounds
    key: KeyPair
    verifier: TaskVerifier

    @property
    def policy(self) -> Policy:
        return self.config.policy

    @classmethod
    def open(cls, config: NodeConfig, data: NodeData | None = None) -> NodeRuntime:
        """Open ``node.db`` and the node's data sources (lazily) as configured."""
        if data is None:
            data = NodeData(
                {s.name: s.url for s in config.sources.omop}, {s.name: s.path for s in config.sources.tabular}
            )
        db = NodeDatabase(config.db_path)
        audit = AuditLog(db)
        memory = MemoryStore(db)
        return cls(
            config=config,
            data=data,
            db=db,
            audit=audit,
            gate=Gate(config.policy, audit),
            approvals=ApprovalStore(audit),
            tasks=TaskStore(db),
            memory=memory,
            rounds=StudyRounds(db),
            key=load_or_create(config.node_key_path),
            verifier=TaskVerifier(config, memory),
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
            "params": task.params,
            "round": task.round,
            "state_hash": canonical_hash(task.state),
            "requester_org": task.requester.organisation,
            "attestation": (
                task.signed_spec.attestation.model_dump(mode="json") if task.signed_spec is not None else None
            ),
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
    result = _answer(task, runtime)  # a final answer is stored with its receipt
    log.info("task %s (study %s, round %d): %s", task.id, task.study_id, task.round, result.status.value)
    return result


def _answer(task: Task, runtime: NodeRuntime) -> TaskResult:
    def finish(status: ResultStatus, reason: str | None = None) -> TaskResult:
        if reason is not None and len(reason) > _REASON_CHARS:
            reason = reason[: _REASON_CHARS - 1] + "…"
        result = TaskResult(task_id=task.id, status=status, reason=reason)
        if status is ResultStatus.AWAITING_APPROVAL:
            return result
        with runtime.db.transaction():  # the outcome, its receipt and the receipt's audit entry
            result = with_receipt(result, task, audit=runtime.audit, key=runtime.key)
            runtime.tasks.record(task.study_id, result)
        return result

    if task.hospital != runtime.config.node.name:
        reason = f"this node serves hospital {runtime.config.node.name}, not {task.hospital}"
        _audit_error(runtime, task, "misdelivered", reason)
        return finish(ResultStatus.ERROR, reason)
    try:
        verified = runtime.verifier.verify(task)
    except SignatureInvalid as exc:
        reason = f"not verified at this hospital: {exc.message}"
        _audit_decision(runtime, task, allowed=False, needs_approval=False, reason=reason)
        return finish(ResultStatus.DECLINED, reason)
    except InputError as exc:
        _audit_error(runtime, task, "input", exc.message)
        return finish(ResultStatus.ERROR, exc.message)
    task, hospitals = verified.task, verified.hospitals
    first_seen = verified.first_seen
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
    needs_secure = next((m for m in runtime.policy.secure_aggregation if m.matches(request)), None)
    if decision.allowed and needs_secure is not None and not task.secure_aggregation:
        label = f" ({needs_secure.name})" if needs_secure.name else ""
        decision = decision.model_copy(update={
            "allowed": False, "needs_approval": False,
            "reason": f"this hospital's policy{label} runs this study only under secure aggregation; "
                      "resubmit it with secure_aggregation: true",
        })  # fmt: skip
    allowed, needs_approval = decision.allowed, decision.needs_approval
    _audit_decision(runtime, task, allowed=allowed, needs_approval=needs_approval, reason=decision.reason)
    if not decision.allowed:
        return finish(ResultStatus.DECLINED, decision.reason)
    if decision.needs_approval:
        try:
            binding = task_binding(task, get_analysis(task.analysis, task.analysis_version), hospitals)
        except InputError as exc:
            _audit_error(runtime, task, "input", exc.message)
            return finish(ResultStatus.ERROR, exc.message)
        # Every task files its binding: one that differs from what the steward decided asks again.
        runtime.approvals.add_pending(
            task.study_id,
            title=task.study_title,
            requester_org=task.requester.organisation,
            requester_category=task.requester.category or "",
            analysis=f"{task.analysis}@{task.analysis_version}",
            params_summary=params_summary(task.params),
            binding=binding,
            params=task.params,
            purpose=task.study_purpose,
            hospitals=list(hospitals),
            service_type=task.service_type.value,
        )
        steward = runtime.approvals.decision_for(task.study_id)
        if steward is None:
            runtime.tasks.park(task)
            return finish(ResultStatus.AWAITING_APPROVAL, "waiting for the hospital's data steward")
        if not steward.approved:
            return finish(ResultStatus.DECLINED, f"rejected by the hospital's data steward: {steward.reason}")
    try:
        return _run(task, runtime, hospitals, first_seen, request)
    except DisclosureRefused as exc:  # the gate has audited it
        return finish(ResultStatus.REFUSED, exc.message)
    except InputError as exc:
        _audit_error(runtime, task, "input", exc.message)
        return finish(ResultStatus.ERROR, exc.message)
    except Exception as exc:
        log.exception("task %s (study %s): %s failed", task.id, task.study_id, task.analysis)
        _audit_error(runtime, task, "internal", type(exc).__name__)
        return finish(ResultStatus.ERROR, INTERNAL_ERROR)


def _run(
    task: Task,
    runtime: NodeRuntime,
    hospitals: tuple[str, ...],
    first_seen: str | None,
    request: TaskRequest,
) -> TaskResult:
    analysis = get_analysis(task.analysis, task.analysis_version)
    params = analysis.parse_params(task.params)
    dp_settings = resolve_dp(runtime.policy.dp, request, task.dp)
    if dp_settings is not None and not analysis.dp_support:
        reason = f"{analysis.name} has no differentially private version, and DP is in force for this study"
        _audit_error(runtime, task, "disclosure_refused", reason)
        raise DisclosureRefused(reason)
    binding = task_binding(task, analysis, hospitals)
    state_hash = canonical_hash(task.state)
    try:
        runtime.rounds.check(task.study_id, task.id, task.round, binding, analysis.max_rounds(params))
    except DisclosureRefused as exc:
        _audit_error(runtime, task, "protocol", exc.message)
        raise
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
    policy = runtime.policy
    study_memory = runtime.memory.staged(f"study:{task.study_id}")
    if first_seen is not None and study_memory.recall("first_seen") is None:
        study_memory.remember("first_seen", first_seen)  # when the attestation's validity was checked
    requester_memory = runtime.memory.staged(f"requester:{task.requester.organisation}")
    ctx = LocalContext(
        data=runtime.data,
        round_no=task.round,
        state=task.state,
        thresholds=Thresholds(
            policy.min_cell_count,
            policy.nfilter_glm,
            policy.effective_nfilter_tab,
            policy.release_zero_counts,
        ),
        requester=RequesterInfo(task.requester.organisation, task.requester.category),
        service_type=task.service_type.value,
        study_id=task.study_id,
        hospital=task.hospital,
        memory=study_memory,
        requester_memory=requester_memory,
        dp=dp_settings,
        secure_aggregation=task.secure_aggregation,
    )
    if task.secure_aggregation:
        try:
            check_secure_task(task, analysis, params, hospitals, study_memory)
        except DisclosureRefused as exc:
            _audit_error(runtime, task, "protocol", exc.message)
            raise
    started = time.perf_counter()
    try:
        step = analysis.local(ctx, params)
    except DisclosureRefused as exc:  # refused by the analysis's own rules, before the gate: audit it too
        _audit_error(runtime, task, "disclosure_refused", exc.message)
        runtime.rounds.record(task.study_id, task.id, task.round, binding, state_hash)
        raise
    compute = step.compute_seconds or (time.perf_counter() - started)
    gate_ctx = GateContext(
        task.study_id, task.id, task.requester.organisation, analysis.name, task.requester.category,
        analysis.version, task.round, query_hash=binding, dp=dp_settings,
        dp_rounds=analysis.dp_rounds(params),
        secure_parties=task.secagg.threshold if task.secagg is not None else 0,
    )  # fmt: skip

    def answer(released: GateResult) -> TaskResult:
        payload = released.payload
        if task.secagg is not None:  # the release stays here; only its masked vector leaves, later
            payload = secure_contribution(task, analysis, params, released.payload, study_memory)
        envelope = seal(
            payload, key=runtime.key, study_id=task.study_id, task_id=task.id,
            hospital=task.hospital, round=task.round, analysis=analysis.name,
            analysis_version=analysis.version, audit_seq=released.audit_seq, audit_hash=released.audit_hash,
            state=task.state,
        )  # fmt: skip
        return TaskResult(
            task_id=task.id,
            status=ResultStatus.OK,
            payload=payload,
            compute_seconds=max(compute, 0.0),
            audit_hash=released.audit_hash,
            envelope=envelope,
        )

    stored: list[TaskResult] = []

    def commit(released: GateResult) -> None:
        # In the gate's transaction: the signed answer, the node's memory and the round record.
        result = with_receipt(answer(released), task, audit=runtime.audit, key=runtime.key)
        stored.append(result)
        runtime.tasks.record(task.study_id, result)
        study_memory.flush()
        requester_memory.flush()
        runtime.rounds.record(task.study_id, task.id, task.round, binding, state_hash)

    try:
        runtime.gate.release(gate_ctx, step.aggregates, on_release=commit)
    except DisclosureRefused:
        runtime.rounds.record(task.study_id, task.id, task.round, binding, state_hash)
        raise
    return stored[0]


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


__all__ = ["INTERNAL_ERROR", "NodeRuntime", "execute_task"]
