"""``phds demo``: the whole network on loopback in one command (hub, nodes, a study, its result)."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from pathlib import Path

import typer
from rich.console import Console

err = Console(stderr=True)

MANUAL_HOSPITAL_INDEX = 1  # the second hospital's steward approves feasibility studies by hand


def demo(
    hospital: list[str] = typer.Option(
        [], "--hospital", help="NAME=URL_OR_CSV_DIR (repeatable): run on given data instead."
    ),
    cohort: Path | None = typer.Option(None, "--cohort", help="A Circe JSON or YAML cohort file."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    keep_running: bool = typer.Option(
        False, "--keep-running", help="Leave the network up and print its URLs and tokens."
    ),
    patients: int = typer.Option(4_000, "--patients", min=100, help="Children per synthetic hospital."),
    seed: int = typer.Option(7, "--seed", min=0, help="Seed of the synthetic hospitals."),
    dataset: str = typer.Option("data", "--dataset", help="Name for tabular files given with --hospital."),
    workdir: Path | None = typer.Option(None, "--workdir", help="Keep everything in this folder."),
) -> None:
    """Generate 3 hospitals, start a hub and 3 nodes, run a feasibility study, print the table."""
    from phds.demo import LocalNetwork
    from phds.demo.scenario import (
        default_cohort,
        feasibility_table,
        hospital_from_argument,
        print_state,
        run_study,
    )
    from phds.omop.synth import generate
    from phds.sdk import FeasibilityResult

    folder = workdir or Path(tempfile.mkdtemp(prefix="phds-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if hospital:
            hospitals = [hospital_from_argument(h, folder, dataset) for h in hospital]
        else:
            err.print(f"[bold]1.[/] Generating 3 synthetic children's hospitals ({patients:,} children each)")
            made = generate(folder / "data", hospitals=3, patients=patients, seed=seed, overwrite=True)
            from phds.demo.network import DemoHospital

            hospitals = [DemoHospital(r.slug, r.name, omop_url=f"duckdb:///{r.path.resolve()}") for r in made]
            for r in made:
                err.print(f"   {r.slug}: {r.name}", highlight=False)
        if len(hospitals) > MANUAL_HOSPITAL_INDEX:
            hospitals[MANUAL_HOSPITAL_INDEX].approval = "manual"
        err.print(f"[bold]2.[/] Starting a hub and {len(hospitals)} hospital nodes on loopback (in {folder})")
        vocabulary = next((h.omop_url for h in hospitals if h.omop_url), None) if hospital else None
        hub_env = {"PHDS_HUB_VOCABULARY_URL": vocabulary} if vocabulary else None
        with LocalNetwork(folder, hospitals, hub_env=hub_env) as network:
            manual = [h.name for h in hospitals if h.approval == "manual"]
            if manual:
                err.print(f"   {', '.join(manual)}: its data steward approves each feasibility study by hand")
            text = cohort.read_text(encoding="utf-8") if cohort else default_cohort()
            question = (
                f"the cohort in {cohort}" if cohort else "children aged 2-11 with asthma and salbutamol"
            )
            err.print(f"[bold]3.[/] Submitting a feasibility study: {question}, by sex and ICH E11 age group")
            params = {"cohort": text, "breakdowns": ["sex", "age_group"]}
            result = run_study(
                network,
                {"name": "feasibility.count", "params": params},
                title=f"Cohort {cohort.name}" if cohort else "Asthma and salbutamol in children aged 2-11",
                service_type="feasibility",
                on_change=lambda view: print_state(err, view),
            )
            if as_json:
                typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
            else:
                err.print(
                    "[bold]4.[/] Result (counts below a hospital's minimum cell count leave only as '<5'):"
                )
                assert isinstance(result, FeasibilityResult)
                Console().print(feasibility_table(result))
                err.print(f"   {result.attribution}", highlight=False)
                if any(cell.startswith("infant") for cell in result.breakdowns.get("age_group", {})):
                    err.print(
                        "   Age at index follows Circe's calendar-year rule; age groups are exact ICH E11"
                        " ages, so a child counted as 2 may still be an infant of 23 months."
                    )
            if keep_running:
                _print_access(network)
                err.print("The network keeps running; press Ctrl-C to stop it.")
                signal.sigwait({signal.SIGINT, signal.SIGTERM})
            err.print("[bold]5.[/] Shutting the network down")
    finally:
        if workdir is None and not keep_running:
            shutil.rmtree(folder, ignore_errors=True)


def _print_access(network: object) -> None:
    from phds.demo import LocalNetwork

    assert isinstance(network, LocalNetwork)
    err.print(f"hub:             {network.hub_url}  (OpenAPI at {network.hub_url}/docs)")
    err.print(f"admin token:     {network.admin_token}")
    err.print(f"requester token: {network.requester_token}  (PHDS_HUB_URL={network.hub_url} PHDS_TOKEN=...)")
    for name, node in network.nodes.items():
        err.print(f"steward token of {name}: {node.steward_token}  (node config {node.config})")


def register(app: typer.Typer) -> None:
    """Add ``phds demo``."""
    app.command("demo")(demo)
