"""The demo's steps: prepare hospitals' data, run a study through a live network, render the result."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from phds.demo.network import REQUESTER_ORG, DemoHospital, LocalNetwork, phds_command
from phds.errors import InputError, PhdsError
from phds.protocol.studies import HospitalState, StudyView
from phds.sdk.results import FeasibilityResult, StudyResult

DEFAULT_COHORT = resources.files("phds.demo").joinpath("asthma_salbutamol.yaml")


def default_cohort() -> str:
    """The demo's cohort: children aged 2-11 with asthma and a salbutamol exposure (YAML form)."""
    return DEFAULT_COHORT.read_text(encoding="utf-8")


def hospital_from_argument(argument: str, workdir: Path, dataset: str) -> DemoHospital:
    """``NAME=URL_OR_PATH``: an OMOP store URL, an OMOP CSV/Parquet folder (loaded into DuckDB here),
    or a tabular CSV/Parquet file registered under *dataset*."""
    name, sep, value = argument.partition("=")
    if not sep or not name or not value:
        raise InputError(f"expected NAME=URL_OR_PATH, got {argument!r}", field="--hospital")
    display = name.replace("-", " ").title()
    if value.startswith(("duckdb:", "postgresql:", "postgres:")):
        return DemoHospital(name, display, omop_url=value)
    path = Path(value).expanduser()
    if path.is_dir():
        from phds.omop.load import load_cdm
        from phds.omop.store import open_store

        url = f"duckdb:///{(workdir / 'data' / f'{name}.duckdb').resolve()}"
        with open_store(url) as store:
            load_cdm(path, store)
        return DemoHospital(name, display, omop_url=url)
    if path.is_file() and path.suffix.lower() in {".csv", ".parquet"}:
        return DemoHospital(name, display, tabular={dataset: path.resolve()})
    raise InputError(
        f"{value!r} is neither an OMOP store URL, a folder of OMOP CSV/Parquet files nor a CSV/Parquet file",
        field="--hospital",
    )


def submit_and_wait(
    network: LocalNetwork, spec: Mapping[str, Any], on_change: Callable[[StudyView], None]
) -> StudyResult:
    """Submit *spec*, approve it at each node whose steward must, and wait for its typed result."""
    approved: set[str] = set()

    def progress(view: StudyView) -> None:
        on_change(view)
        for status in view.hospitals:
            if status.state == HospitalState.AWAITING_APPROVAL and status.hospital not in approved:
                approve_as_steward(network, status.hospital, view.id)
                approved.add(status.hospital)

    with network.client() as client:
        study = client.submit(spec)
        return client.results(study.id, wait=True, progress=progress)


def verified(network: LocalNetwork, study_id: str) -> str:
    """What ``phds study verify`` says of *study_id*: signatures checked, result recomputed from them."""
    from phds.errors import DisclosureRefused

    with network.client() as client:
        try:
            return str(client.verify(study_id))
        except DisclosureRefused as exc:  # a pseudonymised benchmarking result: its releases stay at the hub
            return f"not verified: {exc.message}"


def demo_spec(
    analysis: Mapping[str, Any], network: LocalNetwork, title: str, service_type: str = "analytical_study"
) -> dict[str, Any]:
    """A study of *analysis* at every demo hospital, as the demo's requester."""
    return {
        "title": title,
        "purpose": "PHDS demo: what the network can answer without moving any patient's data",
        "organisation": REQUESTER_ORG,
        "service_type": service_type,
        "hospitals": [h.name for h in network.hospitals],
        "analysis": dict(analysis),
        "deadline_seconds": 300,
    }


def approve_as_steward(network: LocalNetwork, hospital: str, study_id: str) -> None:
    """Approve *study_id* at *hospital*'s node, as its data steward does with ``phds node approve``."""
    node = network.nodes[hospital]
    done = subprocess.run(
        phds_command(
            "node", "approve", study_id, "--config", str(node.config), "--as", f"steward@{hospital}"
        ),
        capture_output=True,
        check=False,
    )
    if done.returncode == 0:
        Console(stderr=True).print(f"  the data steward of {hospital} approved study {study_id} at the node")
    else:
        raise PhdsError(f"approving at {hospital} failed: {done.stderr.decode(errors='replace').strip()}")


def feasibility_table(result: FeasibilityResult) -> Table:
    """Persons per hospital and in the network, with one column per breakdown cell."""
    table = Table(title=result.study.spec.title, title_justify="left")
    cells = [(dim, cell) for dim, by_cell in result.breakdowns.items() for cell in by_cell]
    for header in ["hospital", "status", "persons", *(_short(dim, cell) for dim, cell in cells)]:
        table.add_column(header, justify="left" if header in {"hospital", "status"} else "right")
    states = {h.hospital: h for h in result.study.hospitals}
    for hospital in result.study.spec.hospitals:
        entry = result.hospitals.get(hospital) or {}
        status = states[hospital].state.value if hospital in states else ""
        persons = (entry.get("persons") or {}).get("display", "")
        tables = entry.get("breakdowns") or {}
        values = [str((tables.get(dim) or {}).get(cell, {}).get("display", "")) for dim, cell in cells]
        table.add_row(hospital, status, str(persons), *values)
    network = [result.breakdowns[dim][cell].display for dim, cell in cells]
    table.add_row("network", result.study.state.value, result.total.display, *network, style="bold")
    return table


def _short(dimension: str, cell: str) -> str:
    return cell.replace("(", "").replace(")", "") if dimension == "age_group" else cell


def print_state(console: Console, view: StudyView) -> None:
    """One line per change of the study: its state and each hospital's."""
    states = ", ".join(f"{h.hospital} {h.state.value}" for h in view.hospitals)
    console.print(f"  study {view.state.value}: {states}", highlight=False)
