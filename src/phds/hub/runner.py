"""The hub's study runner: submit, deliver tasks, take results, sweep leases and deadlines.

Each event is one transaction on the store (DESIGN.md invariant 5): the study row is locked, the
change and any round completion (:mod:`phds.hub.runner_rounds`) are written together, and only after
the commit are long polls woken (:mod:`phds.hub.notify`). Nothing is kept only in memory, so a hub
restarted mid-study carries on from its database: the background sweep re-queues the leases that
expired meanwhile and applies deadlines that passed.

The runner never answers for a hospital (invariant 4): a hospital's state changes only when its own
node posts a result, or to ``timed_out`` at the study's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from pydantic import ValidationError

from phds.analyses import get_analysis
from phds.analyses.base import check_privacy_options
from phds.errors import Conflict, InputError, NotFound, PermissionDenied, SignatureInvalid
from phds.hub import wire
from phds.hub.billing_applications import check_study_billing
from phds.hub.events import TaskAnswered, record_event
from phds.hub.metering import Metering, check_receipt
from phds.hub.notify import Notifier
from phds.hub.runner_deadlines import skip_stragglers
from phds.hub.runner_rounds import (
    Wakeups,
    advance,
    changed,
    finish,
    new_task,
    record_answer,
    set_target,
    target_of,
)
from phds.hub.runner_secure import SecureRounds
from phds.hub.secagg import open_session
from phds.hub.settings import HubSettings
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.hub.store.study_models import ResultRow, StudyRow, StudyTargetRow
from phds.hub.vocabulary import HubVocabulary
from phds.protocol.canonical import canonical_hash
from phds.protocol.studies import HospitalState, StudySpec, StudyState, StudyView
from phds.protocol.tasks import ResultStatus, Task, TaskResult
from phds.protocol.trust import SignedSpec
from phds.trust.envelopes import open_envelope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Requester:
    """Who submits: the person and their organisation."""

    user_id: uuid.UUID | None
    organisation_id: uuid.UUID
    organisation_name: str


@dataclass(frozen=True)
class Ack:
    """How the hub took a node's result."""

    accepted: bool
    duplicate: bool
    cancelled: bool = False  # the task's study was cancelled by its requester


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    requeued: int
    timed_out_studies: int


class StudyRunner:
    """Study orchestration over one store; wakes long polls through *notifier*."""

    def __init__(self, store: HubStore, settings: HubSettings, notifier: Notifier) -> None:
        self.store = store
        self.settings = settings
        self.notifier = notifier
        self.vocabulary = HubVocabulary(settings.vocabulary_url)
        self.secure = SecureRounds(store, self._wakeups, self._wake)
        self.metering = Metering(store)

    def _wakeups(self) -> Wakeups:
        return Wakeups(stage_seconds=self.settings.secagg_stage_seconds)

    def _wake(self, wake: Wakeups) -> None:
        self.notifier.signal(wake.nodes)
        self.notifier.signal(wake.studies)

    # -- requesters ---------------------------------------------------------------------------------

    def submit_signed(
        self, requester: Requester, signed: SignedSpec, now: datetime | None = None
    ) -> StudyView:
        """Submit a study whose specification the requester signed; every node verifies the signature,
        the hub only checks that it is consistent and relays it with each task."""
        if signed.spec_hash != canonical_hash(signed.spec):
            raise InputError("spec_hash is not the hash of the spec", field="signed.spec_hash")
        if signed.attestation.organisation != requester.organisation_name:
            raise PermissionDenied(
                f"the attestation is for {signed.attestation.organisation!r}, you submit for "
                f"{requester.organisation_name!r}"
            )
        try:
            spec = StudySpec.model_validate(signed.spec)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InputError(err["msg"], field=f"signed.spec.{where}" if where else "signed.spec") from None
        return self.submit(requester, spec, now, signed=signed)

    def submit(
        self,
        requester: Requester,
        spec: StudySpec,
        now: datetime | None = None,
        *,
        signed: SignedSpec | None = None,
    ) -> StudyView:
        """Validate and submit a study; round-1 tasks are queued for every target hospital."""
        if spec.organisation != requester.organisation_name:
            raise PermissionDenied(
                f"you submit for {requester.organisation_name!r}, not {spec.organisation!r}"
            )
        analysis = get_analysis(spec.analysis.name, spec.analysis.version)
        analysis.check_at_hub(analysis.parse_params(spec.analysis.params), self.vocabulary.known)
        check_privacy_options(analysis, dp=spec.dp is not None, secure_aggregation=spec.secure_aggregation)
        stored = spec.model_copy(
            update={"analysis": spec.analysis.model_copy(update={"version": analysis.version})}
        )
        now = now or utcnow()
        wake = self._wakeups()
        with self.store.unit() as uow:
            found = uow.studies.hospitals(spec.hospitals)
            org = uow.organisations.get(requester.organisation_id)
            assert org is not None, "the caller's organisation exists"
            check_study_billing(
                uow, org, spec, required=self.settings.billing_require_application, today=now.date()
            )
            study = uow.studies.add(
                StudyRow(
                    organisation_id=org.id,
                    created_by=requester.user_id,
                    requester_category=org.category,
                    spec=stored.model_dump(mode="json"),
                    analysis=analysis.name,
                    analysis_version=analysis.version,
                    state=StudyState.SUBMITTED.value,
                    round=1,
                    version=1,
                    submitted_at=now,
                    deadline_at=now + timedelta(seconds=spec.deadline_seconds),
                    signed_spec=signed.model_dump(mode="json") if signed is not None else None,
                )
            )
            uow.studies.start_round(study, 1, {}, now)
            for position, name in enumerate(spec.hospitals):
                hospital, node = found.get(name, (None, None))
                where = f"hospitals[{position}]"
                if hospital is None:
                    raise InputError(f"no hospital {name!r}", field=where)
                if node is None:
                    raise InputError(f"hospital {name!r} has no enrolled node", field=where)
                target = StudyTargetRow(
                    study_id=study.id,
                    organisation_id=hospital.id,
                    node_id=node.id,
                    position=position,
                    state=HospitalState.PENDING.value,
                    updated_at=now,
                )
                target.organisation = hospital
                study.targets.append(target)
                uow.tasks.add(new_task(study, target, now))
                wake.nodes.add(node.id)
            uow.session.flush()
            open_session(uow, study, list(spec.hospitals), now, wake.stage_seconds)
            view = wire.study(study)
        log.info("study %s submitted by %s to %d hospital(s)", view.id, org.name, len(spec.hospitals))
        self._wake(wake)
        return view

    def cancel(self, requester: Requester, study_id: uuid.UUID, reason: str | None) -> StudyView:
        """Cancel the requester's unfinished study: open tasks are cancelled, waiting nodes and watchers
        woken. Cancelling a cancelled study returns it; a finished one is a :class:`Conflict`."""
        now = utcnow()
        wake = self._wakeups()
        with self.store.unit() as uow:
            study = uow.studies.lock(study_id)
            if study is None or study.organisation_id != requester.organisation_id:
                raise NotFound(f"no study {study_id} of your organisation")
            state = StudyState(study.state)
            if state.is_final and state is not StudyState.CANCELLED:
                raise Conflict(
                    f"study {study_id} already ended ({state.value}); only an unfinished one can be cancelled"
                )
            if state is not StudyState.CANCELLED:
                why = "cancelled by the requester" + (f": {reason}" if reason else "")
                for target in study.targets:
                    if not HospitalState(target.state).is_final:
                        set_target(target, HospitalState.CANCELLED, why, now)
                        target.outcome = target.outcome or "failed"
                        wake.nodes.add(target.node_id)
                finish(uow, study, StudyState.CANCELLED, now, error=why)
                changed(study, wake)
                log.info("study %s cancelled by %s", study.id, requester.organisation_name)
            view = wire.study(study)
        self._wake(wake)
        return view

    # -- nodes --------------------------------------------------------------------------------------

    def task_states(self, node_id: uuid.UUID, task_ids: list[str]) -> dict[str, str]:
        """The hub's state of those of *task_ids* that are this node's tasks."""
        ids = [tid for tid in (_uuid(t) for t in task_ids) if tid is not None]
        with self.store.unit() as uow:
            return {str(t.id): t.state for t in uow.tasks.of_node(node_id, ids)}

    def lease(self, node_id: uuid.UUID, limit: int, now: datetime | None = None) -> list[Task]:
        """Lease up to *limit* queued tasks of a node (empty when there are none)."""
        now = now or utcnow()
        expires = now + timedelta(seconds=self.settings.task_lease_seconds)
        with self.store.unit() as uow:
            return [
                wire.task(
                    row,
                    uow.studies.round_state(row.study, row.round),
                    uow.secagg.get(row.study_id, row.round),
                )
                for row in uow.tasks.lease(node_id, limit, now, expires)
            ]

    def post_result(self, node_id: uuid.UUID, task_id: str, result: TaskResult) -> Ack:
        """Take a node's answer to its task (404 for a task that is not the node's)."""
        if result.task_id != task_id:
            raise InputError(
                f"the body is for task {result.task_id}, the path for {task_id}", field="task_id"
            )
        if result.envelope is not None and not result.payload:  # a release travels once, in its envelope
            result = result.model_copy(update={"payload": dict(result.envelope.payload)})
        tid = _uuid(task_id)
        now = utcnow()
        wake = self._wakeups()
        with self.store.unit() as uow:
            owner = uow.tasks.owner(tid) if tid is not None else None
            if tid is None or owner is None or owner[1] != node_id:
                raise NotFound(f"no task {task_id} for this node")
            study = uow.studies.lock(owner[0])
            task = uow.tasks.get(tid, fresh=True)
            assert study is not None and task is not None
            if task.state == "done":
                return Ack(accepted=False, duplicate=True)
            if task.state == "cancelled":
                log.info("study %s: late result for cancelled task %s ignored", study.id, task.id)
                return Ack(accepted=False, duplicate=False, cancelled=study.state == StudyState.CANCELLED)
            target = target_of(study, task.organisation_id)
            node = uow.nodes.get(node_id)
            assert node is not None
            check_envelope(result, node.public_key, task_id)
            hospital = node.organisation.name
            receipt = check_receipt(
                result, node.public_key, task_id=task_id, study_id=str(study.id), hospital=hospital
            )
            if result.status is ResultStatus.AWAITING_APPROVAL:
                if task.state == "parked" and target.reason == result.reason:
                    return Ack(accepted=True, duplicate=False)
                task.state, task.lease_expires_at, task.updated_at = "parked", None, now
                set_target(target, HospitalState.AWAITING_APPROVAL, result.reason, now)
                advance(uow, study, now, wake)
            else:
                uow.results.add(
                    ResultRow(
                        task_id=task.id,
                        study_id=study.id,
                        status=result.status.value,
                        payload=result.payload,
                        reason=result.reason,
                        compute_seconds=result.compute_seconds,
                        audit_hash=result.audit_hash,
                        received_at=now,
                        envelope=result.envelope.model_dump(mode="json") if result.envelope else None,
                    )
                )
                task.state, task.lease_expires_at, task.updated_at = "done", None, now
                event = TaskAnswered(
                    task_id=task_id,
                    hospital=hospital,
                    node_id=str(node_id),
                    status=result.status,
                    receipt=receipt,
                )
                record_event(uow, study.id, event)  # metering reads it (phds.hub.metering)
                record_answer(target, result.status, result.reason, now)
                advance(uow, study, now, wake)
        self._wake(wake)
        return Ack(accepted=True, duplicate=False)

    # -- background ---------------------------------------------------------------------------------

    def sweep(self, now: datetime | None = None) -> SweepReport:
        """Re-queue expired leases (attempt + 1) and time out hospitals of studies past their deadline."""
        now = now or utcnow()
        wake = self._wakeups()
        with self.store.unit() as uow:
            requeued = uow.tasks.requeue_expired(now)
            wake.nodes.update(t.node_id for t in requeued)
            due = uow.studies.past_deadline(now)
        if requeued:
            log.info("re-queued %d task(s) whose lease expired", len(requeued))
        self._wake(wake)
        self.secure.sweep(now)
        skip_stragglers(self.store, now, self._wakeups, self._wake)
        for study_id in due:
            self._deadline(study_id, now)
        return SweepReport(len(requeued), len(due))

    def _deadline(self, study_id: uuid.UUID, now: datetime) -> None:
        wake = self._wakeups()
        with self.store.unit() as uow:
            study = uow.studies.lock(study_id)
            if study is None or StudyState(study.state).is_final or study.deadline_at > now:
                return
            late = [t for t in study.targets if not HospitalState(t.state).is_final]
            for target in late:
                set_target(target, HospitalState.TIMED_OUT, "no answer before the study's deadline", now)
                target.outcome = "timed_out"
                uow.tasks.cancel_open(study.id, now, organisation_id=target.organisation_id)
            log.info("study %s: deadline passed, %d hospital(s) timed out", study.id, len(late))
            advance(uow, study, now, wake)
        self._wake(wake)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Sweep every ``runner_tick_seconds`` until *stop* is set; errors are logged, never fatal.

        Stopping waits for a sweep in progress (it runs in a worker thread), so the store can be closed
        safely afterwards.
        """
        log.info("study runner sweeping every %.2fs", self.settings.runner_tick_seconds)
        while not stop.is_set():
            try:
                await anyio.to_thread.run_sync(self.sweep)
                await anyio.to_thread.run_sync(self.metering.drain)
            except Exception:
                log.exception("study runner sweep failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.runner_tick_seconds)
        log.info("study runner stopped")


def check_envelope(result: TaskResult, public_key: str | None, task_id: str) -> None:
    """A released payload from a node with a pinned key must come in an envelope that key signed."""
    if result.status is not ResultStatus.OK or public_key is None:
        return
    if result.envelope is None:
        raise InputError("a release from this node must come in a signed envelope", field="envelope")
    try:
        payload = open_envelope(result.envelope, {result.envelope.hospital: public_key})
    except SignatureInvalid as exc:  # the node's answer is refused; its credential is still good
        raise InputError(exc.message, field="envelope") from None
    if result.envelope.task_id != task_id or payload != result.payload:
        raise InputError("the envelope is for another task or payload", field="envelope")


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def study_id_of(value: str) -> uuid.UUID:
    """A study id from a path; :class:`NotFound` when it is not one."""
    parsed = _uuid(value)
    if parsed is None:
        raise NotFound(f"no study {value!r}")
    return parsed
