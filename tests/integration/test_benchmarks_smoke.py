"""Smoke runs of the network benchmarks on tiny data: real hub and node processes, no time asserted.

Each benchmark's core (``measure``) runs with the smallest sizes; the test checks that the federated
network total equals the pooled count, and the shape of what would be written as JSON. The benchmark's
``main`` (which writes ``benchmarks/results/``) is not called, so real results are never overwritten.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # ``benchmarks`` is a top-level package of the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import bench_feasibility, bench_noop  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUMMARY_KEYS = {
    "repeats",
    "end_to_end_median_ms",
    "slowest_node_compute_median_ms",
    "overhead_median_ms",
    "slowest_node_task_median_ms",
    "hub_and_transport_median_ms",
    "runs",
}


def _check_runs(summary: dict[str, Any], hospitals: int) -> None:
    assert SUMMARY_KEYS <= set(summary)
    assert len(summary["runs"]) == summary["repeats"]
    for run in summary["runs"]:
        assert len(run["compute"]) == hospitals, "every node's compute time comes back from the hub"
        assert len(run["node_task"]) == hospitals, "every node's audit log has the study"
        assert run["overhead"] == pytest.approx(run["seconds"] - run["slowest_compute"], abs=1e-4)


def test_feasibility_counts_agree_with_the_pooled_count(tmp_path: Path) -> None:
    payload = bench_feasibility.measure(
        [2],
        patients=800,
        repeats=2,
        seed=3,
        breakdowns=[],
        cache=tmp_path / "cache",
        workdir=tmp_path / "work",
    )
    json.dumps(payload)  # what main() writes must be JSON
    [result] = payload["results"]
    assert result["nodes"] == 2 and len(result["hospitals"]) == 2
    assert result["federated"]["network_total"] == result["pooled"]["count"] == result["persons"]
    assert result["persons"] > 0
    _check_runs(result["federated"], 2)
    assert len(result["pooled"]["warm_runs_ms"]) == len(result["pooled"]["cold_runs_ms"]) == 2
    assert set(result["federated"]["cold_first_study"]["compute"]) == set(result["hospitals"])
    assert payload["targets"] == {}, "no target applies to N = 2 alone"


def test_the_pooled_file_holds_every_hospital_once(tmp_path: Path) -> None:
    import duckdb

    hospitals = bench_feasibility.synthetic_hospitals(tmp_path, 2, 200, 5)
    again = bench_feasibility.synthetic_hospitals(tmp_path, 2, 200, 5)
    assert again == hospitals, "generated once, then reused"
    pooled = bench_feasibility.pooled_file(hospitals)
    with duckdb.connect(str(pooled), read_only=True) as con:
        persons = con.execute("SELECT count(*), count(DISTINCT person_id) FROM person").fetchone()
        concepts = con.execute("SELECT count(*) FROM concept").fetchone()
    with duckdb.connect(str(hospitals[0].path), read_only=True) as con:
        one = con.execute("SELECT count(*) FROM concept").fetchone()
    assert persons == (400, 400), "person ids are offset per hospital, so none collide"
    assert concepts == one, "the vocabulary is taken once"


def test_noop_round_trips_are_measured(tmp_path: Path) -> None:
    payload = bench_noop.measure([1], repeats=3, warmup=1, workdir=tmp_path)
    json.dumps(payload)
    [result] = payload["results"]
    assert result["nodes"] == 1
    _check_runs(result, 1)
    assert set(payload["targets"]) == {"noop_median_le_50ms_1_node"}
    assert isinstance(payload["targets"]["noop_median_le_50ms_1_node"]["pass"], bool)


def test_the_gate_benchmark_runs_on_tiny_sizes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from benchmarks import bench_gate

    for name, value in {"DATASET": 3000, "COHORT": 400, "HISTORY": 3, "GLM_ROWS": 3000, "REPEATS": 2}.items():
        monkeypatch.setattr(bench_gate, name, value)
    feasibility = bench_gate.feasibility(tmp_path)
    glm = bench_gate.glm_round(tmp_path)
    signatures = bench_gate.signatures()
    assert feasibility["full"]["median_ms"] > 0 and glm["later_round"]["median_ms"] > 0
    assert signatures["glm"]["verify_ms"] > 0


def test_the_glm_and_cox_benchmarks_run_over_federations(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks import bench_cox, bench_glm

    monkeypatch.setattr(bench_glm, "ROWS", 2000)
    paths = bench_glm.simulate(tmp_path / "glm")
    with bench_glm.federation(paths, tmp_path / "glm-nodes") as network:
        study = bench_glm.run_study(network)
    assert study["rounds"] >= 3 and study["per_iteration_overhead_ms"] >= 0
    monkeypatch.setattr(bench_cox, "ROWS", 3000)
    seconds, compute, result = bench_cox.federated(bench_cox.dataset(tmp_path / "cox"), True, tmp_path)
    assert result["mode"] == "stratified_by_hospital" and seconds >= compute >= 0


def test_the_synthesis_benchmark_measures_every_part_on_a_small_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import bench_synthesis

    # The measurements run in spawned processes, which read the table size from the environment.
    monkeypatch.setenv("PHDS_SYNTHESIS_BENCH_ROWS", "500")
    monkeypatch.setattr(bench_synthesis, "ROWS", 500)
    payload = bench_synthesis.measure(repeats=1)
    json.dumps(payload)
    assert set(payload["median"]) == {"exact", "mst", "gate", "hub"}
    assert all(m["seconds"] > 0 and m["rss_peak_mib"] > 0 for m in payload["median"].values())
    assert payload["ratio_mst_to_exact_marginals"] > 1


def test_secure_and_clear_vector_sums_agree_with_the_seeds_and_survive_a_dropout(tmp_path: Path) -> None:
    from benchmarks import bench_secagg_network

    result = bench_secagg_network.measure_network(tmp_path, 3, [1, 1000], 1, dropout=True)
    json.dumps(result)
    for entry in result["lengths"]:
        for mode in ("clear", "secure"):
            [run] = entry[mode]["runs"]
            assert run["answered"] == ["sum-01", "sum-02", "sum-03"] and run["bytes"] > 0
            assert 0 <= run["max_abs_error"] <= run["error_bound"] + 1e-12
        assert list(entry["stage_close_median_s"]) == ["keys", "shares", "masked", "unmask"]
    dropout = result["dropout"]
    assert dropout["killed_after_masked_input"] == ["sum-01"] and dropout["recovered"], dropout
    [rounds] = dropout["run"]["secure_rounds"]
    assert "sum-01" in rounds["dropped_after_input"] and rounds["contributors"] == [
        "sum-01",
        "sum-02",
        "sum-03",
    ]
