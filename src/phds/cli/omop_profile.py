"""``phds omop profile URL`` and ``phds omop check URL``: describe a CDM store and check its quality."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from phds.omop.profile import build_profile
from phds.omop.profile_model import DatasetProfile
from phds.omop.quality import CheckResult, run_checks, summary
from phds.omop.store import open_store

URL_HELP = "CDM store URL: duckdb:///path/hospital.duckdb or postgresql://user@host/db?schema=cdm."


def register(app: typer.Typer) -> None:
    """Add this file's commands to *app*."""
    app.command("profile")(profile)
    app.command("check")(check)


def profile(
    url: Annotated[str, typer.Argument(help=URL_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as catalogue JSON.")] = False,
    min_cell_count: Annotated[
        int, typer.Option("--min-cell-count", min=1, help="Counts below this are shown as '<N'.")
    ] = 5,
    round_to: Annotated[int, typer.Option("--round-to", min=1, help="Round other counts to this.")] = 10,
    top: Annotated[int, typer.Option("--top", min=1, help="Most frequent concepts per domain.")] = 10,
) -> None:
    """Profile the CDM for the network catalogue: only disclosure-safe aggregates (HealthDCAT-AP names)."""
    with open_store(url, read_only=True) as store:
        result = build_profile(store, min_cell_count=min_cell_count, round_to=round_to, top_n=top)
    if as_json:
        typer.echo(result.to_json())
        return
    print_profile(result, Console())


def check(
    url: Annotated[str, typer.Argument(help=URL_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print every check result as JSON.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list checks that passed or did not apply.")
    ] = False,
    fail_on_error: Annotated[
        bool, typer.Option("--fail-on-error", help="Exit with code 1 when a check fails.")
    ] = False,
) -> None:
    """Run the data-quality checks (OHDSI DataQualityDashboard names); a report, exit 0 unless asked."""
    with open_store(url, read_only=True) as store:
        results = run_checks(store)
    if as_json:
        typer.echo(json.dumps([r.model_dump() for r in results], indent=2))
    else:
        print_checks(results, Console(), show_all=show_all)
    if fail_on_error and any(r.status == "fail" for r in results):
        # SystemExit, not typer.Exit: main() runs click with standalone_mode=False, which turns
        # typer.Exit into a return value that would be lost.
        raise SystemExit(1)


def print_profile(p: DatasetProfile, console: Console) -> None:
    """The profile as a few Rich tables."""
    head = Table(title=f"Dataset profile: {p.title or '(untitled)'}", show_header=False)
    head.add_column("field", style="bold")
    head.add_column("value")
    persons = "fewer than the minimum" if p.number_of_unique_individuals is None else None
    for name, value in (
        ("identifier", p.identifier),
        ("publisher", p.publisher),
        ("CDM version", p.cdm_version),
        ("vocabulary version", p.vocabulary_version),
        ("numberOfUniqueIndividuals", persons or f"{p.number_of_unique_individuals:,}"),
        ("numberOfRecords", f"{p.number_of_records:,}"),
        ("minTypicalAge / maxTypicalAge", f"{_opt(p.min_typical_age)} / {_opt(p.max_typical_age)}"),
        ("temporal", f"{p.temporal.start_date} to {p.temporal.end_date}" if p.temporal else "-"),
        ("hasCodingSystem", ", ".join(p.has_coding_system) or "-"),
        ("disclosure", f"min cell count {p.disclosure.min_cell_count}, rounded to {p.disclosure.round_to}"),
    ):
        head.add_row(name, escape(str(value)) if value is not None else "-")
    console.print(head)
    ages = Table(title="Persons by ICH E11 age group, and by sex")
    ages.add_column("group")
    ages.add_column("persons (age at reference)", justify="right")
    ages.add_column("persons observed in the group", justify="right")
    observed = {g.group: g.persons for g in p.age_groups_observed}
    for g in p.age_groups:
        ages.add_row(g.label, str(g.persons), str(observed.get(g.group, "-")))
    for s in p.sex:
        ages.add_row(f"sex: {s.sex}", str(s.persons), "")
    console.print(ages)
    bands = Table(title="Persons by age band (years; empty bands left out)")
    bands.add_column("age band")
    bands.add_column("persons", justify="right")
    for b in p.age_bands:
        if b.persons != 0:
            bands.add_row(b.label, str(b.persons))
    console.print(bands)
    domains = Table(title="Records per domain")
    domains.add_column("domain")
    domains.add_column("records", justify="right")
    domains.add_column("persons", justify="right")
    domains.add_column("most frequent concepts (persons)")
    tops = {d.table: d for d in p.top_concepts}
    for d in p.domains:
        top = tops.get(d.table)
        names = (
            ", ".join(f"{c.concept_name or c.concept_id} ({c.persons})" for c in top.concepts[:3])
            if top
            else ""
        )
        domains.add_row(d.domain, str(d.records), str(d.persons), escape(names))
    console.print(domains)


def print_checks(results: list[CheckResult], console: Console, *, show_all: bool = False) -> None:
    """Failed checks (or all) as a table, then the counts by status."""
    table = Table(title="Data-quality checks" + ("" if show_all else " that failed"))
    table.add_column("status")
    table.add_column("check", overflow="fold")
    table.add_column("table.field", overflow="fold")
    table.add_column("failing / checked", justify="right")
    table.add_column("% (limit)", justify="right")
    style = {"pass": "green", "fail": "bold red", "not_applicable": "dim"}
    for r in results:
        if not show_all and r.status != "fail":
            continue
        table.add_row(
            f"[{style[r.status]}]{r.status}[/]",
            r.check,
            escape(f"{r.table}.{r.field or '*'}"),
            f"{r.failing_rows:,} / {r.rows_checked:,}",
            f"{r.percent:.2f} ({r.threshold_percent:g})",
        )
    console.print(table)
    counts = summary(results)
    console.print(
        f"{counts['fail']} failed, {counts['pass']} passed, {counts['not_applicable']} not applicable "
        f"(empty or absent tables)"
    )


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)
