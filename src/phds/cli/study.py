"""``phds study``: submit studies to a hub, follow them and read their results (the requester's CLI).

The hub comes from ``--hub`` or ``PHDS_HUB_URL``, the API token from ``--token`` or ``PHDS_TOKEN``.
Only what a script would capture goes to stdout: ``submit`` prints the study id alone (without
``--wait``), ``results --json`` prints JSON. Tables and progress go to stdout or stderr as noted.
Waiting follows the hub's long poll and shows hospitals answered out of those asked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from phds.errors import ConfigError
from phds.protocol.studies import StudyView
from phds.sdk.client import Client
from phds.sdk.results import FeasibilityResult, MeanVarianceResult, StudyResult
from phds.sdk.studyfile import load_study
from phds.sdk.verify import requester_signer
from phds.trust.specs import sign_spec

log = logging.getLogger(__name__)


def _console(*, stderr: bool = False) -> Console:
    """A console made per command, so it sees the terminal (and ``COLUMNS``) of this invocation."""
    return Console(stderr=stderr, highlight=False)


app = typer.Typer(help="Submit studies to a PHDS hub, follow them and read their results.")

Hub = Annotated[str | None, typer.Option("--hub", envvar="PHDS_HUB_URL", help="Hub URL (PHDS_HUB_URL).")]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="PHDS_TOKEN", help="API token (PHDS_TOKEN).", show_default=False),
]
Wait = Annotated[bool, typer.Option("--wait", help="Wait for the study to finish, showing progress.")]


def register(root: typer.Typer) -> None:
    """Add the ``study`` group to the root app."""
    root.add_typer(app, name="study", no_args_is_help=True)


@contextmanager
def _client(hub: str | None, token: str | None) -> Iterator[Client]:
    if not hub:
        raise ConfigError("no hub URL: pass --hub or set PHDS_HUB_URL")
    if not token:
        raise ConfigError("no API token: pass --token or set PHDS_TOKEN")
    with Client(hub, token) as client:
        yield client


def _wait(client: Client, study_id: str) -> StudyView:
    """Wait on the hub's long poll with a progress bar of hospitals answered (on stderr)."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"study {study_id}", total=None)

        def show(view: StudyView) -> None:
            done = sum(1 for h in view.hospitals if h.state.is_final)
            bar.update(
                task,
                total=len(view.hospitals),
                completed=done,
                description=f"study {view.id} {view.state.value}, round {view.round}: hospitals answered",
            )

        view = client.wait(study_id, progress=show)
    _console(stderr=True).print(f"study {view.id}: {view.state.value}")
    return view


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="Study file (YAML or JSON).", show_default=False)],
    wait: Wait = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Submit a study file; print its id (alone on stdout unless --wait, which then shows the results)."""
    with _client(hub, token) as client:
        study = client.submit(file)
        typer.echo(study.id)
        if wait:
            view = _wait(client, study.id)
            _show_view_or_result(client, view)


@app.command()
def sign(
    file: Annotated[Path, typer.Argument(help="Study file (YAML or JSON).", show_default=False)],
    key: Annotated[
        Path | None, typer.Option("--key", envvar="PHDS_REQUESTER_KEY", help="Requester key (PEM).")
    ] = None,
    attestation: Annotated[
        Path | None,
        typer.Option(
            "--attestation", envvar="PHDS_ATTESTATION", help="The organisation's attestation (JSON)."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the signed study here (default: stdout).")
    ] = None,
) -> None:
    """Sign a study file with the requester key, offline; upload the signed JSON in the portal."""
    signer = requester_signer(key, attestation)
    if signer is None:
        raise ConfigError("no requester key: pass --key and --attestation or set PHDS_REQUESTER_KEY")
    signed = sign_spec(load_study(file).model_dump(mode="json"), *signer)
    text = signed.model_dump_json(indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        _console(stderr=True).print(f"signed study written to {output} (hash {signed.spec_hash[:16]})")


@app.command()
def status(
    study_id: Annotated[str, typer.Argument(metavar="ID", help="Study id.", show_default=False)],
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Show a study's state and each hospital's state and reason."""
    with _client(hub, token) as client:
        _print_status(client.study(study_id))


@app.command()
def cancel(
    study_id: Annotated[str, typer.Argument(metavar="ID", help="Study id.", show_default=False)],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (the hospitals see it).", show_default=False)
    ] = None,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Cancel an unfinished study: the hospitals skip its open tasks and audit the cancellation."""
    with _client(hub, token) as client:
        _print_status(client.cancel(study_id, reason))


@app.command()
def results(
    study_id: Annotated[str, typer.Argument(metavar="ID", help="Study id.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw the result (.png or .svg), by analysis.", show_default=False),
    ] = None,
    wait: Wait = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Show a finished study's result as tables (or JSON with --json); --plot FILE also draws it."""
    if plot is not None:
        from phds.sdk.plots import plot_format

        plot_format(plot)  # a wrong suffix fails before any request
    with _client(hub, token) as client:
        if wait:
            _wait(client, study_id)
        result = client.results(study_id)
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str))
        else:
            _print_result(result)
        if plot is not None:
            from phds.sdk.plots import plot_result

            plot_result(result, plot)
            _console(stderr=True).print(f"plot written to {plot}", highlight=False)


@app.command()
def verify(
    study_id: Annotated[str, typer.Argument(metavar="ID", help="Study id.", show_default=False)],
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="JSON file: hospital → node public key to pin (default: the hub's)."),
    ] = None,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Check every release's node signature and recompute the result from the signed releases alone;
    exit 4 if anything the hub relayed was altered."""
    pinned: dict[str, str] | None = None
    if keys is not None:
        try:
            pinned = {str(h): str(k) for h, k in json.loads(keys.read_text(encoding="utf-8")).items()}
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{keys}: not a JSON object of hospital → public key ({exc})") from None
    with _client(hub, token) as client:
        if pinned is None:
            _console(stderr=True).print(
                "no --keys: trusting the node keys the hub pinned at enrolment (pin them with --keys)",
                highlight=False,
            )
        outcome = client.verify(study_id, pinned)
    _console().print(str(outcome), highlight=False)


@app.command("list")
def list_studies(hub: Hub = None, token: Token = None) -> None:
    """List the studies this token can see, newest first."""
    with _client(hub, token) as client:
        views = client.studies()
    table = Table("id", "title", "analysis", "state", "answered", "submitted", title="Studies")
    for v in views:
        done = sum(1 for h in v.hospitals if h.state.value == "answered")
        submitted = v.submitted_at.strftime("%Y-%m-%d %H:%M") if v.submitted_at else ""
        table.add_row(
            v.id, v.spec.title, v.spec.analysis.name, v.state.value, f"{done}/{len(v.hospitals)}", submitted
        )
    _console().print(table if views else "no studies")


def _print_status(view: StudyView) -> None:
    _console().print(f"[bold]{view.spec.title}[/]")
    _console().print(
        f"study {view.id} · {view.spec.analysis.name} · [bold]{view.state.value}[/] · round {view.round}"
        + (f" · error: {view.error}" if view.error else "")
    )
    table = Table("hospital", "state", "reason", "updated")
    for h in view.hospitals:
        table.add_row(h.hospital, h.state.value, h.reason or "", h.updated_at.strftime("%Y-%m-%d %H:%M:%S"))
    _console().print(table)


def _show_view_or_result(client: Client, view: StudyView) -> None:
    if view.result is None:
        _print_status(view)
        return
    _print_result(client.results(view.id))


def _print_result(result: StudyResult) -> None:
    """A person-readable rendering: a header, the attribution, and the analysis's tables."""
    view = result.study
    _console().print(f"[bold]{view.spec.title}[/]")
    _console().print(f"study {view.id} · {view.spec.analysis.name} · [bold]{view.state.value}[/]")
    _console().print(str(result.attribution))
    if callable(summary := getattr(result, "summary", None)):  # the statistics' typed results
        typer.echo(summary().split("\n", 3)[-1].lstrip("\n"))  # their summary, without the header above
    elif isinstance(result, FeasibilityResult):
        frame = result.to_frame()
        table = Table(*[str(c) for c in frame.columns], title=f"Persons (network total {result.total})")
        for row in frame.itertuples(index=False):
            table.add_row(*["" if _missing(v) else str(v) for v in row])
        _console().print(table)
    elif isinstance(result, MeanVarianceResult):
        table = Table("statistic", "value", title=f"{result.dataset}.{result.variable}")
        for name, value in (
            ("n", result.n),
            ("mean", result.mean),
            ("variance", result.variance),
            ("sd", result.sd),
        ):
            table.add_row(name, "n/a" if value is None else f"{value:.6g}")
        for hospital, n in result.n_by_hospital.items():
            table.add_row(f"n at {hospital}", str(n))
        _console().print(table)
    else:
        body = {k: v for k, v in result.to_dict().items() if k not in result.attribution.__dataclass_fields__}
        _console().print_json(json.dumps(body, default=str))


def _missing(value: object) -> bool:
    return value is None or bool(pd.isna(value))  # type: ignore[call-overload]
