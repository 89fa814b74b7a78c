"""The secure-aggregation hooks: combining the network sums gives what combining the releases gives.

Each study runs twice over the same real data, as in :class:`phds.analyses.testing.Federation`: in the
clear, and with ``secure_aggregation=True``, where every round with a layout is combined from the fixed-
point sum of the hospitals' summands alone (plain addition standing in for the masking protocol).
Counts must be equal; GLM and Cox coefficients within the fixed-point error stated in each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from phds.analyses import Final, NextRound, get_analysis
from phds.analyses.base import SecureLayout
from phds.analyses.context import LocalContext
from phds.analyses.cox_secure import SCALE as COX_SCALE
from phds.analyses.glm_secure import SCALE as GLM_SCALE
from phds.analyses.glm_secure import design_columns
from phds.analyses.testing import Federation, FederationRun, everything_auto
from phds.cohorts.count import AGE_GROUP_LEVELS, SEX_LEVELS
from phds.errors import InputError
from phds.omop.simulator import generate

COHORT = "entry:\n  condition: {concepts: [317009], descendants: true}\n"  # asthma, any age


def cnsim(shared_data: Path) -> dict[str, dict[str, Path]]:
    folder = shared_data / "tabular" / "datashield" / "CNSIM"
    return {f"site{i}": {"d": folder / f"CNSIM{i}.csv"} for i in (1, 2, 3)}


def survival(shared_data: Path) -> dict[str, dict[str, Path]]:
    folder = shared_data / "tabular" / "datashield" / "SURVIVAL" / "COLLAPSE_NO_MISSING"
    return {f"study{i}": {"s": folder / f"collapse_no_missing_study{i}.csv"} for i in (1, 2, 3)}


def both(
    hospitals: Any, analysis: str, params: dict[str, Any], **kw: Any
) -> tuple[FederationRun, FederationRun]:
    """The study in the clear and under secure aggregation, each on fresh nodes (the guard remembers)."""
    with Federation(hospitals, **kw) as fed:
        clear = fed.run(analysis, params)
    with Federation(hospitals, **kw) as fed:
        secure = fed.run(analysis, params, secure_aggregation=True)
    for run in (clear, secure):
        assert run.result is not None, (run.error, run.refused)
    return clear, secure


def numbers(obj: Any) -> Iterator[float]:
    if isinstance(obj, dict):
        for value in obj.values():
            yield from numbers(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from numbers(value)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield float(obj)


# -- feasibility.count ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def omop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    out = tmp_path_factory.mktemp("synth")
    return {
        r.path.stem: {"cdm": f"duckdb:///{r.path}"} for r in generate(out, hospitals=3, patients=1500, seed=5)
    }


@pytest.mark.parametrize("k", [5, 40])  # 40: small cells suppressed, totals become intervals
def test_feasibility_sums_equal_the_clear_combine_without_any_hospitals_count(
    omop: dict[str, dict[str, str]], k: int
) -> None:
    analysis = get_analysis("feasibility.count")
    params = {"cohort": COHORT, "breakdowns": ["sex", "age_group"]}
    policy = everything_auto().model_copy(update={"min_cell_count": k})
    with Federation(omop=omop, policy=policy) as fed:
        clear = fed.run(analysis, params)
    with Federation(omop=omop, policy=policy) as fed:
        secure = fed.run(analysis, params, secure_aggregation=True)
    assert clear.result is not None and secure.result is not None, (secure.error, secure.refused)
    assert list(secure.secure_layouts) == [1]
    # The releases under secure aggregation are on the fixed grids (every cell, zeros included) ...
    for payloads in secure.releases.values():
        cells = payloads[0]["values"]
        assert set(cells["by_sex"]["cells"]) == set(SEX_LEVELS)  # the audit log sorts keys
        assert set(cells["by_age_group"]["cells"]) == set(AGE_GROUP_LEVELS)
    # ... and the sums give exactly what combine gives on those same releases.
    parsed = analysis.parse_params(params)
    released = {h: p[0] for h, p in secure.releases.items()}
    expected = analysis.combine(parsed, 1, {}, released)
    assert isinstance(expected, Final)
    assert secure.result["total"] == expected.result["total"]
    assert secure.result["breakdowns"] == expected.result["breakdowns"]
    assert secure.result["total"] == clear.result["total"]  # persons do not depend on the grid
    # No hospital's count is in the result: the contributors are named with empty entries.
    assert secure.result["hospitals"] == {h: {} for h in sorted(omop)}
    assert secure.result["secure_aggregation"] is True
    hidden = [
        c["suppressed_contributions"]
        for cells in secure.result["breakdowns"].values()
        for c in cells.values()
    ]
    assert (max(hidden) > 0) == (k == 40)
    intervals = [
        c for cells in secure.result["breakdowns"].values() for c in cells.values() if not c["exact"]
    ]
    assert bool(intervals) == (k == 40)


def test_feasibility_under_secure_aggregation_refuses_a_breakdown_without_a_fixed_grid(
    omop: dict[str, dict[str, str]],
) -> None:
    analysis = get_analysis("feasibility.count")
    parsed = analysis.parse_params({"cohort": COHORT, "breakdowns": ["sex", "year"]})
    with pytest.raises(InputError, match=r"analysis\.params\.breakdowns.*year has none"):
        analysis.secure_layout(parsed, 1, {})
    with Federation(omop=omop) as fed:
        run = fed.run(analysis, {"cohort": COHORT, "breakdowns": ["year"]}, secure_aggregation=True)
        assert run.result is None and "analysis.params.breakdowns" in str(run.error)
        # A node refuses it too, before its gate (it must not release a grid the data chose).
        ctx = LocalContext(data=next(iter(fed.runtimes.values())).data, secure_aggregation=True)
        with pytest.raises(InputError, match="under secure aggregation a breakdown needs a fixed grid"):
            analysis.local(ctx, analysis.parse_params({"cohort": COHORT, "breakdowns": ["year"]}))


# -- stats.glm --------------------------------------------------------------------------------------

GLM_MODELS = [
    ("binomial", "DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS + LAB_HDL"),
    ("gaussian", "LAB_TSC ~ GENDER + PM_BMI_CONTINUOUS"),
]


@pytest.mark.parametrize(("family", "formula"), GLM_MODELS)
def test_glm_from_sums_equals_the_clear_fit_within_the_fixed_point_error(
    shared_data: Path, family: str, formula: str
) -> None:
    params = {"table": {"dataset": "d"}, "formula": formula, "family": family}
    clear, secure = both(cnsim(shared_data), "stats.glm", params)
    a, b = clear.result, secure.result
    assert a is not None and b is not None
    # Round 1 (design: level names, n) is clear; every IRLS round is a sum.
    assert sorted(secure.secure_layouts) == list(range(2, secure.rounds + 1))
    assert [c["term"] for c in b["coefficients"]] == [c["term"] for c in a["coefficients"]]
    assert b["converged"] and b["iterations"] == a["iterations"]
    assert b["n_obs"] == a["n_obs"] and b["hospitals"] == a["hospitals"]
    # Fixed point: each of m = 3 hospitals rounds every entry to 2⁻²⁰, so Σs is within e = m·2⁻²¹ and
    # to first order β moves by (ΣXᵀWX)⁻¹ δs; with Cov = φ (ΣXᵀWX)⁻¹, |δβ_j| ≤ e Σ_k |Cov_jk| / φ.
    e = 3 * 0.5 / GLM_SCALE
    inverse = np.abs(np.asarray(b["covariance"])) / b["dispersion"]
    bound = 4 * e * inverse.sum(axis=1) + 1e-10
    beta_a = np.array([c["estimate"] for c in a["coefficients"]])
    beta_b = np.array([c["estimate"] for c in b["coefficients"]])
    se_a = np.array([c["std_error"] for c in a["coefficients"]])
    se_b = np.array([c["std_error"] for c in b["coefficients"]])
    assert np.all(np.abs(beta_b - beta_a) <= bound), (np.abs(beta_b - beta_a), bound)
    assert np.max(np.abs(beta_b - beta_a)) < 5e-6  # measured: 8.0e-7 (binomial), 3.7e-9 (gaussian)
    assert np.max(np.abs(se_b / se_a - 1)) < 1e-6  # measured: 2.0e-7, 3.4e-11
    assert b["deviance"] == pytest.approx(a["deviance"], abs=3 * e * 4)
    assert b["null_deviance"] == pytest.approx(a["null_deviance"], abs=3 * e)
    # Per-hospital n were in the clear design round only; the result has the network's n alone.
    assert "n_by_hospital" not in b and b["secure_aggregation"] is True
    per_hospital = set(a["n_by_hospital"].values())
    assert not per_hospital & set(numbers(b))


def test_glm_design_columns_at_the_hub_are_those_every_node_builds(shared_data: Path) -> None:
    formula = "LAB_TSC ~ C(PM_BMI_CATEGORICAL) * LAB_HDL + I(LAB_TRIG ** 2) - 1"
    with Federation(cnsim(shared_data)) as fed:
        run = fed.run("stats.glm", {"table": {"dataset": "d"}, "formula": formula})
    assert run.result is not None
    levels = {v: spec["levels"] for v, spec in run.result["levels"].items()}
    assert design_columns(formula, levels) == [c["term"] for c in run.result["coefficients"]]


def test_glm_under_secure_aggregation_refuses_a_rank_deficient_design(shared_data: Path) -> None:
    params = {"table": {"dataset": "d"}, "formula": "LAB_TSC ~ LAB_HDL + I(2 * LAB_HDL)"}
    with Federation(cnsim(shared_data)) as fed:
        run = fed.run("stats.glm", params, secure_aggregation=True)
    assert run.result is None
    assert "rank-deficient across the network (aliased: I(2 * LAB_HDL))" in str(run.error)


def test_glm_restarts_from_the_design_round_when_the_contributors_change() -> None:
    glm = get_analysis("stats.glm")
    parsed = glm.parse_params({"table": {"dataset": "d"}, "formula": "y ~ x"})
    state = {"phase": "irls", "hospitals": ["a", "b", "c"], "restarts": 0, "levels": {}, "main_done": False,
             "null_done": True, "null_beta": None, "beta": None}  # fmt: skip
    layout = glm.secure_layout(parsed, 2, state)
    assert layout is not None
    sums = layout.unflatten(np.zeros(layout.length))
    outcome = glm.combine_secure(parsed, 2, state, sums, ["a", "c"])
    assert isinstance(outcome, NextRound) and outcome.state == {"phase": "design", "restarts": 1}
    assert glm.secure_layout(parsed, 1, {}) is None  # the design round is clear


# -- survival.cox -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("stratified", "ties"), [(True, "efron"), (True, "breslow"), (False, "efron")])
def test_cox_from_sums_equals_the_clear_fit_within_the_fixed_point_error(
    shared_data: Path, stratified: bool, ties: str
) -> None:
    params = {"table": {"dataset": "s"}, "duration": "SURVTIME", "event": "CENS",
              "covariates": ["age.60", "female", "pm10.16"], "ties": ties,
              "stratified_by_hospital": stratified, "time_width": 0.5}  # fmt: skip
    clear, secure = both(survival(shared_data), "survival.cox", params)
    a, b = clear.result, secure.result
    assert a is not None and b is not None
    clear_rounds = 1 if stratified else 2  # design (levels), and unstratified the bins
    assert sorted(secure.secure_layouts) == list(range(clear_rounds + 1, secure.rounds + 1))
    # Fixed point 2⁻²⁰ per entry: the Newton stop allows for it (cox_newton), so the fit may stop an
    # iteration early, within ~‖H⁻¹‖·3·2⁻²¹ of the clear one. Measured |Δβ| ≤ 2.6e-9, |Δse/se| ≤ 9e-10.
    beta_a = np.array([c["coef"] for c in a["coefficients"]])
    beta_b = np.array([c["coef"] for c in b["coefficients"]])
    se_a = np.array([c["se"] for c in a["coefficients"]])
    se_b = np.array([c["se"] for c in b["coefficients"]])
    inverse = np.abs(np.asarray(b["covariance"])).sum(axis=1)
    assert np.all(np.abs(beta_b - beta_a) <= 8 * inverse * 3 * 0.5 / COX_SCALE + 1e-10)
    assert np.max(np.abs(se_b / se_a - 1)) < 1e-7
    assert b["log_likelihood"] == pytest.approx(a["log_likelihood"], abs=1e-5)
    assert abs(b["iterations"] - a["iterations"]) <= 1
    # Round 1's counts are clear (events and dropped rows by hospital); n is the network's alone.
    assert b["n"] == a["n"] and b["events_by_hospital"] == a["events_by_hospital"]
    assert "n_by_hospital" not in b and b["secure_aggregation"] is True
    assert not set(a["n_by_hospital"].values()) & set(numbers(b))


def test_cox_refuses_sums_without_a_hospital_that_stopped_answering() -> None:
    cox = get_analysis("survival.cox")
    parsed = cox.parse_params({"table": {"dataset": "s"}, "duration": "t", "event": "e", "covariates": ["x"]})
    state = {"hospitals": ["a", "b"], "columns": ["x"], "beta": [0.0]}
    layout = cox.secure_layout(parsed, 2, state)
    assert layout is not None and cox.secure_layout(parsed, 1, {}) is None
    with pytest.raises(InputError, match="hospitals stopped answering: b"):
        cox.combine_secure(parsed, 2, state, layout.unflatten(np.zeros(layout.length)), ["a"])


# -- the layout, its encoding and its blocks ---------------------------------------------------------


def test_a_layout_depends_on_no_data(shared_data: Path, tmp_path: Path) -> None:
    """Two networks with different data (CNSIM's three sites; its third site split in three) fix the same
    layout for each round of the same study."""
    import pandas as pd

    frame = pd.read_csv(shared_data / "tabular" / "datashield" / "CNSIM" / "CNSIM3.csv")
    other = {}
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3), 1):
        frame.iloc[rows].to_csv(tmp_path / f"part{i}.csv", index=False)
        other[f"site{i}"] = {"d": tmp_path / f"part{i}.csv"}
    params = {
        "table": {"dataset": "d"},
        "formula": "DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS",
        "family": "binomial",
    }
    layouts = []
    for hospitals in (cnsim(shared_data), other):
        with Federation(hospitals) as fed:
            run = fed.run("stats.glm", params, secure_aggregation=True)
        assert run.result is not None, (run.error, run.refused)
        layouts.append(run.secure_layouts)
    first, second = layouts
    assert first[2] == second[2]
    assert {r: lay for r, lay in first.items() if r in second} == {
        r: lay for r, lay in second.items() if r in first
    }
    assert first[2].blocks[:3] == (("n_obs", 1), ("main.xtwx", 10), ("main.score", 4))


def test_flatten_refuses_a_value_beyond_the_clip_and_the_node_drops_out(shared_data: Path) -> None:
    layout = SecureLayout((("a", 2),), scale=2**20, clip=2.0**37)
    assert layout.flatten({"a": [1.0, -(2.0**37)]}) == [1.0, -(2.0**37)]
    with pytest.raises(InputError, match="exceeds the secure-aggregation range") as caught:
        layout.flatten({"a": [1.0, 2.0**37 + 1]})
    assert caught.value.field == "secure_aggregation"
    # A covariate in millionths makes ΣXᵀWX about 10¹⁵ at every site: each node refuses to encode it.
    params = {"table": {"dataset": "d"}, "formula": "LAB_TSC ~ I(LAB_HDL * 1000000)"}
    with Federation(cnsim(shared_data)) as fed:
        run = fed.run("stats.glm", params, secure_aggregation=True)
    assert run.result is None and run.error == "no hospital answered round 2"
    assert all("exceeds the secure-aggregation range" in why for why in run.refused.values())


def test_fixed_point_sums_are_exact_for_integers_and_round_per_hospital() -> None:
    from phds.secagg import SessionConfig

    config = SessionConfig(session_id="s", participants=["a", "b"], vector_length=3, scale=4)
    total = config.encode([3, 0.1, -0.3]) + config.encode([4, 0.1, 0.2])
    assert config.decode(total).tolist() == [7.0, 0.0, 0.0]  # 0.1 → 0/4 twice; −0.3 → −1/4, 0.2 → +1/4


@pytest.mark.parametrize(
    ("name", "params", "state", "round_no"),
    [
        ("feasibility.count", {"cohort": COHORT, "breakdowns": ["sex"]}, {}, 1),
        ("stats.glm", {"table": {"dataset": "d"}, "formula": "y ~ x"},
         {"phase": "irls", "hospitals": ["a"], "restarts": 0, "levels": {}, "main_done": False,
          "null_done": False, "null_beta": None, "beta": None, "n": 100}, 2),
        ("survival.cox", {"table": {"dataset": "s"}, "duration": "t", "event": "e", "covariates": ["x"]},
         {"hospitals": ["a"], "columns": ["x"], "beta": [0.0]}, 2),
    ],
)  # fmt: skip
def test_combine_secure_refuses_sums_with_a_missing_block(
    name: str, params: dict[str, Any], state: dict[str, Any], round_no: int
) -> None:
    analysis = get_analysis(name)
    assert analysis.secure_aggregation_support
    parsed = analysis.parse_params(params)
    layout = analysis.secure_layout(parsed, round_no, state)
    assert layout is not None
    sums = layout.unflatten(np.zeros(layout.length))
    dropped = layout.blocks[-1][0]
    del sums[dropped]
    with pytest.raises(InputError, match=f"the secure sum has no block '{dropped}'"):
        analysis.combine_secure(parsed, round_no, state, sums, ["a"])


def test_feasibility_under_dp_and_secure_aggregation_adds_distributed_noise(
    omop: dict[str, dict[str, str]],
) -> None:
    """Under both, each node adds a share of discrete Gaussian noise (its own count stays unclamped and at
    the node); the hub sees only the noisy network sum, whose 95% interval is the shares' together and
    covers the exact total. The shares are calibrated for the threshold's contributors (Kairouz et al.)."""
    params = {"cohort": COHORT, "breakdowns": ["sex"]}
    with Federation(omop=omop, policy=everything_auto(), signed=True) as fed:
        exact = fed.run("feasibility.count", params)
        both_ = fed.run("feasibility.count", params, secure_aggregation=True, dp={"epsilon": 1.0})
    assert exact.result is not None and both_.result is not None, (both_.error, both_.refused)
    total = both_.result["total"]
    truth = exact.result["total"]["lower"]
    assert total["estimate"] is not None and total["ci95"] > 0 and not total["exact"]
    assert total["lower"] <= truth <= total["upper"] or abs(total["estimate"] - truth) < 4 * total["ci95"]
    share = both_.releases[sorted(omop)[0]][0]["values"]["persons"]
    assert share["dp"]["share_of"] == 2 and share["dp"]["mechanism"] == "distributed_discrete_gaussian"
    assert both_.result["hospitals"] == {h: {} for h in sorted(omop)}
    # The GLM has no distributed DP: the hub refuses the combination, naming the field.
    from phds.analyses.base import check_privacy_options

    with pytest.raises(InputError) as refused:
        check_privacy_options(get_analysis("stats.glm"), dp=True, secure_aggregation=True)
    assert refused.value.field == "dp"
