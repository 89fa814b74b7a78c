"""Family 9: differential privacy at the node: policy and study options, noisy releases, the ledger, repeats.

Every test runs the real gate over DataSHIELD's CNSIM files (three hospitals) in signed federations, so
the DP request a test makes is the one the requester signed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attack_kit import cnsim_path, load_csv

from phds.analyses.context import DpInForce
from phds.analyses.testing import Federation
from phds.errors import DisclosureRefused, InputError
from phds.node.dp_ledger import NETWORK
from phds.node.gate import AuditStep, Gate, GateContext
from phds.node.gate.dp_step import DpStep
from phds.node.gate.rules import RulesStep, ValidateStep
from phds.node.policy import DifferentialPrivacy, DpLoss, DpRequirement, Policy, PolicyRule
from phds.privacy.aggregates import CountAggregate, Persons
from phds.privacy.dp import PrivacyLoss

TABLE = {"table": {"dataset": "cnsim"}, "rows": "GENDER", "levels": {"GENDER": ["0", "1"]}}
MEAN = {"dataset": "cnsim", "variable": "LAB_TSC"}


def policy(**dp: Any) -> Policy:
    return Policy(
        rules=[PolicyRule(name="all", analyses=["*"], approval="auto")], dp=DifferentialPrivacy(**dp)
    )


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    with Federation({f"h{i}": {"cnsim": cnsim_path(i)} for i in (1, 2, 3)}, policy=policy(), folder=tmp_path,
                    signed=True) as federation:  # fmt: skip
        yield federation


def _cells(run: Any, hospital: str = "h1") -> dict[str, Any]:
    return dict(run.releases[hospital][-1]["values"]["cells"]["cells"])


def _levels(extra: int) -> dict[str, Any]:
    """The table with one more (empty) level: another query, so fresh noise and a fresh spend."""
    return {**TABLE, "levels": {"GENDER": ["0", "1", str(extra)]}}


def _truth(i: int, column: str = "GENDER") -> dict[str, int]:
    frame = load_csv(cnsim_path(i))
    return {str(k): int(v) for k, v in frame[column].value_counts().items()}


def test_exact_by_default_and_noisy_when_the_study_asks(fed: Federation) -> None:
    exact = fed.run("stats.table", TABLE)
    assert exact.error is None
    truth = _truth(1)
    assert {k: c["value"] for k, c in _cells(exact).items() if k in truth} == {k: truth[k] for k in truth}
    assert all(c.get("dp") is None for c in _cells(exact).values())

    noisy = fed.run("stats.table", TABLE, dp={"epsilon": 1.0})
    assert noisy.error is None, noisy.refused
    for level, cell in _cells(noisy).items():
        stmt = cell["dp"]
        assert stmt["mechanism"] == "discrete_gaussian" and stmt["ci95"] > 0
        assert cell["lower"] <= cell["value"] <= cell["upper"]
        if level in truth:  # within 5 half-widths: a check that fails only with probability ~1e-10
            assert abs(cell["value"] - truth[level]) <= 5 * stmt["ci95"]
    assert noisy.result is not None and noisy.result["dp_budget"]["h1"][0]["dataset"] == "tabular:cnsim"


def test_small_cells_leave_noisy_not_exact(tmp_path: Path) -> None:
    """The attack DP stops: a cohort of one child. Exact rules say "<5"; DP says a noisy number whose
    interval covers 0..k, so nothing distinguishes the child's presence."""
    site = {"cnsim": cnsim_path(1)}
    with Federation({"h1": site}, policy=policy(), folder=tmp_path, signed=True) as fed:
        run = fed.run("stats.table", {**TABLE, "levels": {"GENDER": ["0", "1", "7"]}}, dp={"rho": 0.05})
    cell = _cells(run)["7"]  # no child has level 7
    assert cell["dp"] is not None and not cell["suppressed"]
    assert cell["lower"] == 0 and cell["upper"] >= 5  # the interval admits 0 to k: presence is hidden


def test_policy_requires_dp_for_a_category_and_the_stricter_loss_wins(tmp_path: Path) -> None:
    need = DpRequirement(name="industry", categories=["industry"], rho=0.01)
    with Federation({"h1": {"cnsim": cnsim_path(1)}}, policy=policy(require=[need]), folder=tmp_path,
                    signed=True) as fed:  # fmt: skip
        academic = fed.run("stats.table", TABLE, category="academic")
        industry = fed.run("stats.table", TABLE, requester="pharma", category="industry")
        other = {**TABLE, "levels": {"GENDER": ["0", "1", "9"]}}  # another query: fresh noise, fresh spend
        asked_more = fed.run("stats.table", other, requester="pharma", category="industry", dp={"rho": 1.0})
        third = {**TABLE, "levels": {"GENDER": ["0", "1", "8"]}}
        asked_less = fed.run("stats.table", third, requester="pharma", category="industry", dp={"rho": 0.001})
    assert all(c.get("dp") is None for c in _cells(academic).values())
    spent = [run.releases["h1"][-1]["budget"][0]["spent_rho"] for run in (industry, asked_more, asked_less)]
    assert spent[0] == pytest.approx(0.01)
    assert spent[1] - spent[0] == pytest.approx(0.01)  # the policy's loss is smaller: it wins
    assert spent[2] - spent[1] == pytest.approx(0.001)  # the study's is smaller: it wins


def test_repeat_returns_the_same_release_at_no_cost(fed: Federation) -> None:
    """Averaging attack: ask the identical query 5 times. Every answer is the first, and only the first
    spent budget."""
    runs = [fed.run("stats.table", TABLE, dp={"epsilon": 0.5}) for _ in range(5)]
    first = {k: c["value"] for k, c in _cells(runs[0]).items()}
    for run in runs[1:]:
        assert {k: c["value"] for k, c in _cells(run).items()} == first
        assert all(c["dp"]["reused"] for c in _cells(run).values())
    budgets = [run.releases["h1"][-1]["budget"][0]["spent_rho"] for run in runs]
    assert budgets == [budgets[0]] * 5
    # Another organisation asking the same gets the same noisy answer too (collusion gains nothing).
    other = fed.run("stats.table", TABLE, requester="other", dp={"epsilon": 0.5})
    assert {k: c["value"] for k, c in _cells(other).items()} == first


def test_requester_budget_runs_out(tmp_path: Path) -> None:
    """Fresh noise needs a fresh query: vary it (another level list each time) until the budget refuses."""
    p = policy(requester_budget=DpLoss(rho=0.1))
    with Federation({"h1": {"cnsim": cnsim_path(1)}}, policy=p, folder=tmp_path, signed=True) as fed:
        runs = [fed.run("stats.table", _levels(9 + i), dp={"rho": 0.04}) for i in range(3)]
    assert runs[0].error is None and runs[1].error is None
    assert "privacy budget" in runs[2].refused["h1"], runs[2].refused
    assert runs[1].releases["h1"][-1]["budget"][0]["remaining_rho"] == pytest.approx(0.02)


def test_network_ceiling_is_shared_by_colluding_organisations(tmp_path: Path) -> None:
    p = policy(requester_budget=DpLoss(rho=1.0), network_budget=DpLoss(rho=0.1))
    with Federation({"h1": {"cnsim": cnsim_path(1)}}, policy=p, folder=tmp_path, signed=True) as fed:
        runs = [
            fed.run("stats.table", _levels(9 + i), requester=f"org{i}", dp={"rho": 0.04}) for i in range(3)
        ]
    assert runs[1].error is None
    assert "network's budget" in runs[2].refused["h1"], runs[2].refused


def test_sums_need_bounds_and_clip(fed: Federation) -> None:
    missing = fed.run("stats.mean_variance", MEAN, dp={"epsilon": 1.0})
    assert "dp.bounds.LAB_TSC" in missing.refused["h1"], missing.refused
    run = fed.run("stats.mean_variance", MEAN, dp={"epsilon": 1.0, "bounds": {"LAB_TSC": [0, 12]}})
    assert run.error is None and run.result is not None
    frames = [load_csv(cnsim_path(i))["LAB_TSC"].dropna().clip(0, 12) for i in (1, 2, 3)]
    pooled = sum(f.sum() for f in frames) / sum(len(f) for f in frames)
    assert abs(run.result["mean"] - pooled) < 0.2  # σ of the noisy mean is about 0.03 here
    moments = run.releases["h1"][0]["values"]["moments"]
    assert moments["dp"]["sum"]["mechanism"] == "gaussian" and moments["n"]["dp"] is not None


def test_models_are_refused_under_dp(fed: Federation) -> None:
    glm = {"table": {"dataset": "cnsim"}, "formula": "LAB_TSC ~ GENDER"}
    with pytest.raises(InputError) as exc:
        fed.run("stats.glm", glm, dp={"epsilon": 1.0})
    assert exc.value.field == "dp"


def test_node_refuses_an_analysis_without_dp_when_policy_requires_it(tmp_path: Path) -> None:
    need = DpRequirement(analyses=["stats.*"], rho=0.1)
    glm = {"table": {"dataset": "cnsim"}, "formula": "LAB_TSC ~ GENDER"}
    with Federation({"h1": {"cnsim": cnsim_path(1)}}, policy=policy(require=[need]), folder=tmp_path,
                    signed=True) as fed:  # fmt: skip
        run = fed.run("stats.glm", glm)
    assert run.result is None and "no differentially private version" in run.refused["h1"]


def test_hub_cannot_strip_the_dp_request(tmp_path: Path) -> None:
    """A malicious hub drops the signed dp block from the task: the node uses the signed one."""
    with Federation({"h1": {"cnsim": cnsim_path(1)}}, policy=policy(), folder=tmp_path, signed=True) as fed:
        run = fed.run(
            "stats.table", TABLE, dp={"rho": 0.05}, tamper=lambda t: t.model_copy(update={"dp": None})
        )
    assert all(c["dp"] is not None for c in _cells(run).values())


def test_spend_and_release_commit_together(tmp_path: Path) -> None:
    """A failure after the DP step (here: a step that raises) leaves neither a spend nor an audit entry."""
    from phds.node.audit import AuditLog, NodeDatabase

    db = NodeDatabase(tmp_path / "node.db")
    audit = AuditLog(db)
    p = policy()
    gate = Gate(p, audit)

    def crash(release: Any, call_next: Any) -> Any:
        raise DisclosureRefused("simulated failure after the DP step")

    gate_crash = Gate(
        p, audit, steps=[ValidateStep(), DpStep(gate.ledger), RulesStep(), crash, AuditStep(audit)]
    )
    ctx = GateContext("s1", "t1", "org", "feasibility.count", dp=DpInForce(rho=0.1, delta=1e-6))
    agg = CountAggregate("persons", Persons.of("omop:cdm", list(range(40))))
    with pytest.raises(DisclosureRefused):
        gate_crash.release(ctx, [agg])
    assert gate.ledger.line("omop:cdm", "org").spent_rho == 0
    assert gate.ledger.cached  # the cache was rolled back too: a retry draws (and spends) once
    released = gate.release(ctx, [agg])
    assert released.payload["values"]["persons"]["dp"]["rho"] == pytest.approx(0.1)
    assert gate.ledger.line("omop:cdm", "org").spent_rho == pytest.approx(0.1)
    assert gate.ledger.line("omop:cdm", NETWORK).spent_rho == pytest.approx(0.1)
    db.close()


SURVIVAL = "tabular/datashield/SURVIVAL/COLLAPSE_NO_MISSING/collapse_no_missing_study{}.csv"


def test_kaplan_meier_on_the_fixed_grid_under_dp(tmp_path: Path, shared_data: Path) -> None:
    """KM under DP: every cell of the grid up to the horizon is a noisy count (no data-chosen bins), the
    pooled curve stays close to the exact one, and a grid without a horizon is refused, naming it."""
    tables = {f"h{i}": {"s": shared_data / SURVIVAL.format(i)} for i in (1, 2, 3)}
    km = {"table": {"dataset": "s"}, "duration": "SURVTIME", "event": "CENS", "time_width": 1.0}
    with Federation(tables, policy=policy(), folder=tmp_path, signed=True) as fed:
        exact = fed.run("survival.km", km)
        missing = fed.run("survival.km", km, dp={"epsilon": 4.0})
        noisy = fed.run("survival.km", {**km, "horizon": 5.0}, dp={"epsilon": 4.0})
    assert "analysis.params.horizon" in missing.refused["h1"], missing.refused
    assert noisy.error is None and noisy.result is not None, (noisy.error, noisy.refused)
    cells = noisy.releases["h1"][-1]["values"]["bins"]["cells"]
    assert len(cells) == 2 * 6 and all(c["dp"] is not None for c in cells.values())  # 5 bins + open tail
    assert exact.result is not None
    by_start = {b["start"]: b["survival"] for b in exact.result["pooled"]}
    for row in noisy.result["pooled"]:
        if row["start"] in by_start:
            assert abs(row["survival"] - by_start[row["start"]]) < 0.1, row


def test_summary_with_quantiles_under_dp(fed: Federation) -> None:
    """stats.summary under DP: one round of clipped moments and a fixed-grid histogram; the pooled mean,
    SD and median come out close to the exact ones (CNSIM's LAB_TSC, about 7,800 values)."""
    params = {"table": {"dataset": "cnsim"}, "variable": "LAB_TSC", "quantiles": [0.25, 0.5, 0.75]}
    exact = fed.run("stats.summary", params)
    noisy = fed.run("stats.summary", params, dp={"epsilon": 1.0, "bounds": {"LAB_TSC": [0, 12]}})
    assert exact.result is not None and noisy.result is not None, (noisy.error, noisy.refused)
    assert noisy.rounds == 1 and noisy.result["dp"]["histogram_bins"] == 50
    # Over 40 runs the noisy mean's error had a spread (SD) of 0.026 and the SD's of 0.044; the bounds
    # are ~5.5 of those, so a correct release fails less than once in a million runs (0.1 failed ~2%).
    assert abs(noisy.result["mean"] - exact.result["mean"]) < 0.15
    assert abs(noisy.result["sd"] - exact.result["sd"]) < 0.25
    for e, n in zip(exact.result["quantiles"], noisy.result["quantiles"], strict=True):
        assert abs(e["value"] - n["value"]) < 0.5, (e, n)  # one bin is 0.24 wide
    spent = noisy.releases["h1"][-1]["budget"][0]["spent_rho"]
    assert spent == pytest.approx(PrivacyLoss.from_epsilon(1.0, 1e-6).rho)  # the whole study, in one round
