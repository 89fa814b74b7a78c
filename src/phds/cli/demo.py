"""``phds demo``: the whole network on loopback in one command (hub, nodes, a study, its result)."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from phds.demo import LocalNetwork
    from phds.sdk.results import StudyResult

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
    study: Path | None = typer.Option(
        None, "--study", help="Run this study file (YAML/JSON) instead; its hospitals become the demo's."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write the last result's plot (.png or .svg)."),
    workdir: Path | None = typer.Option(None, "--workdir", help="Keep everything in this folder."),
) -> None:
    """Generate 3 hospitals, start a hub and 3 nodes, run a feasibility study and a regression, print both.

    With --study FILE, run that study file instead (its hospitals and organisation become the demo's)."""
    from phds.demo import LocalNetwork
    from phds.demo.network_people import DEMO_PASSWORD
    from phds.demo.scenario import (
        default_cohort,
        demo_spec,
        feasibility_table,
        hospital_from_argument,
        print_state,
        submit_and_wait,
        verified,
    )
    from phds.omop.simulator import generate
    from phds.sdk import FeasibilityResult

    if plot is not None:
        from phds.sdk.plots import plot_format

        plot_format(plot)  # a wrong suffix fails before the network starts
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
        if study is not None:  # a wrong file or dataset name fails before the network starts
            from phds.demo.studies import check_dataset
            from phds.sdk import load_study

            params = load_study(study).analysis.params
            check_dataset(params, dataset, any(h.tabular for h in hospitals))
        if len(hospitals) > MANUAL_HOSPITAL_INDEX:
            hospitals[MANUAL_HOSPITAL_INDEX].approval = "manual"
        err.print(f"[bold]2.[/] Starting a hub and {len(hospitals)} hospital nodes on loopback (in {folder})")
        vocabulary = next((h.omop_url for h in hospitals if h.omop_url), None) if hospital else None
        hub_env = {"PHDS_HUB_VOCABULARY_URL": vocabulary} if vocabulary else None
        with LocalNetwork(folder, hospitals, hub_env=hub_env) as network:
            err.print(
                f"   portal: {network.hub_url}/portal  (sign in as researcher@acme.example or "
                f"admin@phds.local, password {DEMO_PASSWORD}"
                + ("" if keep_running else "; phds demo --keep-running keeps it open")
                + ")",
                highlight=False,
            )
            manual = [h.name for h in hospitals if h.approval == "manual"]
            if manual:
                err.print(
                    f"   {', '.join(manual)}: its data steward approves each study by hand, at the node"
                )
            if study is not None or not any(
                h.omop_url for h in hospitals
            ):  # no OMOP data: no cohort to count
                result = run_statistics(
                    network, folder, study=study, dataset=dataset, as_json=as_json, plot=plot
                )
                if as_json:
                    typer.echo(json.dumps(getattr(result, "raw", None), indent=2, default=str))
                _finish(network, keep_running)
                return
            text = cohort.read_text(encoding="utf-8") if cohort else default_cohort()
            question = (
                f"the cohort in {cohort}" if cohort else "children aged 2-11 with asthma and salbutamol"
            )
            err.print(f"[bold]3.[/] Submitting a feasibility study: {question}, by sex and ICH E11 age group")
            params = {"cohort": text, "breakdowns": ["sex", "age_group"]}
            title = f"Cohort {cohort.name}" if cohort else "Asthma and salbutamol in children aged 2-11"
            analysis = {"name": "feasibility.count", "params": params}
            result = submit_and_wait(
                network,
                demo_spec(analysis, network, title, service_type="feasibility"),
                on_change=lambda view: print_state(err, view),
            )
            if not as_json:
                err.print(
                    "[bold]4.[/] Result (counts below a hospital's minimum cell count leave only as '<5'):"
                )
                assert isinstance(result, FeasibilityResult)
                Console().print(feasibility_table(result))
                err.print(f"   {result.attribution}", highlight=False)
                err.print(f"   {verified(network, result.study_id)}", highlight=False)
                if any(cell.startswith("infant") for cell in result.breakdowns.get("age_group", {})):
                    err.print(
                        "   Age at index follows Circe's calendar-year rule; age groups are exact ICH E11"
                        " ages, so a child counted as 2 may still be an infant of 23 months."
                    )
                dp_analysis = {**analysis, "params": {**params, "breakdowns": ["sex"]}}
                dp_spec = demo_spec(dp_analysis, network, f"{title}, differentially private", "feasibility")
                dp_spec["dp"] = {"epsilon": 1.0}
                err.print(
                    "[bold]4b.[/] The same count by sex under differential privacy (dp: {epsilon: 1.0}): each"
                    " node adds OpenDP discrete Gaussian noise (± its 95% interval) and spends its ledger"
                )
                noisy = submit_and_wait(network, dp_spec, on_change=lambda view: None)
                assert isinstance(noisy, FeasibilityResult)
                Console().print(feasibility_table(noisy))
                err.print(f"   {noisy.dp_summary()}", highlight=False)
            regression = run_statistics(network, folder, dataset=dataset, as_json=as_json, plot=plot)
            money = _money_path(network, folder, quiet=as_json, kept=workdir is not None)
            if as_json:
                body = {
                    "feasibility": result.to_dict(),
                    "regression": regression and regression.to_dict(),
                    "billing": money,
                }
                typer.echo(json.dumps(body, indent=2, default=str))
            _finish(network, keep_running)
    finally:
        if workdir is None and not keep_running:
            shutil.rmtree(folder, ignore_errors=True)


def run_statistics(
    network: LocalNetwork,
    folder: Path,
    *,
    dataset: str,
    as_json: bool,
    plot: Path | None,
    study: Path | None = None,
) -> StudyResult | None:
    """Run *study* (a file), or the demo's regression; print its summary, write its plot; its result."""
    from phds.demo.scenario import demo_spec, submit_and_wait, verified
    from phds.demo.studies import (
        ground_truth_glm,
        ground_truth_lines,
        print_typed,
        rounds_printer,
        secure_comparison,
        spec_for_demo,
        tabular_glm,
    )
    from phds.errors import Conflict

    if study is not None:
        err.print(f"[bold]3.[/] Submitting the study in {study}")
        spec = spec_for_demo(study, network, dataset, lambda text: err.print(text, highlight=False))
    elif any(h.omop_url for h in network.hospitals):
        err.print(
            "[bold]5.[/] Submitting a regression: the binomial GLM of the synthetic generator's ground truth"
            " (asthma admission within a year ~ age + sex + BMI SDS + inhaled corticosteroid;"
            " docs/ground-truth.md)"
        )
        spec = demo_spec(ground_truth_glm(), network, "Asthma admissions: the ground-truth logistic model")
    else:
        analysis = tabular_glm(dataset, _columns(network, dataset))
        if analysis is None:
            err.print("   (no regression: the tabular data lacks the CNSIM columns of the demo's GLM)")
            return None
        err.print(
            f"[bold]3.[/] Submitting a regression over dataset {dataset!r}: {analysis['params']['formula']}"
        )
        spec = demo_spec(analysis, network, "Diabetes ~ sex × BMI + HDL (binomial GLM)")
    try:
        result = submit_and_wait(network, spec, on_change=rounds_printer(err))
    except Conflict as exc:  # the study ended without a result, e.g. every gate refused it
        err.print(f"   no result: {exc.message}", highlight=False)
        return None
    if not as_json:
        print_typed(Console(), result)
        err.print(verified(network, result.study_id), highlight=False)
        if study is None and spec["analysis"]["params"]["table"].get("cohort"):
            err.print("\n".join(ground_truth_lines(result)), highlight=False, soft_wrap=True)
        if study is None:
            err.print(
                "[bold]6.[/] The same GLM under secure aggregation (secure_aggregation: true): each IRLS"
                " round's sums reach the hub only as the network total (Bonawitz et al. 2017)"
            )
            secure = submit_and_wait(network, {**spec, "secure_aggregation": True}, on_change=lambda v: None)
            for line in secure_comparison(result, secure):
                err.print(f"   {line}", highlight=False)
            err.print(f"   {verified(network, secure.study_id)}", highlight=False)
    if plot is not None:
        from phds.sdk.plots import plot_result

        plot_result(result, plot)
        err.print(f"   plot written to {plot}", highlight=False)
    return result


def _money_path(network: LocalNetwork, folder: Path, *, quiet: bool, kept: bool) -> dict[str, object]:
    """Step 7: applications, quotes, billed studies, the month's invoices verified, statements, a
    simulator run (docs/howto/billing.md)."""
    from phds.demo.money import run_money_path

    if not quiet:
        err.print(
            "[bold]7.[/] The money path: an academic and an industry application, quoted from the default"
            " tariff and accepted; studies billed from node-signed receipts; this month's invoices"
            " (closed early) verified against the node keys; each hospital's statement"
            + ("" if kept else " (PDFs and charts are kept with --workdir)")
        )
    say = (lambda text: None) if quiet else (lambda text: err.print(text, highlight=False, soft_wrap=True))
    return run_money_path(network, folder, say).to_dict()


def _columns(network: LocalNetwork, dataset: str) -> list[str]:
    import pandas as pd

    path = next((h.tabular[dataset] for h in network.hospitals if dataset in h.tabular), None)
    if path is None or path.suffix.lower() != ".csv":
        return []
    return [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]


def _finish(network: object, keep_running: bool) -> None:
    if keep_running:
        _print_access(network)
        err.print("The network keeps running; press Ctrl-C to stop it.")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    err.print("[bold]Done.[/] Shutting the network down")


def _print_access(network: object) -> None:
    from phds.demo import LocalNetwork
    from phds.demo.network_people import DEMO_PASSWORD

    assert isinstance(network, LocalNetwork)
    err.print(f"hub:             {network.hub_url}  (OpenAPI at {network.hub_url}/docs)")
    err.print(f"portal:          {network.hub_url}/portal  (every person's password: {DEMO_PASSWORD})")
    err.print(
        "  requester researcher@acme.example, operator admin@phds.local, steward steward@<hospital>.example"
    )
    err.print(f"  requester signing files: {network.requester_key_path} and {network.attestation_path}")
    err.print(f"admin token:     {network.admin_token}")
    err.print(f"requester token: {network.requester_token}  (PHDS_HUB_URL={network.hub_url} PHDS_TOKEN=...)")
    for name, node in network.nodes.items():
        err.print(f"steward token of {name}: {node.steward_token}  (node config {node.config})")
        err.print(f"  steward console of {name}: phds node console --config {node.config}")


def register(app: typer.Typer) -> None:
    """Add ``phds demo``."""
    app.command("demo")(demo)
