"""The portal's partial of a federated model prints the released coefficients and the gated metrics of a
real training (in-process hospitals, real gates, CNSIM), marks withheld metrics, and draws the ROC."""

from __future__ import annotations

from pathlib import Path

from phds.analyses.testing import run_federation
from phds.sdk.result_registry import result_for
from phds.sdk.results_learning import FitResult
from phds.web.kit import format_number
from phds.web.pages import study_results  # noqa: F401 (installs the result helpers in the templates)
from phds.web.pages.study_plots import draw, result_csv
from phds.web.render import templates

from ..sdk.stats_support import cnsim_paths, finished_view


def test_the_learning_partial_shows_what_the_result_holds(shared_data: Path) -> None:
    params = {
        "table": {"dataset": "cnsim"},
        "outcome": "DIS_DIAB",
        "features": {"numeric": ["LAB_HDL", "LAB_GLUC_ADJUSTED"], "categorical": {"GENDER": ["0", "1"]}},
        "rounds": 4,
        "local_epochs": 10,
        "learning_rate": 3.0,
        "batch_size": 0,
        "clip_norm": 50.0,
    }
    tables = {f"site{i}": {"cnsim": p} for i, p in enumerate(cnsim_paths(shared_data), start=1)}
    run = run_federation("learning.fedavg", params, tables)
    assert run.result is not None
    result = result_for(finished_view("learning.fedavg", params, run.result, run.notes))
    assert isinstance(result, FitResult)
    html = templates.env.get_template("results/learning.fedavg.html").render(
        study=result.study, result=result, viewer=None
    )
    for term, estimate in result.coefficients.items():  # type: ignore[union-attr]
        assert f"<code>{term}</code>" in html and format_number(estimate, 5) in html
    metrics = result.metrics
    assert format_number(float(metrics.loc["site3", "auroc"]), 4) in html
    withheld = [h for h in metrics.index if h != "pooled" and metrics.loc[h, "from_bins"]]
    assert withheld and "risk bins" in html and "nan" not in html
    assert 'id="result-plot"' in html
    assert draw(result, "png").startswith(b"\x89PNG")
    assert result_csv(result).startswith("term,estimate")
