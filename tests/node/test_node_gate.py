"""The gate: the only way out. Each release step alone, then the chain; every attempt to make a small
count or an individual value leave exactly must fail here."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from phds.errors import DisclosureRefused, InputError
from phds.node.audit import AuditLog
from phds.node.gate import AuditStep, Gate, GateContext, Release
from phds.node.gate.guard import OverlapStep, QueryBudgetStep
from phds.node.gate.rules import RulesStep, ValidateStep
from phds.node.overlap_store import OverlapGuard
from phds.node.policy import Policy
from phds.privacy.aggregates import (
    BreakdownAggregate,
    CountAggregate,
    DesignEvidence,
    ModelAggregate,
    Persons,
    PointEvidence,
    RiskSetEvidence,
    SumAggregate,
)

CTX = GateContext(study_id="s1", task_id="t1", requester_org="uni-leiden", analysis="feasibility.count")
OTHER_ORG = GateContext(study_id="s2", task_id="t2", requester_org="pharma-x", analysis="feasibility.count")
U = "tabular:cnsim"


def people(n: int, start: int = 0) -> Persons:
    return Persons.of(U, np.arange(start, start + n))


def _gate(audit: AuditLog, **policy: Any) -> Gate:
    return Gate(Policy(**policy), audit)


def _exact_small_values(payload: Any, k: int) -> list[int]:
    """Every exact ``value`` in 1..k-1 anywhere in a payload: there must be none."""
    found: list[int] = []
    if isinstance(payload, dict):
        v = payload.get("value")
        if isinstance(v, int) and not isinstance(v, bool) and 1 <= v < k:
            found.append(v)
        for item in payload.values():
            found += _exact_small_values(item, k)
    elif isinstance(payload, list):
        for item in payload:
            found += _exact_small_values(item, k)
    return found


# -- the audit step and the chain -----------------------------------------------------------------------


def test_released_payload_is_audited_before_return(audit: AuditLog) -> None:
    result = _gate(audit).release(CTX, [CountAggregate("n", people(42))])
    entry = audit.entries()[-1]
    assert entry.kind == "value_released"
    assert (entry.study_id, entry.task_id, entry.seq) == ("s1", "t1", result.audit_seq)
    assert entry.payload == result.payload
    assert result.payload["values"]["n"]["value"] == 42
    assert audit.verify().ok


def test_a_refusal_is_audited_and_releases_nothing_of_the_task(audit: AuditLog) -> None:
    """A refused release leaves no value_released entry, only the error, and no trace in the guard."""
    gate = _gate(audit)
    bad = ModelAggregate("m", people(3), 1, {"x": 1.0})
    with pytest.raises(DisclosureRefused):
        gate.release(CTX, [CountAggregate("n", people(50)), bad])
    assert [e.kind for e in audit.entries()] == ["error"]
    assert OverlapGuard(audit.db).stored(U) == 0


def test_steps_chain_like_client_mods(audit: AuditLog) -> None:
    """A step sees the release before and after the rest of the chain (Flower's mod contract)."""
    seen: list[str] = []

    def spy(release: Release, call_next: Any) -> Release:
        seen.append(f"before:{len(release.values)}")
        out = call_next(release)
        seen.append(f"after:{len(out.values)}")
        return out

    gate = Gate(Policy(), audit, steps=[ValidateStep(), spy, RulesStep(), AuditStep(audit)])
    gate.release(CTX, [CountAggregate("n", people(9))])
    assert seen == ["before:0", "after:1"]


def test_a_chain_without_the_audit_step_cannot_release(audit: AuditLog) -> None:
    gate = Gate(Policy(), audit, steps=[ValidateStep(), RulesStep()])
    with pytest.raises(InputError, match="audit step"):
        gate.release(CTX, [CountAggregate("n", people(9))])
    assert audit.entries() == []


def test_duplicate_aggregate_names_are_refused(audit: AuditLog) -> None:
    with pytest.raises(InputError, match="unique"):
        _gate(audit).release(CTX, [CountAggregate("n", people(9)), CountAggregate("n", people(8))])


# -- counts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_small_count_leaves_as_less_than_five(audit: AuditLog, n: int) -> None:
    result = _gate(audit).release(CTX, [CountAggregate("n", people(n))])
    released = result.payload["values"]["n"]
    assert released["display"] == "<5"
    assert released["value"] is None
    assert _exact_small_values(audit.entries()[-1].payload, 5) == []
    assert result.notes[0].action == "suppressed"


@pytest.mark.parametrize("n", [5, 7, 10])
def test_threshold_raised_by_policy_applies(audit: AuditLog, n: int) -> None:
    result = _gate(audit, min_cell_count=11).release(CTX, [CountAggregate("n", people(n))])
    assert result.payload["values"]["n"]["display"] == "<11"
    assert result.payload["min_cell_count"] == 11


def test_a_count_is_of_distinct_persons(audit: AuditLog) -> None:
    """An analysis cannot inflate a count by repeating ids: the gate counts distinct persons."""
    result = _gate(audit).release(CTX, [CountAggregate("n", Persons.of(U, [1, 1, 1, 2, 2, 2]))])
    assert result.payload["values"]["n"]["display"] == "<5"


# -- breakdowns -----------------------------------------------------------------------------------------


def _labels(**cells: int) -> tuple[Persons, np.ndarray]:
    labels = np.asarray([name for name, n in cells.items() for _ in range(n)], dtype=object)
    return people(len(labels)), labels


def test_breakdown_small_cell_cannot_be_recovered_from_the_total(audit: AuditLog) -> None:
    persons, labels = _labels(female=3, male=40, other=12)
    agg = BreakdownAggregate("sex", persons, labels, ["female", "male", "other"])
    out = _gate(audit).release(CTX, [agg]).payload["values"]["sex"]
    assert out["cells"]["female"]["display"] == "<5"
    assert sum(1 for c in out["cells"].values() if c["suppressed"]) >= 2  # complementary suppression
    assert _exact_small_values(out, 5) == []


def test_zeros_beside_a_small_cell_are_suppressed_too(audit: AuditLog) -> None:
    """A zero next to a small cell would place those few persons in one row: it leaves as "<5"."""
    persons, labels = _labels(a=2, b=30, c=30)
    agg = BreakdownAggregate("t", persons, labels, ["a", "b", "c", "d"])
    cells = _gate(audit).release(CTX, [agg]).payload["values"]["t"]["cells"]
    assert cells["d"]["value"] is None
    _, labels = _labels(b=30, c=30)
    agg = BreakdownAggregate("t2", people(60, start=1000), labels, ["b", "c", "d"])
    assert _gate(audit).release(OTHER_ORG, [agg]).payload["values"]["t2"]["cells"]["d"]["value"] == 0


def test_undeclared_text_levels_never_leave(audit: AuditLog) -> None:
    """A rare diagnosis observed in the data must not become a cell name."""
    persons, labels = _labels(**{"Kawasaki disease": 30, "asthma": 40})
    agg = BreakdownAggregate("dx", persons, labels, ["Kawasaki disease", "asthma"], declared=False)
    with pytest.raises(InputError, match=r"declare|list the levels") as err:
        _gate(audit).release(CTX, [agg])
    assert err.value.field == "analysis.params.levels"


def test_undeclared_small_levels_merge_into_other(audit: AuditLog) -> None:
    persons, labels = _labels(**{"1": 40, "2": 35, "7": 2})
    agg = BreakdownAggregate("code", persons, labels, ["1", "2", "7"], declared=False)
    cells = _gate(audit).release(CTX, [agg]).payload["values"]["code"]["cells"]
    assert "7" not in cells
    assert cells["other"]["display"] == "<5"


def test_labels_outside_the_grid_are_an_analysis_error(audit: AuditLog) -> None:
    persons, labels = _labels(a=10, b=10)
    with pytest.raises(InputError, match="outside"):
        _gate(audit).release(CTX, [BreakdownAggregate("t", persons, labels, ["a"])])


# -- sums -----------------------------------------------------------------------------------------------


def test_sums_of_few_persons_are_withheld(audit: AuditLog) -> None:
    agg = SumAggregate("m", people(4), {"sum": np.ones(4)})
    out = _gate(audit).release(CTX, [agg]).payload["values"]["m"]
    assert out["values"] is None
    assert out["n"]["display"] == "<5"


def test_the_mean_of_a_binary_column_is_a_count(audit: AuditLog) -> None:
    """Attack: the sum of a 0/1 column with 2 ones is the count 2. It is gated as a count: withheld."""
    x = np.zeros(60)
    x[:2] = 1.0
    out = _gate(audit).release(CTX, [SumAggregate("m", people(60), {"sum": x}, variable=x)])
    assert out.payload["values"]["m"]["values"] is None
    assert "count" in out.notes[0].reason


def test_one_dominant_value_cannot_carry_a_sum(audit: AuditLog) -> None:
    """Attack: Σ exp(50·x) is about the exponential of the maximum; the N-K rule withholds it."""
    x = np.random.default_rng(8).normal(size=200)
    out = _gate(audit).release(CTX, [SumAggregate("m", people(200), {"sum": np.exp(50 * x)})])
    assert out.payload["values"]["m"]["values"] is None
    assert re.search(r"\d", out.notes[0].reason) is None or "N-K" in out.notes[0].reason


def test_ordinary_sums_leave_exactly(audit: AuditLog) -> None:
    x = np.random.default_rng(1).normal(5.0, 1.0, 300)
    out = _gate(audit).release(CTX, [SumAggregate("m", people(300), {"sum": x}, variable=x)])
    assert out.payload["values"]["m"]["values"]["sum"] == pytest.approx(float(x.sum()), rel=1e-12)


def test_non_finite_contributions_are_refused(audit: AuditLog) -> None:
    x = np.ones(20)
    x[3] = np.nan
    with pytest.raises(InputError, match="finite"):
        _gate(audit).release(CTX, [SumAggregate("m", people(20), {"sum": x})])


# -- models ---------------------------------------------------------------------------------------------


def _design(n: int, rng: np.random.Generator) -> DesignEvidence:
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n).astype(float)])
    return DesignEvidence(x, ["Intercept", "z", "g"], rng.normal(size=n))


def test_an_ordinary_model_passes(audit: AuditLog) -> None:
    d = _design(400, np.random.default_rng(2))
    out = _gate(audit).release(CTX, [ModelAggregate("glm", people(400), 3, {"r": [[1.0]]}, design=d)])
    assert out.payload["values"]["glm"]["n_obs"]["value"] == 400


def test_a_bump_covariate_around_one_patient_is_refused(audit: AuditLog) -> None:
    """Attack: I(exp(-1e6*(x-v)**2)) is 1 for one row and 0 elsewhere; the design isolates that row."""
    rng = np.random.default_rng(3)
    d = _design(400, rng)
    bump = np.exp(-1e6 * (d.x[:, 1] - d.x[7, 1]) ** 2)
    x = np.column_stack([d.x, bump])
    bad = DesignEvidence(x, [*d.columns, "bump"], d.y)
    with pytest.raises(DisclosureRefused):
        _gate(audit).release(CTX, [ModelAggregate("glm", people(400), 4, {"r": [[1.0]]}, design=bad)])


def test_a_model_of_few_rows_or_saturated_is_refused(audit: AuditLog) -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(DisclosureRefused):
        _gate(audit).release(CTX, [ModelAggregate("glm", people(4), 1, {})])
    with pytest.raises(DisclosureRefused):
        _gate(audit).release(CTX, [ModelAggregate("glm", people(30), 11, {}, design=_design(30, rng))])


def test_a_hub_beta_beyond_the_logit_clamp_is_refused(audit: AuditLog) -> None:
    """Attack: a hub proposes β so large that the working weights fall on a few rows."""
    d = _design(400, np.random.default_rng(5))
    eta = 60.0 * d.x[:, 1]
    point = PointEvidence(eta, np.exp(-np.abs(eta)))
    with pytest.raises(DisclosureRefused, match="linear predictor"):
        _gate(audit).release(CTX, [ModelAggregate("glm", people(400), 3, {}, design=d, point=point)])


def test_a_hub_beta_that_concentrates_a_risk_set_is_refused(audit: AuditLog) -> None:
    """Attack: exp(xβ) dominated by one member exposes the risk set's maximum covariate."""
    d = _design(300, np.random.default_rng(6))
    weights = np.exp(25.0 * np.sort(d.x[:, 1]))
    risk = RiskSetEvidence(weights, np.arange(20, 301, 20))
    with pytest.raises(DisclosureRefused, match="risk set"):
        _gate(audit).release(CTX, [ModelAggregate("cox", people(300), 3, {}, design=d, risk_sets=risk)])


# -- the overlap guard ----------------------------------------------------------------------------------


def test_cohort_one_person_away_is_refused_for_any_requester(audit: AuditLog) -> None:
    """Attack: differencing two counts, or two colluding organisations asking one each."""
    gate = _gate(audit)
    gate.release(CTX, [CountAggregate("n", people(100))])
    with pytest.raises(DisclosureRefused) as err:
        gate.release(OTHER_ORG, [CountAggregate("n", people(99))])
    assert re.search(r"\d", err.value.message) is None  # the refusal does not say how far apart
    assert audit.entries()[-1].kind == "error"


def test_same_cohort_again_or_far_apart_is_allowed(audit: AuditLog) -> None:
    gate = _gate(audit)
    gate.release(CTX, [CountAggregate("n", people(100))])
    gate.release(OTHER_ORG, [CountAggregate("n", people(100))])
    gate.release(CTX, [CountAggregate("n", people(120))])


def test_guard_covers_sums_and_breakdown_cells(audit: AuditLog) -> None:
    """Attack: two means over cohorts a few persons apart give those persons' values (n, sum)."""
    gate = _gate(audit)
    x = np.random.default_rng(7).normal(size=100)
    gate.release(CTX, [SumAggregate("m", people(100), {"sum": x})])
    with pytest.raises(DisclosureRefused):
        gate.release(CTX, [SumAggregate("m", people(98), {"sum": x[:98]})])


def test_guard_off_in_a_development_policy(audit: AuditLog) -> None:
    gate = _gate(audit, differencing_guard=False)
    gate.release(CTX, [CountAggregate("n", people(100))])
    gate.release(CTX, [CountAggregate("n", people(99))])


# -- query budgets --------------------------------------------------------------------------------------


def _study(i: int, org: str = "uni-leiden", query: str = "q") -> GateContext:
    return GateContext(f"s{i}", f"t{i}", org, "stats.table", query_hash=query)


def test_query_budget_caps_studies_per_requester_and_dataset(audit: AuditLog) -> None:
    gate = _gate(audit, query_budget={"max_queries": 2, "period_days": 30})
    gate.release(_study(1, query="a"), [CountAggregate("n", people(100))])
    gate.release(_study(1, query="a"), [CountAggregate("n", people(100))])  # the same study again: free
    gate.release(_study(2, query="b"), [CountAggregate("n", people(100))])
    with pytest.raises(DisclosureRefused, match="query budget"):
        gate.release(_study(3, query="c"), [CountAggregate("n", people(100))])
    gate.release(_study(4, org="pharma-x", query="c"), [CountAggregate("n", people(100))])


def test_repeats_are_locked_out(audit: AuditLog) -> None:
    gate = _gate(audit, query_budget={"max_repeats": 1})
    gate.release(_study(1), [CountAggregate("n", people(100))])
    with pytest.raises(DisclosureRefused, match="repeat"):
        gate.release(_study(2), [CountAggregate("n", people(100))])


def test_steps_can_be_used_alone(audit: AuditLog) -> None:
    """Each step is a plain callable: the guard step refuses without the rest of the chain."""
    guard = OverlapStep(OverlapGuard(audit.db))
    budget = QueryBudgetStep(audit.db)
    release = Release(CTX, [], Policy())
    release.guard("n", people(50))
    assert guard(release, lambda r: r) is release
    assert budget(release, lambda r: r) is release
    again = Release(OTHER_ORG, [], Policy())
    again.guard("n", people(49))
    with pytest.raises(DisclosureRefused):
        guard(again, lambda r: r)
