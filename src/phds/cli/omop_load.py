"""``phds omop load SOURCE --into URL``: load a hospital's OMOP CDM export into its CDM store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from phds.omop.load import LoadReport, load_cdm
from phds.omop.store import open_store


def register(app: typer.Typer) -> None:
    """Add this file's commands to *app*."""
    app.command("load")(load)


def load(
    source: Annotated[
        Path,
        typer.Argument(
            help="Folder of OHDSI-style CSV (or Parquet) files, one per CDM table, e.g. PERSON.csv."
        ),
    ],
    into: Annotated[
        str,
        typer.Option(
            "--into",
            help="CDM store URL: duckdb:///path/hospital.duckdb or postgresql://user@host/db?schema=cdm.",
        ),
    ],
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace rows of tables that already hold data (same transaction)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the load report as JSON.")] = False,
) -> None:
    """Load a CDM 5.3 or 5.4 export in one transaction: every file loads, or nothing does."""
    with open_store(into) as store:
        report = load_cdm(source, store, replace=replace)
    if as_json:
        payload = json.loads(report.model_dump_json())
        payload["rows"] = report.rows
        typer.echo(json.dumps(payload, indent=2))
        return
    print_report(report, Console())


def print_report(report: LoadReport, console: Console) -> None:
    """A per-table summary of a load."""
    table = Table(title=f"Loaded {report.source} into {report.store}")
    table.add_column("table")
    table.add_column("file")
    table.add_column("rows", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("notes")
    for t in report.tables:
        notes = [f"{len(t.renamed)} CDM 5.3 columns renamed"] if t.renamed else []
        notes += [f"absent {c} set to {v}" for c, v in t.filled.items()]
        if t.table in report.replaced:
            notes.insert(0, "replaced")
        table.add_row(t.table, t.file, f"{t.rows:,}", f"{t.seconds:.2f}", "; ".join(notes))
    console.print(table)
    for s in report.skipped:
        console.print(f"[yellow]skipped[/] {s.file}: {s.reason}")
    console.print(f"{report.rows:,} rows in {len(report.tables)} tables, {report.seconds:.2f} s")
