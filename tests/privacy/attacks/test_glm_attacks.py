"""Family 1: GLM arithmetic that singles out a row (requester-controlled formula, weights, family).

Each attack targets the planted patient (LAB_HDL = 9.87, unique) and asserts that neither the result nor
any released payload (design-round sums, IRLS QR factors) lets the attacker compute the patient's exact
LAB_TSC (or another exact secret).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from attack_kit import (
    TARGET_HDL,
    TARGET_TSC,
    Site,
    attempt,
    coef,
    federation,
    make_site,
    planted_frame,
    recovers,
)

from phds.analyses.testing import Federation, FederationRun

BUMP = f"np.exp(-1e6 * (LAB_HDL - {TARGET_HDL}) ** 2)"


def glm(fed: Federation, formula: str, family: str = "gaussian", **kw: Any) -> FederationRun:
    params = {"table": {"dataset": "cnsim"}, "formula": formula, "family": family, **kw}
    return attempt(fed, "stats.glm", params)


def glm_values(run: FederationRun) -> list[dict[str, Any]]:
    out = []
    for payloads in run.releases.values():
        for p in payloads:
            glm_agg = p.get("values", {}).get("glm")
            if glm_agg and glm_agg.get("values"):
                out.append(dict(glm_agg["values"]))
    return out


def design_sums(run: FederationRun, key: str = "sum_y") -> list[float]:
    return [float(v[key]) for v in glm_values(run) if key in v]


def grams(run: FederationRun) -> list[tuple[np.ndarray, np.ndarray]]:
    """(XᵀWX, XᵀWz) from every released IRLS QR factor R = [R11 r12] of [√W X | √W z]."""
    out = []
    for v in glm_values(run):
        r = v.get("main/r")
        if r is None:
            continue
        r = np.asarray(r, dtype=float)
        p = r.shape[0]
        r11, r12 = r[:, :p], r[:, p]
        out.append((r11.T @ r11, r11.T @ r12))
    return out


def fitted(run: FederationRun, terms: dict[str, float]) -> float | None:
    """x·β for the design row given as {term: value} (missing terms 0)."""
    if run.result is None:
        return None
    return sum(float(c["estimate"]) * terms.get(c["term"], 0.0) for c in run.result["coefficients"])


def terms_of(run: FederationRun) -> list[str]:
    return [c["term"] for c in run.result["coefficients"]] if run.result else []


def test_bump_covariate_isolates_target(fed_one: Federation) -> None:
    """Bump I(exp(-1e6 (HDL − v)²)): a covariate 1 for the target only, so Intercept + bump = target's TSC
    (and XᵀWz of each IRLS factor holds the target's TSC in the bump entry)."""
    run = glm(fed_one, f"LAB_TSC ~ I({BUMP})")
    estimates: list[float | None] = []
    if run.result is not None:
        bump = [t for t in terms_of(run) if t != "Intercept"]
        estimates.append(fitted(run, {"Intercept": 1.0, bump[0]: 1.0}))
    estimates += [float(xtz[1] / xtx[1, 1]) for xtx, xtz in grams(run) if xtx[1, 1] > 0.5]
    assert not any(recovers(e, TARGET_TSC) for e in estimates), estimates


def test_three_valued_bumps_saturate_two_patients(tmp_path: Any) -> None:
    """Three-valued bumps A = b_P + 2 b_Q, B = 2 b_P + b_Q (values 0, 1, 2: no binary column for nfilter.tab)
    make a saturated design on {others, P, Q}: y_P = β0 + βA + 2 βB exactly."""
    frame = planted_frame()
    frame.loc[1, "LAB_HDL"] = 8.5
    site = make_site(tmp_path, frame)
    bp = f"np.exp(-1e6 * (LAB_HDL - {TARGET_HDL}) ** 2)"
    bq = "np.exp(-1e6 * (LAB_HDL - 8.5) ** 2)"
    with federation(tmp_path, {"site1": site}) as fed:
        run = glm(fed, f"LAB_TSC ~ I({bp} + 2 * {bq}) + I(2 * {bp} + {bq})")
    estimate = None
    if run.result is not None:
        a, b = [t for t in terms_of(run) if t != "Intercept"]
        estimate = fitted(run, {"Intercept": 1.0, a: 1.0, b: 2.0})
    assert not recovers(estimate, TARGET_TSC), estimate


def test_weight_concentrated_on_target(fed_one: Federation) -> None:
    """Prior weights 1 + 1e12·bump: the weighted mean (Intercept of y ~ 1, or sum_wy / sum_w of the design
    round) is the target's TSC to ~1e-9."""
    run = glm(fed_one, "LAB_TSC ~ 1", weights=f"1 + 1e12 * {BUMP}")
    estimates = [coef(run, "Intercept")]
    estimates += [s / w for s, w in zip(design_sums(run, "sum_wy"), design_sums(run, "sum_w"), strict=True)]
    assert not any(recovers(e, TARGET_TSC) for e in estimates), estimates


def test_zero_weights_except_target(fed_one: Federation) -> None:
    """Weights = bump (1 for the target, 0 for everyone else): the weighted fit is the target alone."""
    run = glm(fed_one, "LAB_TSC ~ 1", weights=BUMP)
    estimates = [coef(run, "Intercept")]
    estimates += [
        s / w for s, w in zip(design_sums(run, "sum_wy"), design_sums(run, "sum_w"), strict=True) if w
    ]
    assert not any(recovers(e, TARGET_TSC) for e in estimates), estimates


def test_outcome_zero_except_target(fed_one: Federation) -> None:
    """Outcome I(TSC · bump) is 0 for all but the target: its sum (design round) or n × Intercept is the
    target's TSC."""
    run = glm(fed_one, f"I(LAB_TSC * {BUMP}) ~ 1")
    estimates: list[float | None] = list(design_sums(run))
    if run.result is not None:
        estimates.append(float(coef(run, "Intercept") or 0.0) * run.result["n_obs"])
    assert not any(recovers(e, TARGET_TSC) for e in estimates), estimates


def test_outcome_zero_except_target_with_covariate(fed_one: Federation) -> None:
    """Variant: the isolating outcome with an ordinary covariate (GENDER) so the model looks routine; the
    XᵀWz entry of the intercept column is Σy = the target's TSC."""
    run = glm(fed_one, f"I(LAB_TSC * {BUMP}) ~ GENDER")
    estimates: list[float | None] = list(design_sums(run))
    estimates += [float(xtz[0]) for _, xtz in grams(run)]
    assert not any(recovers(e, TARGET_TSC) for e in estimates), estimates


def test_exponential_outcome_approximates_maximum(fed_one: Federation) -> None:
    """exp(70·HDL) is dominated by the largest HDL: log(Σ exp(70 x)) / 70 = max HDL (the target's 9.87)."""
    run = glm(fed_one, "I(np.exp(70 * LAB_HDL)) ~ 1")
    sums = list(design_sums(run))
    if run.result is not None:
        sums.append(float(coef(run, "Intercept") or 0.0) * run.result["n_obs"])
    estimates = [math.log(s) / 70 for s in sums if s > 0]
    assert not any(recovers(e, TARGET_HDL, 1e-6) for e in estimates), estimates


def test_softmax_ratio_reads_value_at_maximum(fed_one: Federation) -> None:
    """Weights exp(70·HDL): the weighted mean of TSC is the TSC of the patient with the largest HDL."""
    run = glm(fed_one, "LAB_TSC ~ 1", weights="np.exp(70 * LAB_HDL)")
    estimates = [coef(run, "Intercept")]
    estimates += [
        s / w for s, w in zip(design_sums(run, "sum_wy"), design_sums(run, "sum_w"), strict=True) if w
    ]
    assert not any(recovers(e, TARGET_TSC) for e in estimates), estimates


def test_perfect_separation_rare_outcome(fed_one: Federation) -> None:
    """Binomial DIS_AMI ~ LAB_HDL: one case (the target, who has the largest HDL) separates perfectly; the
    design round's sum_y is the exact case count 1 and a diverging slope says the case has the top HDL."""
    run = glm(fed_one, "DIS_AMI ~ LAB_HDL", family="binomial")
    counts = [s for s in design_sums(run) if 1 <= s <= 4]
    slope = coef(run, "LAB_HDL")
    assert not counts, counts
    assert slope is None or slope < 5, slope


def test_indicator_column_for_one_row(fed_one: Federation) -> None:
    """An arithmetic indicator (x − 9 + |x − 9|) / (2 |x − 9|) is 1 for the target only: β0 + β1 = TSC."""
    run = glm(fed_one, "LAB_TSC ~ I((LAB_HDL - 9 + abs(LAB_HDL - 9)) / (2 * abs(LAB_HDL - 9)))")
    estimate = None
    if run.result is not None:
        ind = next(t for t in terms_of(run) if t != "Intercept")
        estimate = fitted(run, {"Intercept": 1.0, ind: 1.0})
    assert not recovers(estimate, TARGET_TSC), estimate


def _interaction_site(tmp_path: Any) -> Site:
    frame = planted_frame()
    frame["MEDI_LPD"] = 0
    frame["DIS_DIAB"] = 0
    frame.loc[[0, *range(20, 26)], "MEDI_LPD"] = 1
    frame.loc[[0, *range(30, 36)], "DIS_DIAB"] = 1
    return make_site(tmp_path, frame)


def test_interaction_isolates_cell(tmp_path: Any) -> None:
    """MEDI_LPD * DIS_DIAB: each main effect has 7 ones, but the (1, 1) cell is the target alone; the sum of
    all four coefficients is the cell mean = target's TSC."""
    with federation(tmp_path, {"site1": _interaction_site(tmp_path)}) as fed:
        run = glm(fed, "LAB_TSC ~ MEDI_LPD * DIS_DIAB")
    estimate = fitted(run, {"Intercept": 1, "MEDI_LPD": 1, "DIS_DIAB": 1, "MEDI_LPD:DIS_DIAB": 1})
    assert not recovers(estimate, TARGET_TSC), estimate


def test_saturated_design_three_valued_cell_code(tmp_path: Any) -> None:
    """Saturated design without a small binary column: MEDI_LPD + DIS_DIAB + I(MEDI_LPD·(1 + 2·DIS_DIAB))
    (values 0, 1, 3) spans the four cells; the fitted (1, 1) cell is the target's TSC."""
    with federation(tmp_path, {"site1": _interaction_site(tmp_path)}) as fed:
        run = glm(fed, "LAB_TSC ~ MEDI_LPD + DIS_DIAB + I(MEDI_LPD * (1 + 2 * DIS_DIAB))")
    estimate = None
    if run.result is not None:
        code = next(t for t in terms_of(run) if t.startswith("I("))
        estimate = fitted(run, {"Intercept": 1, "MEDI_LPD": 1, "DIS_DIAB": 1, code: 3})
    assert not recovers(estimate, TARGET_TSC), estimate


def test_poisson_bump_log_link(fed_one: Federation) -> None:
    """Poisson on a positive outcome with the bump: exp(β0 + β1) is the target's TSC (log link, saturated on
    {target, others})."""
    run = glm(fed_one, f"LAB_TSC ~ I({BUMP})", family="poisson")
    estimate = None
    if run.result is not None:
        bump = next(t for t in terms_of(run) if t != "Intercept")
        value = fitted(run, {"Intercept": 1.0, bump: 1.0})
        estimate = math.exp(value) if value is not None else None
    assert not recovers(estimate, TARGET_TSC, 1e-5), estimate


def test_exponential_covariate_is_a_scaled_bump(fed_one: Federation) -> None:
    """exp(70·HDL) as a covariate is ~0 for everyone but the target: β0 + β1·exp(70·9.87) = target's TSC."""
    run = glm(fed_one, "LAB_TSC ~ I(np.exp(70 * LAB_HDL))")
    estimate = None
    if run.result is not None:
        term = next(t for t in terms_of(run) if t != "Intercept")
        estimate = fitted(run, {"Intercept": 1.0, term: math.exp(70 * TARGET_HDL)})
    assert not recovers(estimate, TARGET_TSC, 1e-5), estimate
