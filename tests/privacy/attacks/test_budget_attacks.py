"""Family 7: query budgets stop repeated probing (Policy(query_budget=...))."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attack_kit import attempt, federation

from phds.node.policy import Policy, PolicyRule, QueryBudget
from phds.protocol.tasks import Task

MEAN = {"dataset": "cnsim", "variable": "LAB_TSC"}


def budget(**kw: Any) -> Policy:
    return Policy(
        rules=[PolicyRule(name="all", analyses=["*"], approval="auto")], query_budget=QueryBudget(**kw)
    )


def test_max_repeats_stops_identical_probe(tmp_path: Path, planted: Any) -> None:
    """max_repeats = 2: the third identical study is refused."""
    with federation(tmp_path, {"site1": planted}, policy=budget(max_repeats=2)) as fed:
        runs = [attempt(fed, "stats.mean_variance", MEAN) for _ in range(3)]
    assert runs[0].result is not None
    assert runs[2].result is None and not runs[2].releases["site1"], runs[2].releases


def test_max_queries_stops_varied_probes(tmp_path: Path, planted: Any) -> None:
    """max_queries = 3: a fourth study on the dataset (another variable each time) is refused."""
    with federation(tmp_path, {"site1": planted}, policy=budget(max_queries=3)) as fed:
        runs = [attempt(fed, "stats.mean_variance", {**MEAN, "variable": v})
                for v in ("LAB_TSC", "LAB_TRIG", "LAB_HDL", "PM_BMI_CONTINUOUS")]  # fmt: skip
    assert runs[3].result is None and not runs[3].releases["site1"], runs[3].releases


def test_budget_spans_analyses(tmp_path: Path, planted: Any) -> None:
    """max_queries = 2 across analyses: mean_variance, table, then a GLM on the same dataset. The overlap
    guard is off here (a development policy), so the refusal can only be the budget's."""
    policy = budget(max_queries=2).model_copy(update={"differencing_guard": False})
    with federation(tmp_path, {"site1": planted}, policy=policy) as fed:
        first = attempt(fed, "stats.mean_variance", MEAN)
        second = attempt(fed, "stats.table", {"table": {"dataset": "cnsim"}, "rows": "GENDER"})
        run = attempt(fed, "stats.glm", {"table": {"dataset": "cnsim"}, "formula": "LAB_TSC ~ GENDER"})
    assert first.result is not None and second.result is not None
    assert run.result is None and not run.releases["site1"], run.releases
    assert "query budget" in run.refused["site1"]


def test_hub_renames_requester_to_reset_budget(tmp_path: Path, planted: Any) -> None:
    """Signed studies: the hub rewrites the requester organisation of each task to a fresh name; the budget
    must follow the attested organisation."""
    names = iter(f"org{i}" for i in range(10))

    def rename(t: Task) -> Task:
        return t.model_copy(
            update={"requester": t.requester.model_copy(update={"organisation": next(names)})}
        )

    with federation(tmp_path, {"site1": planted}, policy=budget(max_repeats=1), signed=True) as fed:
        runs = [attempt(fed, "stats.mean_variance", MEAN, tamper=rename) for _ in range(2)]
    assert runs[1].result is None and not runs[1].releases["site1"], runs[1].releases


def test_repeats_by_cosmetic_variation(tmp_path: Path, planted: Any) -> None:
    """max_repeats = 1 with max_queries = 2: cosmetic variants (quantile lists) still count as queries."""
    with federation(tmp_path, {"site1": planted}, policy=budget(max_repeats=1, max_queries=2)) as fed:
        params = {"table": {"dataset": "cnsim"}, "variable": "LAB_TSC"}
        runs = [attempt(fed, "stats.summary", {**params, "quantiles": [q]})
                for q in (0.5, 0.5000001, 0.4999999)]  # fmt: skip
    assert runs[2].result is None and not runs[2].releases["site1"], runs[2].releases
