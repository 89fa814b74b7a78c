"""The statistics through a real network: hub and node processes on loopback (``LocalNetwork``).

The SDK's one-call methods, ``phds study results --plot`` and ``phds demo --study`` must give exactly
the numbers the same analyses give in process (``stats_support``) on the same files.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from phds.analyses import available_analyses
from phds.cli import study as study_cli
from phds.demo.network import DemoHospital, LocalNetwork, phds_command
from phds.errors import InputError
from phds.sdk import Client, CoxResult, GlmResult, KmResult, StudyResult, SummaryResult, TableResult

from .conftest import Network
from .stats_support import GLM_FORMULA, SITES, cnsim_paths, results, rossi, sites

__all__ = ["results", "sites"]  # fixtures

DATA = Path(__file__).parent / "data"
STATS = {"stats.glm", "survival.cox", "survival.km", "stats.summary", "stats.table", "stats.characterisation"}
registered = pytest.mark.skipif(
    not STATS <= set(available_analyses()),
    reason=f"not yet in phds.analyses.registry: {sorted(STATS - set(available_analyses()))}",
)


@pytest.fixture(scope="module")
def stats_network(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[LocalNetwork]:
    """Three hospitals serving CNSIM<i> as ``cnsim`` and a third of rossi as ``rossi`` (as stats_support)."""
    folder = tmp_path_factory.mktemp("stats-network")
    data = rossi(shared_data)
    hospitals = []
    for i, (name, path) in enumerate(zip(SITES, cnsim_paths(shared_data), strict=True)):
        part = folder / f"rossi{i}.csv"
        data.iloc[i::3].to_csv(part, index=False)
        hospitals.append(DemoHospital(name, name.title(), tabular={"cnsim": path, "rossi": part}))
    with LocalNetwork(folder, hospitals) as network:
        yield network


@registered
def test_one_call_methods_equal_the_in_process_analyses(
    stats_network: LocalNetwork, results: dict[str, StudyResult]
) -> None:
    at = {"hospitals": list(SITES)}
    with stats_network.client() as hub:
        fit = hub.glm(GLM_FORMULA, family="binomial", dataset="cnsim", **at)
        cox = hub.cox("week", "arrest", ["fin", "age", "wexp"], dataset="rossi", **at)
        km = hub.km("week", "arrest", group="fin", dataset="rossi", time_width=4, **at)
        summary = hub.summary("LAB_HDL", dataset="cnsim", **at)
        table = hub.table("PM_BMI_CATEGORICAL", "GENDER", dataset="cnsim", **at)
    assert isinstance(fit, GlmResult) and fit.study.spec.organisation == "acme-pharma"  # from the token
    assert fit.study.spec.title == f"GLM (binomial): {GLM_FORMULA}"
    expected = {key: results[key].to_frame() for key in ("stats.glm", "survival.cox", "survival.km:group")}
    for column in ("estimate", "std_error", "p_value"):
        assert list(fit.to_frame()[column]) == pytest.approx(list(expected["stats.glm"][column]), rel=1e-9)
    assert isinstance(cox, CoxResult)
    assert list(cox.to_frame()["coef"]) == pytest.approx(list(expected["survival.cox"]["coef"]), rel=1e-9)
    assert isinstance(km, KmResult) and km.to_frame().equals(expected["survival.km:group"])
    in_process = results["stats.summary"]
    assert isinstance(summary, SummaryResult) and isinstance(in_process, SummaryResult)
    assert summary.sd == pytest.approx(in_process.sd, rel=1e-12)
    in_process_table = results["stats.table"]
    assert isinstance(table, TableResult) and isinstance(in_process_table, TableResult)
    assert table.counts().equals(in_process_table.counts())


@registered
def test_study_results_prints_the_summary_and_writes_the_plot(
    stats_network: LocalNetwork, tmp_path: Path
) -> None:
    with stats_network.client() as hub:
        fit = hub.glm(GLM_FORMULA, family="binomial", dataset="cnsim", hospitals=list(SITES))
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Root, as phds.cli.main builds it."""

    study_cli.register(root)
    env = {
        "PHDS_HUB_URL": stats_network.hub_url,
        "PHDS_TOKEN": stats_network.requester_token,
        "COLUMNS": "200",
    }
    png = tmp_path / "forest.png"
    done = CliRunner().invoke(root, ["study", "results", fit.study_id, "--plot", str(png)], env=env)
    assert done.exit_code == 0, done.output
    assert "Coefficients:" in done.stdout and "Number of Fisher Scoring iterations" in done.stdout
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = tmp_path / "forest.svg"
    done = CliRunner().invoke(root, ["study", "results", fit.study_id, "--json", "--plot", str(svg)], env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["coefficients"] == fit.raw["coefficients"]
    assert b"<svg" in svg.read_bytes()[:1000]
    bad = CliRunner().invoke(
        root, ["study", "results", fit.study_id, "--plot", str(tmp_path / "f.pdf")], env=env
    )
    assert bad.exit_code != 0 and not (tmp_path / "f.pdf").exists()


@registered
@pytest.mark.slow
def test_demo_runs_a_study_file_on_tabular_hospitals(
    shared_data: Path, tmp_path: Path, results: dict[str, StudyResult]
) -> None:
    args = ["demo", "--study", str(DATA / "cnsim-glm.yaml"), "--dataset", "cnsim", "--json"]
    for i, path in enumerate(cnsim_paths(shared_data)):
        args += ["--hospital", f"site-{i}={path}"]
    plot = tmp_path / "demo.png"
    done = subprocess.run(
        phds_command(*args, "--plot", str(plot), "--workdir", str(tmp_path / "work")),
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "on the demo network they are replaced by site-0, site-1, site-2 and acme-pharma" in " ".join(
        done.stderr.split()
    )
    out = json.loads(done.stdout)
    here = results["stats.glm"].raw
    assert [c["term"] for c in out["coefficients"]] == [c["term"] for c in here["coefficients"]]
    estimates = [c["estimate"] for c in here["coefficients"]]
    assert [c["estimate"] for c in out["coefficients"]] == pytest.approx(estimates, rel=1e-9)
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_default_hospitals_are_the_catalogues(network: Network) -> None:
    with Client(network.url, network.requester) as hub, pytest.raises(InputError, match="catalogue entry"):
        hub.summary("LAB_HDL", dataset="cnsim")  # no node has published a profile in this network
