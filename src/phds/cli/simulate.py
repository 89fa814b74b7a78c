"""``phds simulate``: write simulated paediatric hospitals as OMOP CDM v5.4 (DuckDB files or CSV folders).

The simulator makes *fake* hospitals for tests, demos and benchmarks; it has nothing to do with synthetic
data released from real hospitals (``client.synthesize``, docs/howto/synthetic-data.md). ``phds synth``,
its old name, still works and says it is deprecated.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the hospitals into."),
    hospitals: int = typer.Option(1, "--hospitals", "-n", min=1, help="Number of hospitals."),
    patients: int = typer.Option(10_000, "--patients", "-p", min=1, help="Children per hospital."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, help="Seed; the same seed gives the same data."),
    fmt: str = typer.Option(
        "duckdb", "--format", "-f", help="duckdb (OUT/<hospital>.duckdb) or csv (OUT/<hospital>/)."
    ),
    reference_date: str = typer.Option(
        "2025-12-31", "--reference-date", help="Extraction date: children are 0-17 years old on it."
    ),
    chunk_size: int = typer.Option(50_000, "--chunk-size", min=1, help="Children generated per chunk."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace hospitals already in OUT."),
) -> None:
    """Simulate children's hospitals, each with its own case mix, as OMOP CDM v5.4 (fake data)."""
    from phds.errors import InputError
    from phds.omop.simulator import generate

    try:
        ref: date = datetime.strptime(reference_date, "%Y-%m-%d").date()
    except ValueError:
        raise InputError(f"not a YYYY-MM-DD date: {reference_date!r}", field="--reference-date") from None
    if fmt not in ("duckdb", "csv"):
        raise InputError(f"unknown format {fmt!r}; use duckdb or csv", field="--format")
    results = generate(
        out,
        hospitals=hospitals,
        patients=patients,
        seed=seed,
        fmt=fmt,  # type: ignore[arg-type]
        reference_date=ref,
        chunk_size=chunk_size,
        overwrite=overwrite,
    )
    console.print(f"{len(results)} simulated hospital(s), seed {seed}:", highlight=False)
    for r in results:
        rows = r.rows.get
        console.print(
            f"  {r.slug}: {r.patients:,} children, {rows('visit_occurrence', 0):,} visits, "
            f"{rows('condition_occurrence', 0):,} conditions, {rows('drug_exposure', 0):,} drug exposures, "
            f"{rows('measurement', 0):,} measurements in {r.seconds:.1f} s -> {r.path}",
            highlight=False,
            soft_wrap=True,
        )


def synth_deprecated(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the hospitals into."),
    hospitals: int = typer.Option(1, "--hospitals", "-n", min=1, help="Number of hospitals."),
    patients: int = typer.Option(10_000, "--patients", "-p", min=1, help="Children per hospital."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, help="Seed; the same seed gives the same data."),
    fmt: str = typer.Option("duckdb", "--format", "-f", help="duckdb or csv."),
    reference_date: str = typer.Option("2025-12-31", "--reference-date", help="Extraction date."),
    chunk_size: int = typer.Option(50_000, "--chunk-size", min=1, help="Children generated per chunk."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace hospitals already in OUT."),
) -> None:
    """Deprecated name of ``phds simulate`` (kept so scripts keep working)."""
    Console(stderr=True).print(
        "phds synth is deprecated and will be removed: use phds simulate (it writes fake hospitals, "
        "not synthetic data from real ones)",
        style="yellow",
        highlight=False,
    )
    simulate(out, hospitals, patients, seed, fmt, reference_date, chunk_size, overwrite)


def register(app: typer.Typer) -> None:
    """Add ``phds simulate`` and its deprecated alias ``phds synth`` to *app*."""
    app.command("simulate")(simulate)
    app.command("synth", hidden=True)(synth_deprecated)
