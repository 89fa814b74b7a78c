"""``synthetic.mst`` over real node runtimes on DataSHIELD's CNSIM, and the memorisation bound.

The federation test checks what leaves (only noisy marginals and a noisy distance histogram), what is
spent (the study's ρ, on each node's ledger) and what the requester gets (rows with a hospital column
whose marginals follow the real ones). The memorisation test checks that released synthetic rows do not
reproduce training rows more often than ε-DP allows, and that the same test catches a generator that
leaks rows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from phds.analyses.testing import run_federation
from phds.privacy.dp import PrivacyLoss
from phds.privacy.synthetic_dp import ColumnBins, discretise, fit_and_sample, measure_mst
from phds.protocol.studies import StudyView
from phds.sdk.result_registry import result_for
from phds.sdk.results_synthetic import SyntheticResult

COLUMNS: list[dict[str, Any]] = [
    {"name": "GENDER", "categories": [0, 1]},
    {"name": "DIS_DIAB", "categories": [0, 1]},
    {"name": "PM_BMI_CATEGORICAL", "categories": [1, 2, 3]},
    {"name": "LAB_HDL", "cuts": [1.0, 1.5, 2.0], "bounds": [0.0, 4.0]},
]


def _cnsim(shared_data: Path, i: int) -> Path:
    return shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{i}.csv"


def _real(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


@pytest.mark.slow  # ~45–85 s: MST and the evaluation round at two hospitals, cold JAX and numba
def test_two_hospitals_get_a_dp_synthetic_dataset_with_a_hospital_column(
    shared_data: Path, tmp_path: Path
) -> None:
    tables = {f"h{i}": {"cnsim": _cnsim(shared_data, i)} for i in (1, 2)}
    params = {
        "table": {"dataset": "cnsim"},
        "columns": COLUMNS,
        "rows": 800,
        "seed": 3,
        "target": {"column": "GENDER", "positive": 1},  # balanced: the sample always has both classes
    }
    run = run_federation(
        "synthetic.mst",
        params,
        tables,
        folder=tmp_path,
        dp={"epsilon": 2.0},
        service_type="synthetic_dataset",
    )
    assert run.error is None and not run.refused, (run.error, run.refused)
    result = run.result
    assert result is not None and run.rounds == 2
    rows = pd.DataFrame(result["rows"])
    assert list(rows.columns) == ["GENDER", "DIS_DIAB", "PM_BMI_CATEGORICAL", "LAB_HDL", "hospital"]
    assert rows["hospital"].value_counts().to_dict() == {"h1": 800, "h2": 800}
    # What left each node: round 1 only the noisy marginals, round 2 only noisy breakdowns.
    pairs = {"pair:GENDER|DIS_DIAB", "pair:PM_BMI_CATEGORICAL|LAB_HDL"}
    attacks = {f"{a}:{p}" for a in ("inference", "linkability") for p in ("main", "baseline", "control")}
    for hospital in ("h1", "h2"):
        first, second = run.releases[hospital]
        assert {v["type"] for v in first["values"].values()} == {"marginals"}
        assert first["values"]["generator"]["dp"]["rho"] > 0
        assert {"dcr", "dcr_control", "tstr", "trtr"} | pairs | attacks <= set(second["values"])
        assert len([n for n in second["values"] if n.startswith("pair:")]) == 6
        for value in second["values"].values():
            assert value["type"] == "breakdown"
            assert all(c["dp"] is not None for c in value["cells"].values())
    # The whole study's ρ (ε = 2 at δ = 1e-6) is spent on each ledger, half per round.
    rho = sum(float(first["values"]["generator"]["dp"]["rho"]) for first in [run.releases["h1"][0]]) * 2
    spent = result["dp_budget"]["h1"][0]["spent_rho"]
    assert spent == pytest.approx(rho, rel=1e-6)
    # Utility: the synthetic proportions follow the real ones (n = 800 per hospital: sampling sd ~0.018).
    real = _real(_cnsim(shared_data, 1))
    synth = rows[rows["hospital"] == "h1"]
    assert abs((synth["GENDER"] == "1").mean() - (real["GENDER"] == 1).mean()) < 0.08
    assert abs((synth["DIS_DIAB"] == "1").mean() - (real["DIS_DIAB"] == 1).mean()) < 0.05
    fidelity = result["utility"]["fidelity_to_released_marginals"]["h1"]
    assert fidelity["one_way_mean"] > 0.85 and len(fidelity["tree"]) == len(COLUMNS) - 1
    dcr = result["privacy"]["distance_to_closest_synthetic"]["h1"]
    assert set(dcr) == {"dcr", "dcr_control"} and set(dcr["dcr"]) == {"0", "1", "2", "3", "4", "ci95"}
    # The generator saw only the non-control rows: its marginals count about 80% of CNSIM1's 2,163.
    assert 0.7 * 2163 < sum(max(0, v) for k, v in dcr["dcr"].items() if k != "ci95") < 0.9 * 2163
    quality = result["utility"]["quality"]["h1"]
    assert 0.7 < quality["score"] <= 1 and len(quality["pairs"]) == 6
    models = result["utility"]["train_synthetic_test_real"]
    assert models["network"]["tstr"]["auroc"] is not None and "trtr" in models["hospitals"]["h2"]
    risks = result["privacy"]["anonymeter"]["h1"]
    assert 0 <= risks["inference"]["risk"] <= 1 and 0 <= risks["linkability"]["risk"] <= 1
    _check_sdk_result(params, result, run.notes, tmp_path)


def _check_sdk_result(
    params: dict[str, Any], result: dict[str, Any], notes: list[str], tmp_path: Path
) -> None:
    """The SDK's typed result of the same study: rows, report dict, HTML and JSON files."""
    view = StudyView.model_validate(
        {
            "id": "s-synth",
            "submitted_at": "2026-12-02T12:00:00Z",
            "finished_at": "2026-12-02T12:01:00Z",
            "state": "completed",
            "version": 3,
            "round": 2,
            "spec": {
                "title": "synthetic",
                "purpose": "tests",
                "organisation": "uni-a",
                "service_type": "synthetic_dataset",
                "hospitals": ["h1", "h2"],
                "analysis": {"name": "synthetic.mst", "params": params},
            },
            "hospitals": [
                {"hospital": h, "state": "answered", "updated_at": "2026-12-02T12:00:00Z"}
                for h in ("h1", "h2")
            ],
            "result": {
                **result,
                "notes": notes,
                "answered": ["h1", "h2"],
                "declined": [],
                "refused": [],
                "failed": [],
            },
        }
    )
    typed = result_for(view)
    assert isinstance(typed, SyntheticResult)
    frame = typed.to_frame()
    assert frame.shape == (1600, 5) and set(frame["hospital"]) == {"h1", "h2"}
    report = typed.report
    assert set(report["hospitals"]) == {"h1", "h2"} and "rows" not in report["hospitals"]["h1"]
    assert 0 <= report["hospitals"]["h1"]["exact_match_share"] <= 1
    summary = typed.summary()
    assert "h2: 800 rows; fidelity one-way" in summary and "sdmetrics quality" in summary
    assert "AUROC synthetic→real" in summary and "inference risk" in summary
    page = typed.write_report(tmp_path / "synthetic.html")
    html = page.read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "h2" in html and "Privacy budget spent" in html
    for heading in ("sdmetrics' quality score", "train on synthetic, test on real", "anonymeter's risks"):
        assert heading in html
    assert json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))["rows"] == 1600
    _check_portal_partial(typed)


def _check_portal_partial(typed: SyntheticResult) -> None:
    """The portal's partial prints the report's figures, in captioned tables, and offers the rows' CSV."""
    from phds.web.kit import format_number
    from phds.web.pages import study_results  # noqa: F401 (installs the result helpers in the templates)
    from phds.web.pages.study_plots import result_csv
    from phds.web.render import templates

    page = templates.env.get_template("results/synthetic.mst.html").render(
        study=typed.study, result=typed, viewer=None
    )
    q = typed.report["hospitals"]["h1"]["quality"]
    assert format_number(q["score"], 3) in page and "AUROC synthetic → real" in page
    assert page.count("<caption>") == 3 and "Inference risk" in page and "table.csv" in page
    assert result_csv(typed).splitlines()[0] == "GENDER,DIS_DIAB,PM_BMI_CATEGORICAL,LAB_HDL,hospital"


@pytest.mark.slow  # ~25 s: MST on 4,700 rows × 8 columns, cold JAX
def test_synthetic_rows_reproduce_training_rows_no_more_than_dp_allows(shared_data: Path) -> None:
    """Memorisation, measured as membership: training rows vs held-out rows of the same population.

    CNSIM1–3 are pooled and split at random into a training half T and a held-out half H. MST is fitted
    on T alone (ρ-zCDP, hence (ε, δ)-DP with ε = ρ + 2√(ρ ln(1/δ)), Bun & Steinke 2016, Prop. 1.3), and
    m rows are sampled. A real row is *reproduced* when some synthetic row equals it in every bin.
    For any one record x ∈ T, DP bounds P[x reproduced | T] ≤ e^ε · P[x reproduced | T \\ {x}] + δ, and
    since T and H are exchangeable draws, the right-hand probability is that of a held-out record. So
    the rate over T is at most e^ε times the rate over H, plus δ. We test it one-sided at α = 0.001
    (normal approximation to the two binomial rates), on fine bins so that exact matches are rare.

    The control makes the test able to fail: a "generator" that resamples the training rows (a
    bootstrap, no DP) reproduces far more training than held-out rows, and the same check rejects it.
    """
    pooled = pd.concat([_real(_cnsim(shared_data, i)) for i in (1, 2, 3)], ignore_index=True)
    rng = np.random.default_rng(20261202)
    train_mask = rng.random(len(pooled)) < 0.5
    train, held = pooled[train_mask].reset_index(drop=True), pooled[~train_mask].reset_index(drop=True)

    def grid(lo: float, hi: float, k: int) -> tuple[float, ...]:
        return tuple(float(v) for v in np.linspace(lo, hi, k))

    cuts = {  # fine bins, so that exact matches between different people are rare
        "LAB_TSC": grid(4.0, 8.0, 9),
        "LAB_TRIG": grid(0.0, 4.0, 9),
        "LAB_HDL": grid(0.8, 2.2, 8),
        "LAB_GLUC_ADJUSTED": grid(4.0, 8.0, 9),
        "PM_BMI_CONTINUOUS": grid(18.0, 38.0, 11),
    }
    bins = [ColumnBins(n, cuts=c) for n, c in cuts.items()]
    bins += [ColumnBins(n, categories=("0", "1")) for n in ("GENDER", "DIS_DIAB", "MEDI_LPD")]
    rho, delta = 0.01, 1e-6  # ε ≈ 0.75
    epsilon = PrivacyLoss(rho).epsilon(delta)
    measured = measure_mst(train, bins, rho)
    synth = fit_and_sample(measured.columns, measured.marginals, len(train), seed=1)

    def reproduced(sample: pd.DataFrame) -> tuple[float, float]:
        seen = {tuple(r) for r in discretise(sample, measured.columns).tolist()}
        rates = []
        for real in (train, held):
            codes = discretise(real, measured.columns).tolist()
            rates.append(sum(tuple(r) in seen for r in codes) / len(codes))
        return rates[0], rates[1]

    def exceeds_dp_bound(p_train: float, p_held: float) -> bool:
        bound = min(1.0, math.exp(epsilon) * p_held + delta)
        se = math.sqrt(
            p_train * (1 - p_train) / len(train) + math.exp(2 * epsilon) * p_held * (1 - p_held) / len(held)
        )
        return (p_train - bound) / max(se, 1e-12) > 3.09  # one-sided z at α = 0.001

    p_train, p_held = reproduced(synth)
    assert 0 < p_held < 0.5, "the bins must make exact matches rare but possible"
    assert not exceeds_dp_bound(p_train, p_held), (p_train, p_held, epsilon)
    leaky = train.sample(n=len(train), replace=True, random_state=1)
    assert exceeds_dp_bound(*reproduced(leaky))
