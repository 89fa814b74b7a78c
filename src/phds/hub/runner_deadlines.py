"""Per-round deadlines: a hospital that has not answered a round in time is skipped, not waited for.

An analysis may declare how long one round waits (:meth:`~phds.analyses.base.Analysis.round_deadline_seconds`,
e.g. ``learning.fedavg``'s ``round_deadline_seconds``). The runner's sweep then marks every hospital whose
task of the current round is still queued or leased that long after the round's tasks were created
``timed_out`` ("a straggler"), cancels its task and completes the round with the hospitals that
answered, as the study's own deadline does for the whole study (:mod:`phds.hub.runner`). The analysis's
combine sees the answering hospitals only and names the skipped ones in its notes. A secure round is
left to its session, whose stage deadlines already close it with the nodes that posted
(:mod:`phds.hub.runner_secure`). A task parked for a steward's approval is not a straggler.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from phds.analyses import get_analysis
from phds.errors import PhdsError
from phds.hub.runner_rounds import Wakeups, advance, set_target
from phds.hub.store import HubStore
from phds.protocol.studies import HospitalState, StudyState

log = logging.getLogger(__name__)


def skip_stragglers(
    store: HubStore, now: datetime, wakeups: Callable[[], Wakeups], wake: Callable[[Wakeups], None]
) -> int:
    """Time out the hospitals past their round's deadline in every waiting study; returns how many."""
    with store.unit() as uow:
        waiting = uow.tasks.studies_waiting()
    skipped = 0
    for study_id in waiting:
        skipped += _skip(store, study_id, now, wakeups, wake)
    return skipped


def _skip(
    store: HubStore,
    study_id: uuid.UUID,
    now: datetime,
    wakeups: Callable[[], Wakeups],
    wake: Callable[[Wakeups], None],
) -> int:
    woken = wakeups()
    with store.unit() as uow:
        study = uow.studies.lock(study_id)
        if study is None or StudyState(study.state).is_final or uow.secagg.get(study.id, study.round):
            return 0
        analysis = get_analysis(study.analysis, study.analysis_version)
        try:
            seconds = analysis.round_deadline_seconds(analysis.parse_params(study.spec["analysis"]["params"]))
        except PhdsError:
            return 0
        if seconds is None:
            return 0
        tasks = uow.tasks.of_study(study.id, round_no=study.round)
        if not tasks or now < min(t.created_at for t in tasks) + timedelta(seconds=seconds):
            return 0
        late = {t.organisation_id for t in tasks if t.state in ("queued", "leased")}
        for target in study.targets:
            if target.organisation_id in late:
                reason = f"straggler: no answer to round {study.round} within {seconds:g} s; skipped"
                set_target(target, HospitalState.TIMED_OUT, reason, now)
                target.outcome = "timed_out"
                uow.tasks.cancel_open(study.id, now, organisation_id=target.organisation_id)
        log.info("study %s: round %d skips %d straggler(s)", study.id, study.round, len(late))
        advance(uow, study, now, woken)
    wake(woken)
    return len(late)


__all__ = ["skip_stragglers"]
