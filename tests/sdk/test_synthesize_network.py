"""``client.synthesize`` through a real network: hub and node processes on loopback (``LocalNetwork``).

Three CNSIM hospitals, a target for the train-on-synthetic/test-on-real AUROC: the typed result carries
the rows, sdmetrics' quality score, the AUROCs and anonymeter's risks, all from gated, signed releases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from phds.demo.network import DemoHospital, LocalNetwork
from phds.sdk import SyntheticResult

from .stats_support import SITES, cnsim_paths

pytestmark = pytest.mark.slow  # ~1–2 min: MST at three node processes, then the evaluation round


@pytest.fixture(scope="module")
def cnsim_network(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[LocalNetwork]:
    folder = tmp_path_factory.mktemp("synthesize-network")
    hospitals = [
        DemoHospital(name, name.title(), tabular={"cnsim": path})
        for name, path in zip(SITES, cnsim_paths(shared_data), strict=True)
    ]
    with LocalNetwork(folder, hospitals) as network:
        yield network


def test_synthesize_returns_rows_and_the_report_measured_at_the_nodes(
    cnsim_network: LocalNetwork, tmp_path: Path
) -> None:
    columns = [
        {"name": "GENDER", "categories": [0, 1]},
        {"name": "DIS_DIAB", "categories": [0, 1]},
        {"name": "PM_BMI_CATEGORICAL", "categories": [1, 2, 3]},
        {"name": "LAB_HDL", "cuts": [1.0, 1.5, 2.0], "bounds": [0.0, 3.0]},
    ]
    with cnsim_network.client() as hub:
        result = hub.synthesize(
            columns,
            dataset="cnsim",
            epsilon=4.0,
            rows=600,
            seed=2,
            target={"column": "GENDER", "positive": 1},
            hospitals=list(SITES),
        )
    assert isinstance(result, SyntheticResult)
    frame = result.to_frame()
    assert frame.shape == (1800, 5) and set(frame["hospital"]) == set(SITES)
    report = result.report
    for hospital in SITES:
        per = report["hospitals"][hospital]
        assert 0.6 < per["quality"]["score"] <= 1
        assert per["train_synthetic_test_real"]["tstr"]["n"] > 0
        assert set(per["anonymeter"]) == {"inference", "linkability"}
        assert 0 <= per["exact_match_share_control"] <= 1
    assert report["network"]["tstr"]["auroc"] is not None
    page = result.write_report(tmp_path / "report.html")
    assert "anonymeter's risks" in page.read_text(encoding="utf-8")
