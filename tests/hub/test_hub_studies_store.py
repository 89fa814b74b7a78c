"""The study tables' contract on every backend: uniqueness, leasing, expiry, deadlines, and concurrency."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest

from phds.errors import Conflict
from phds.hub.notify import Notifier
from phds.hub.runner import Requester, StudyRunner
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.hub.store.study_models import ResultRow, TaskRow
from phds.hub.testing import gate_payload, hub_settings, study_spec
from phds.protocol.studies import StudySpec
from phds.protocol.tasks import ResultStatus, TaskResult


def _runner(network: Any, **overrides: Any) -> StudyRunner:
    return StudyRunner(network.store, hub_settings(network.url, **overrides), Notifier())


def _submit(network: Any, runner: StudyRunner, hospitals: list[str], **fields: Any) -> uuid.UUID:
    with network.store.unit() as uow:
        org = uow.organisations.by_name("uni-a")
        assert org is not None
        requester = Requester(None, org.id, org.name)
    spec = StudySpec.model_validate(study_spec("uni-a", hospitals, **fields))
    return uuid.UUID(runner.submit(requester, spec).id)


def test_a_task_has_one_result_and_a_hospital_one_task_per_round(network: Any) -> None:
    study_id = _submit(network, _runner(network), ["h1"])
    store: HubStore = network.store
    with store.unit() as uow:
        [task] = uow.tasks.of_study(study_id)
        row: dict[str, Any] = {"task_id": task.id, "study_id": study_id, "status": "ok", "payload": {}}
    with store.unit() as uow:
        uow.results.add(ResultRow(**row))
    with pytest.raises(Conflict), store.unit() as uow:
        uow.results.add(ResultRow(**row))
    with pytest.raises(Conflict), store.unit() as uow:
        uow.tasks.add(
            TaskRow(
                study_id=study_id, organisation_id=task.organisation_id, node_id=task.node_id,
                round=1, params={},
            )
        )  # fmt: skip
    with store.unit() as uow:
        assert uow.results.count(task.id) == 1
        assert len(uow.tasks.of_study(study_id)) == 1


def test_leases_take_the_oldest_first_and_expire_one_attempt_later(network: Any) -> None:
    runner = _runner(network)
    first, second = (_submit(network, runner, ["h1"]) for _ in range(2))
    now = utcnow()
    with network.store.unit() as uow:
        [leased] = uow.tasks.lease(network.node_ids["h1"], 1, now, now + timedelta(seconds=10))
        assert leased.study_id == first and leased.state == "leased"
        assert uow.tasks.requeue_expired(now + timedelta(seconds=9)) == []
    with network.store.unit() as uow:
        [expired] = uow.tasks.requeue_expired(now + timedelta(seconds=10))
        assert (expired.id, expired.state, expired.attempt, expired.lease_expires_at) == (
            leased.id, "queued", 2, None,
        )  # fmt: skip
    with network.store.unit() as uow:
        both = uow.tasks.lease(network.node_ids["h1"], 10, now, now + timedelta(seconds=10))
        assert [t.study_id for t in both] == [first, second]
        assert uow.tasks.lease(network.node_ids["h1"], 10, now, now) == []


def test_studies_past_their_deadline_are_found_until_they_end(network: Any) -> None:
    runner = _runner(network)
    study_id = _submit(network, runner, ["h1"], deadline_seconds=100)
    later = utcnow() + timedelta(seconds=101)
    with network.store.unit() as uow:
        assert uow.studies.past_deadline(utcnow()) == []
        assert uow.studies.past_deadline(later) == [study_id]
    runner.sweep(now=later)
    with network.store.unit() as uow:
        assert uow.studies.past_deadline(later) == []
        study = uow.studies.get(study_id)
        assert study is not None and study.state == "failed"
        assert [t.state for t in study.targets] == ["timed_out"]


def test_concurrent_results_complete_the_round_exactly_once(network: Any) -> None:
    """Three nodes answer the last tasks of a round at the same moment: one combine, nothing lost."""
    runner = _runner(network)
    study_id = _submit(network, runner, ["h1", "h2", "h3"])
    tasks = {h: runner.lease(network.node_ids[h], 1)[0] for h in ("h1", "h2", "h3")}
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def answer(hospital: str) -> None:
        task = tasks[hospital]
        result = TaskResult(task_id=task.id, status=ResultStatus.OK, payload=gate_payload("system.noop", {}))
        barrier.wait()
        try:
            runner.post_result(network.node_ids[hospital], task.id, result)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=answer, args=(h,)) for h in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with network.store.unit() as uow:
        study = uow.studies.get(study_id)
        assert study is not None and study.state == "completed"
        assert study.result is not None and study.result["attribution"]["answered"] == ["h1", "h2", "h3"]
        assert study.version == 4, "submit, then one change per result"


def test_concurrent_polls_never_lease_a_task_twice(network: Any) -> None:
    runner = _runner(network)
    for _ in range(6):
        _submit(network, runner, ["h1"])
    barrier = threading.Barrier(3)
    leased: list[str] = []
    lock = threading.Lock()

    def poll() -> None:
        barrier.wait()
        got = runner.lease(network.node_ids["h1"], 6)
        with lock:
            leased.extend(t.id for t in got)

    threads = [threading.Thread(target=poll) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(leased) == 6 and len(set(leased)) == 6
