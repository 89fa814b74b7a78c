"""The executor on real data, policy, approvals, gate and audit log (no hub, no network)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from phds.node.binding import params_summary
from phds.node.executor import INTERNAL_ERROR, NodeRuntime, execute_task
from phds.protocol.tasks import ResultStatus, Task

TaskFactory = Callable[..., Task]


def _column(path: Path, name: str) -> np.ndarray:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    key = next(k for k in rows[0] if k.strip() == name)  # CNSIM headers carry trailing spaces
    return np.array([float(r[key]) for r in rows if r[key].strip() != ""])


def _kinds(runtime: NodeRuntime, study: str) -> list[str]:
    return [e.kind for e in runtime.audit.entries(study)]


def test_mean_variance_rounds_release_exactly_what_numpy_computes(
    runtime: NodeRuntime, task_factory: TaskFactory, shared_data: Path
) -> None:
    x = _column(shared_data / "tabular" / "datashield" / "CNSIM" / "CNSIM1.csv", "LAB_TSC")
    first = execute_task(task_factory(), runtime)
    assert first.status is ResultStatus.OK, first.reason
    moments = first.payload["values"]["moments"]
    assert moments["n"]["value"] == len(x)
    assert math.isclose(moments["values"]["sum"], float(x.sum()), rel_tol=1e-12)
    mean = float(x.mean())
    second = execute_task(task_factory(id="task-2", round=2, state={"mean": mean}), runtime)
    assert second.status is ResultStatus.OK
    ssd = second.payload["values"]["moments"]["values"]["ssd"]
    assert math.isclose(ssd, float(((x - mean) ** 2).sum()), rel_tol=1e-12)
    assert second.compute_seconds >= 0


def test_audit_log_records_each_step_in_order_and_the_result_names_its_entry(
    runtime: NodeRuntime, task_factory: TaskFactory
) -> None:
    result = execute_task(task_factory(), runtime)
    entries = runtime.audit.entries("study-1")
    kinds = ["task_received", "decision", "query_run", "value_released", "usage_receipt"]
    assert [e.kind for e in entries] == kinds
    assert entries[0].payload["requester_org"] == "uni-a" and entries[0].payload["attempt"] == 1
    assert entries[1].payload["allowed"] is True and "academic statistics" in entries[1].payload["reason"]
    assert entries[2].payload == {
        "analysis": "stats.mean_variance", "analysis_version": "1", "round": 1, "source": "cnsim"
    }  # fmt: skip
    assert entries[3].payload == result.payload
    assert result.audit_hash == entries[3].hash
    receipt = result.receipt  # metered from the receipt, signed in the release's own transaction
    assert receipt is not None and (receipt.audit_seq, receipt.audit_hash) == (
        entries[4].seq,
        entries[4].hash,
    )
    assert receipt.outcome == "answered" and receipt.task_id == result.task_id
    assert runtime.audit.verify().ok


def test_no_matching_rule_and_deny_rules_decline_with_the_reason(
    runtime: NodeRuntime, task_factory: TaskFactory
) -> None:
    sme = execute_task(task_factory(requester={"organisation": "acme", "category": "sme"}), runtime)
    assert sme.status is ResultStatus.DECLINED
    assert sme.reason is not None and "the default is to refuse" in sme.reason
    blocked = execute_task(
        task_factory(id="t2", study_id="s2", requester={"organisation": "pharma-x", "category": "academic"}),
        runtime,
    )
    assert blocked.status is ResultStatus.DECLINED
    assert blocked.reason is not None and "rule 1 (blocked) denies" in blocked.reason
    assert _kinds(runtime, "study-1") == ["task_received", "decision", "usage_receipt"]
    assert not runtime.approvals.pending() and not runtime.tasks.parked()


def test_a_requester_without_category_is_declined(runtime: NodeRuntime, task_factory: TaskFactory) -> None:
    result = execute_task(task_factory(requester={"organisation": "operator", "category": None}), runtime)
    assert result.status is ResultStatus.DECLINED
    assert result.reason is not None and "no requester category" in result.reason


def test_manual_approval_parks_then_runs_once_approved_and_later_rounds_need_no_approval(
    runtime: NodeRuntime, task_factory: TaskFactory
) -> None:
    industry = {"organisation": "pharma-y", "category": "industry"}
    task = task_factory(requester=industry)
    waiting = execute_task(task, runtime)
    assert waiting.status is ResultStatus.AWAITING_APPROVAL
    [pending] = runtime.approvals.pending()
    assert (pending.study_id, pending.requester_org, pending.requester_category) == (
        "study-1", "pharma-y", "industry"
    )  # fmt: skip
    assert pending.analysis == "stats.mean_variance@1"
    assert '"variable": "LAB_TSC"' in pending.params_summary
    assert [t.id for t in runtime.tasks.parked()] == ["task-1"]
    assert "query_run" not in _kinds(runtime, "study-1")

    runtime.approvals.approve("study-1", steward="Dr Jones")
    done = execute_task(task, runtime, resumed=True)
    assert done.status is ResultStatus.OK
    assert runtime.tasks.parked() == []
    later = execute_task(task_factory(id="task-2", round=2, state={"mean": 5.0}, requester=industry), runtime)
    assert later.status is ResultStatus.OK
    assert runtime.approvals.pending() == []
    assert _kinds(runtime, "study-1").count("approval") == 1
    assert runtime.audit.verify().ok


def test_a_rejected_study_is_declined_with_the_stewards_reason(
    runtime: NodeRuntime, task_factory: TaskFactory
) -> None:
    task = task_factory(requester={"organisation": "pharma-y", "category": "industry"})
    assert execute_task(task, runtime).status is ResultStatus.AWAITING_APPROVAL
    runtime.approvals.reject("study-1", reason="outside our ethics approval", steward="Dr Jones")
    result = execute_task(task, runtime, resumed=True)
    assert result.status is ResultStatus.DECLINED
    assert result.reason == "rejected by the hospital's data steward: outside our ethics approval"
    assert runtime.tasks.parked() == []
    assert "query_run" not in _kinds(runtime, "study-1")


def test_bad_params_are_an_error_naming_the_field(runtime: NodeRuntime, task_factory: TaskFactory) -> None:
    bad = execute_task(task_factory(params={"dataset": "cnsim", "variable": "1; DROP"}), runtime)
    assert bad.status is ResultStatus.ERROR
    assert bad.reason is not None and "field analysis.params.variable" in bad.reason
    missing = execute_task(task_factory(id="t2", params={"variable": "LAB_TSC"}), runtime)
    assert missing.reason is not None and "field analysis.params.dataset" in missing.reason
    unknown = execute_task(task_factory(id="t3", params={"dataset": "cnsim", "variable": "NOPE"}), runtime)
    assert unknown.status is ResultStatus.ERROR
    assert unknown.reason is not None and "analysis.params.variable" in unknown.reason
    assert "NOPE" in unknown.reason
    assert _kinds(runtime, "study-1").count("error") == 3


def test_an_unknown_analysis_is_an_error(runtime: NodeRuntime, task_factory: TaskFactory) -> None:
    result = execute_task(task_factory(analysis="stats.nothing"), runtime)
    assert result.status is ResultStatus.ERROR
    assert result.reason is not None and "field analysis.name" in result.reason


def test_statistics_of_a_tiny_dataset_are_withheld_by_the_gate(
    runtime: NodeRuntime, task_factory: TaskFactory
) -> None:
    result = execute_task(task_factory(params={"dataset": "tiny", "variable": "weight"}), runtime)
    assert result.status is ResultStatus.OK
    moments = result.payload["values"]["moments"]
    assert moments["values"] is None
    assert moments["n"]["value"] is None and moments["n"]["display"] == "<5"
    assert "18.25" not in json.dumps(result.payload) and "48.75" not in json.dumps(result.payload)
    assert result.payload["notes"][0]["action"] == "withheld"


def _feasibility(task_factory: TaskFactory, task_id: str, study: str, sex: list[str] | None = None) -> Task:
    cohort = "name: asthma\nentry:\n  condition: {concepts: [317009]}\n"
    if sex:
        cohort += f"sex: [{', '.join(sex)}]\n"
    return task_factory(
        id=task_id, study_id=study, analysis="feasibility.count", service_type="feasibility",
        params={"cohort": cohort, "source": "cdm"},
    )  # fmt: skip


def test_the_differencing_guard_refuses_a_cohort_one_person_away(
    runtime: NodeRuntime, task_factory: TaskFactory
) -> None:
    first = execute_task(_feasibility(task_factory, "f1", "s1"), runtime)
    assert first.status is ResultStatus.OK, first.reason
    assert first.payload["values"]["persons"]["value"] == 8
    girls = execute_task(_feasibility(task_factory, "f2", "s2", sex=["female"]), runtime)
    assert girls.status is ResultStatus.REFUSED
    assert girls.reason is not None and "would describe fewer than" in girls.reason
    assert girls.payload == {} and girls.audit_hash is None
    assert [e.kind for e in runtime.audit.entries("s2")][-2:] == ["error", "usage_receipt"]
    assert runtime.audit.verify().ok


def test_delivering_a_task_again_answers_it_again_without_releasing_twice(
    runtime: NodeRuntime, task_factory: TaskFactory
) -> None:
    first = execute_task(_feasibility(task_factory, "f1", "s1"), runtime)
    again = execute_task(_feasibility(task_factory, "f1", "s1").model_copy(update={"attempt": 2}), runtime)
    assert again == first
    assert _kinds(runtime, "s1").count("value_released") == 1
    assert _kinds(runtime, "s1").count("query_run") == 1
    fingerprints = runtime.db.con.execute("SELECT count(*) FROM overlap_sets").fetchone()[0]
    # The same cohort in another study of the same requester is the same cohort: released, not refused.
    other = execute_task(_feasibility(task_factory, "f9", "s9"), runtime)
    assert other.status is ResultStatus.OK
    assert runtime.db.con.execute("SELECT count(*) FROM overlap_sets").fetchone()[0] == fingerprints
    assert [r.task_id for _, r in runtime.tasks.unposted()] == ["f1", "f9"]


def test_a_second_delivery_of_a_statistics_task_is_answered_from_the_store(
    runtime: NodeRuntime, task_factory: TaskFactory
) -> None:
    first = execute_task(task_factory(), runtime)
    again = execute_task(task_factory(attempt=2), runtime)
    assert again == first and again.status is ResultStatus.OK
    kinds = _kinds(runtime, "study-1")
    assert kinds.count("task_received") == 2 and kinds.count("value_released") == 1
    [received] = [e for e in runtime.audit.entries("study-1") if e.kind == "task_received"][1:]
    assert received.payload["attempt"] == 2


def test_a_task_for_another_hospital_is_not_run(runtime: NodeRuntime, task_factory: TaskFactory) -> None:
    result = execute_task(task_factory(hospital="elsewhere"), runtime)
    assert result.status is ResultStatus.ERROR
    assert result.reason == "this node serves hospital gosh, not elsewhere"
    assert "query_run" not in _kinds(runtime, "study-1")


def test_unexpected_failures_send_a_generic_message_and_audit_the_error(
    runtime: NodeRuntime, task_factory: TaskFactory, tmp_path: Path
) -> None:
    (tmp_path / "tiny.csv").unlink()  # a configured file vanished: the node's problem, not the requester's
    result = execute_task(task_factory(params={"dataset": "tiny", "variable": "weight"}), runtime)
    assert result.status is ResultStatus.ERROR
    assert result.reason == INTERNAL_ERROR
    [error] = [e for e in runtime.audit.entries("study-1") if e.kind == "error"]
    assert error.payload["error"] == "internal"
    assert str(tmp_path) not in json.dumps(result.model_dump(mode="json"))


def test_noop_releases_an_empty_audited_payload(runtime: NodeRuntime, task_factory: TaskFactory) -> None:
    result = execute_task(task_factory(analysis="system.noop", params={}), runtime)
    assert result.status is ResultStatus.OK
    assert result.payload["values"] == {}
    assert _kinds(runtime, "study-1")[-2:] == ["value_released", "usage_receipt"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "{}"),
        ({"dataset": "cnsim", "variable": "LAB_TSC"}, '{"dataset": "cnsim", "variable": "LAB_TSC"}'),
        (
            {"cohort": {"a": 1, "b": 2}, "breakdowns": ["sex"]},
            '{"breakdowns": ["sex"], "cohort": {"a": 1, "b": 2}}',
        ),
    ],
)
def test_params_summary_shows_the_parameters_themselves(params: dict[str, object], expected: str) -> None:
    """The steward's list shows parameters as JSON, never a placeholder such as <text, 83 chars>."""
    assert params_summary(params) == expected


def test_a_long_summary_is_cut_but_the_full_parameters_are_kept_for_the_steward(
    runtime: NodeRuntime, task_factory: TaskFactory
) -> None:
    assert params_summary({"cohort": "x" * 500}).endswith("…")
    long_name = "LAB_TSC" + "x" * 400
    task = task_factory(
        params={"dataset": "cnsim", "variable": long_name},
        requester={"organisation": "pharma-y", "category": "industry"},
        study_id="long",
    )
    execute_task(task, runtime)
    pending = runtime.approvals.get("long")
    assert json.loads(pending.params)["variable"] == long_name
    assert pending.purpose == "testing" and json.loads(pending.hospitals) == ["gosh"]
