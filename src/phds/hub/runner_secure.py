"""The runner's secure rounds: nodes post protocol messages, stages close, the sum completes the round.

:class:`SecureRounds` is the part of :class:`~phds.hub.runner.StudyRunner` that serves
:mod:`phds.hub.secagg` sessions: it takes a node's message (one transaction, study row locked), closes a
stage early once every expected node has posted, closes overdue stages in the sweep, and completes the
round from the session's sum (:func:`complete_secure_round`). The hub never sees a hospital's vector.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from phds.analyses import get_analysis
from phds.errors import NotFound, PermissionDenied, PhdsError
from phds.hub import secagg
from phds.hub.runner_rounds import (
    Wakeups,
    advance,
    apply_outcome,
    changed,
    finish,
    set_target,
    target_of,
)
from phds.hub.store import HubStore, UnitOfWork
from phds.hub.store.models import utcnow
from phds.hub.store.secagg_models import STAGE_DONE, STAGE_FAILED, SecAggSessionRow
from phds.hub.store.study_models import OPEN_TASK_STATES, StudyRow
from phds.protocol.secagg import PROTOCOL, SessionView
from phds.protocol.studies import HospitalState, StudyState

log = logging.getLogger(__name__)


def complete_secure_round(
    uow: UnitOfWork, study: StudyRow, row: SecAggSessionRow, now: datetime, wake: Wakeups
) -> None:
    """The session summed the round: attribute it, then combine the sums into the next round or result."""
    outcome = row.outcome or {}
    contributors = list(outcome.get("contributors", []))
    names = {t.organisation_id: t.organisation.name for t in study.targets}
    for task in uow.tasks.of_study(study.id, round_no=study.round):
        name, target = names[task.organisation_id], target_of(study, task.organisation_id)
        if name in contributors:
            if task.state in OPEN_TASK_STATES:
                task.state, task.lease_expires_at, task.updated_at = "done", None, now
            set_target(target, HospitalState.ANSWERED, None, now)
            target.outcome = "answered"
        elif task.state in OPEN_TASK_STATES or target.outcome in (None, "answered"):
            task.state, task.lease_expires_at, task.updated_at = "cancelled", None, now
            set_target(target, HospitalState.FAILED, "dropped out of the secure aggregation", now)
            target.outcome = "failed"
    analysis = get_analysis(study.analysis, study.analysis_version)
    try:
        params = analysis.parse_params(study.spec["analysis"]["params"])
        state = uow.studies.round_state(study)
        layout = analysis.secure_layout(params, study.round, state)
        assert layout is not None, "a session exists only for rounds with a layout"
        sums = layout.unflatten(outcome["sums"])
        result = analysis.combine_secure(params, study.round, state, sums, contributors)
    except PhdsError as exc:
        finish(uow, study, StudyState.FAILED, now, error=f"combine failed: {exc.message}")
        return
    except Exception as exc:  # an analysis bug fails the study, not the request
        log.exception("study %s: secure combine of round %d raised", study.id, study.round)
        finish(uow, study, StudyState.FAILED, now, error=f"combine failed: {type(exc).__name__}: {exc}")
        return
    apply_outcome(
        uow, study, result, contributors, now, wake, extra={"secure_aggregation": secure_summary(uow, study)}
    )


def secure_summary(uow: UnitOfWork, study: StudyRow) -> dict[str, Any]:
    """Per secure round: who contributed, who dropped out before or after sending a masked input."""
    rounds = []
    for round_no in range(1, study.round + 1):
        row = uow.secagg.get(study.id, round_no)
        if row is not None and row.outcome is not None:
            keep = ("contributors", "dropped_before_input", "dropped_after_input", "threshold")
            rounds.append({"round": round_no, **{k: row.outcome.get(k) for k in keep}})
    return {"rounds": rounds, "protocol": PROTOCOL}


class SecureRounds:
    """Session endpoints and sweeps over one store (see the module docstring)."""

    def __init__(self, store: HubStore, wakeups: Any, wake: Any) -> None:
        self.store = store
        self._wakeups = wakeups
        self._wake = wake

    def _locked(
        self, uow: UnitOfWork, study_id: uuid.UUID, round_no: int
    ) -> tuple[StudyRow, SecAggSessionRow]:
        study = uow.studies.lock(study_id)
        row = uow.secagg.get(study_id, round_no) if study is not None else None
        if study is None or row is None:
            raise NotFound(f"no secure aggregation for study {study_id} round {round_no}")
        return study, row

    @staticmethod
    def _hospital(study: StudyRow, node_id: uuid.UUID | None) -> str | None:
        if node_id is None:
            return None
        for target in study.targets:
            if target.node_id == node_id:
                return str(target.organisation.name)
        raise PermissionDenied("this node's hospital is not a target of the study")

    def post(self, node_id: uuid.UUID, study_id: uuid.UUID, round_no: int, stage: int, body: Any) -> bool:
        """A node's message for *stage*; closes the stage once every expected node has posted."""
        wake: Wakeups = self._wakeups()
        now = utcnow()
        with self.store.unit() as uow:
            study, row = self._locked(uow, study_id, round_no)
            hospital = self._hospital(study, node_id)
            assert hospital is not None
            fresh = secagg.receive(uow, study, row, hospital, stage, body)
            if fresh and not secagg.expected(uow, row):
                self._close(uow, study, row, now, wake)
        self._wake(wake)
        return fresh

    def _close(
        self, uow: UnitOfWork, study: StudyRow, row: SecAggSessionRow, now: datetime, wake: Wakeups
    ) -> None:
        done = secagg.close_stage(uow, study, row, now, wake.stage_seconds)
        wake.studies.add(study.id)
        if done and study.round == row.round and not StudyState(study.state).is_final:
            complete_secure_round(uow, study, row, now, wake)
            changed(study, wake)  # a new version: requesters waiting on /wait see the round's outcome
        elif row.stage == STAGE_FAILED:
            advance(uow, study, now, wake)

    def view(
        self, node_id: uuid.UUID | None, study_id: uuid.UUID, round_no: int, *, transcript: bool = False
    ) -> SessionView:
        """The session as the node (None: the requester) may see it; a read, so nothing is locked. A
        participant's node is found in the session itself, so a long poll does not load the study."""
        with self.store.unit(read_only=True) as uow:
            row = uow.secagg.get(study_id, round_no)
            hospital = secagg.participant_of(row, str(node_id)) if row is not None and node_id else None
            if hospital is not None:
                assert row is not None
                return secagg.view(uow, None, row, hospital, transcript=transcript)
            study = uow.studies.get(study_id) if row is not None else None
            if study is None or row is None:
                raise NotFound(f"no secure aggregation for study {study_id} round {round_no}")
            return secagg.view(uow, study, row, self._hospital(study, node_id), transcript=transcript)

    def stage(self, study_id: uuid.UUID, round_no: int) -> int:
        """The session's stage (-1 if there is none): what a long poll re-reads when woken."""
        with self.store.unit(read_only=True) as uow:
            found = uow.secagg.stage_of(study_id, round_no)
        return -1 if found is None else found

    def transcripts(self, study_id: uuid.UUID) -> list[SessionView]:
        """Every finished session of a study, as its requester may verify it (no shares)."""
        out = []
        with self.store.unit() as uow:
            study = uow.studies.get(study_id)
            if study is None:
                raise NotFound(f"no study {study_id}")
            for round_no in range(1, study.round + 1):
                row = uow.secagg.get(study_id, round_no)
                if row is not None and row.stage == STAGE_DONE:
                    out.append(secagg.view(uow, study, row, None))
        return out

    def sweep(self, now: datetime) -> int:
        """Close every stage past its deadline with the nodes that answered; returns how many."""
        wake: Wakeups = self._wakeups()
        closed = 0
        with self.store.unit() as uow:
            due = uow.secagg.open_past(now)
        for study_id, round_no in due:
            with self.store.unit() as uow:
                study, row = self._locked(uow, study_id, round_no)
                if row.stage < STAGE_DONE and row.stage_deadline <= now:
                    log.info(
                        "session %s: stage %d closes at its deadline", row.config["session_id"], row.stage
                    )
                    self._close(uow, study, row, now, wake)
                    closed += 1
        self._wake(wake)
        return closed


__all__ = ["SecureRounds", "complete_secure_round", "secure_summary"]
