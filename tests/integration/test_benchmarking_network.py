"""Benchmarking over real processes: ``client.benchmark`` against a hub and three node processes on
simulated hospitals; the result is pseudonymised, the hub refuses the releases that would undo it, the
funnel plot is written; and the benchmark module's core runs at a smoke size (no time asserted)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from phds.demo.network import DemoHospital, LocalNetwork
from phds.errors import DisclosureRefused, SignatureInvalid
from phds.omop.simulator import generate
from phds.sdk.results_benchmark import BenchmarkResult

from ..analyses.benchmark_support import BINARY
from .conftest import running_network
from .support import hub_store

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # ``benchmarks`` is a top-level package of the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import bench_benchmarking  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    folder = tmp_path_factory.mktemp("bench-net")
    made = generate(folder / "cdm", hospitals=3, patients=6000, seed=3)
    hospitals = [DemoHospital(r.slug, r.name, omop_url=f"duckdb:///{r.path}") for r in made]
    with running_network(folder / "network", hospitals) as running:
        yield running


def test_client_benchmark_over_real_processes(network: LocalNetwork, tmp_path: Path) -> None:
    table = BINARY["table"]
    with network.client() as client:
        result = client.benchmark(
            BINARY["indicator"],
            outcome="admitted",
            risk_factors=BINARY["risk_factors"],
            table=table,
            hospitals=[h.name for h in network.hospitals],
            timeout=240,
        )
        assert isinstance(result, BenchmarkResult)
        frame = result.to_frame()
        assert sorted(frame.index) == ["Hospital A", "Hospital B", "Hospital C"]
        assert not any(h.name in json.dumps(result.raw["rows"]) for h in network.hospitals)
        assert frame["expected"].sum() == pytest.approx(frame["observed"].sum(), rel=1e-8)
        with pytest.raises(DisclosureRefused, match="pseudonyms"):
            client.releases(result.study.id)  # the attack: map the pseudonyms back through the envelopes
    png = result.funnel_plot(tmp_path / "funnel.png")
    assert png is not None and (tmp_path / "funnel.png").read_bytes()[:4] == b"\x89PNG"


def test_a_hub_claiming_consent_it_does_not_have_is_caught(network: LocalNetwork) -> None:
    """The attack: a compromised hub names the hospitals and says every one allowed it. Claiming
    ``names_disclosed`` makes it serve the signed releases, and the result recomputed from their
    (node-signed) consents differs from the one it reports."""
    with network.client() as client:
        result = client.benchmark(
            BINARY["indicator"],
            outcome="admitted",
            risk_factors=BINARY["risk_factors"],
            table=BINARY["table"],
            hospitals=[h.name for h in network.hospitals],
            timeout=240,
        )
    study_id = result.study.id
    forged = dict(result.raw, names_disclosed=True)
    names = sorted(h.name for h in network.hospitals)
    forged["rows"] = [dict(row, hospital=name) for row, name in zip(result.raw["rows"], names, strict=True)]
    with hub_store(network) as store, store.engine.begin() as con:
        for key in (study_id, study_id.replace("-", "")):
            con.execute(
                text("UPDATE studies SET result = :r WHERE id = :id"), {"r": json.dumps(forged), "id": key}
            )
    with network.client() as client:
        assert client.study(study_id).result["names_disclosed"] is True  # what the hub now claims
        with pytest.raises(SignatureInvalid, match="differs from the one recomputed"):
            client.verify(study_id)


def test_the_benchmark_core_at_a_smoke_size(tmp_path: Path) -> None:
    payload = bench_benchmarking.measure(6000, 1, tmp_path / "cache", tmp_path / "work")
    json.dumps(payload)  # what main() writes must be JSON
    assert payload["hospitals"] == 5 and payload["repeats"] == 1
    assert payload["accuracy"]["max_rel_expected_diff"] < 1e-8
    run = payload["federated"]["runs"][0]
    assert run["overhead"] == pytest.approx(run["seconds"] - run["slowest_node_compute"], abs=1e-3)
