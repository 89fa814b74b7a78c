"""The demo's steps: prepare hospitals' data, run a study through a live network, render the result."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from phds.demo.network import REQUESTER_ORG, DemoHospital, LocalNetwork, phds_command
from phds.errors import InputError, PhdsError
from phds.protocol.studies import HospitalState, StudyView
from phds.sdk import Client
from phds.sdk.results import StudyResult

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


def run_study(
    network: LocalNetwork,
    analysis: dict[str, Any],
    *,
    title: str,
    service_type: str,
    on_change: Callable[[StudyView], None],
) -> StudyResult:
    """Submit a study to every hospital of *network*, approve it where a steward must, and wait."""
    approved: set[str] = set()

    def progress(view: StudyView) -> None:
        on_change(view)
        for status in view.hospitals:
            if status.state == HospitalState.AWAITING_APPROVAL and status.hospital not in approved:
                approve_as_steward(network, status.hospital, view.id)
                approved.add(status.hospital)

    spec = {
        "title": title,
        "purpose": "PHDS demo: what the network can answer without moving any patient's data",
        "organisation": REQUESTER_ORG,
        "service_type": service_type,
        "hospitals": [h.name for h in network.hospitals],
        "analysis": analysis,
        "deadline_seconds": 300,
    }
    with Client(network.hub_url, network.requester_token) as client:
        study = client.submit(spec)
        return client.results(study.id, wait=True, progress=progress)


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
    if done.returncode != 0:
        raise PhdsError(f"approving at {hospital} failed: {done.stderr.decode(errors='replace').strip()}")


def frame_table(frame: pd.DataFrame, title: str) -> Table:
    """A Rich table of a result frame; empty cells stay empty."""
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column in {"hospital", "state"} else "right")
    for row in frame.astype(object).where(frame.notna(), "").itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    return table


def print_state(console: Console, view: StudyView) -> None:
    """One line per change of the study: its state and each hospital's."""
    states = ", ".join(f"{h.hospital} {h.state.value}" for h in view.hospitals)
    console.print(f"  study {view.state.value}: {states}", highlight=False)
