"""Simulated (fake) paediatric hospitals as OMOP CDM v5.4: ``generate(out, hospitals=3, seed=1)``.

Each hospital gets its own CDM (a DuckDB file or a CSV folder) with children 0–17 years old at
:data:`REFERENCE_DATE`, a case mix from :mod:`.casemix`, the shipped vocabulary subset and two planted
ground truths (asthma admissions, :mod:`.truth`; PICU sepsis, :mod:`.picu_truth`; docs/ground-truth.md).
Children are generated in chunks with vectorised numpy and streamed to the output, so memory stays
bounded.

Reproducibility: hospital *h*, chunk *c* draws from ``SeedSequence(seed, spawn_key=(h, c))``, so the
same seed and chunk size give byte-identical CSV output, and adding hospitals never changes the
earlier ones.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from phds.errors import InputError
from phds.omop.simulator.casemix import PROFILES, HospitalProfile, hospital_profiles
from phds.omop.simulator.chunk import IdCounter, build_chunk
from phds.omop.simulator.sites import site_tables
from phds.omop.simulator.writers import FORMATS, Format, Sink, open_sink, output_path
from phds.omop.vocabulary import vocabulary_tables

log = logging.getLogger(__name__)

#: Data extraction date: every child is 0–17 years old on this day; observation ends here (or at death).
REFERENCE_DATE = date(2025, 12, 31)
#: Children per chunk. Part of the reproducibility contract: another chunk size gives other children.
CHUNK_SIZE = 50_000


@dataclass(frozen=True)
class HospitalResult:
    """What was written for one hospital."""

    slug: str
    name: str
    path: Path
    patients: int
    rows: dict[str, int]
    seconds: float


def generate(
    out: Path | str,
    *,
    hospitals: int = 1,
    patients: int = 10_000,
    seed: int = 0,
    fmt: Format = "duckdb",
    reference_date: date = REFERENCE_DATE,
    chunk_size: int = CHUNK_SIZE,
    overwrite: bool = False,
) -> list[HospitalResult]:
    """Write *hospitals* synthetic hospitals of *patients* children each under *out*.

    DuckDB: ``out/<slug>.duckdb``; CSV: ``out/<slug>/<TABLE>.csv``. Raises ``Conflict`` when an
    output exists and *overwrite* is false.
    """
    if hospitals < 1 or patients < 1 or chunk_size < 1:
        raise InputError("hospitals, patients and chunk size must be at least 1")
    if seed < 0:
        raise InputError("the seed must be a non-negative integer", field="seed")
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}", field="format")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for index, profile in enumerate(hospital_profiles(hospitals)):
        path = output_path(out, profile.slug, fmt)
        start = time.perf_counter()
        sink = open_sink(path, fmt, overwrite=overwrite)
        try:
            rows = generate_hospital(
                sink,
                profile,
                index=index,
                patients=patients,
                seed=seed,
                reference_date=reference_date,
                chunk_size=chunk_size,
            )
        finally:
            sink.close()
        seconds = time.perf_counter() - start
        log.info(
            "%s: %d children, %d rows in %.1f s -> %s",
            profile.slug,
            patients,
            sum(rows.values()),
            seconds,
            path,
        )
        results.append(HospitalResult(profile.slug, profile.name, path, patients, rows, seconds))
    return results


def generate_hospital(
    sink: Sink,
    profile: HospitalProfile,
    *,
    index: int,
    patients: int,
    seed: int,
    reference_date: date = REFERENCE_DATE,
    chunk_size: int = CHUNK_SIZE,
) -> dict[str, int]:
    """Stream one hospital's CDM into *sink*; returns rows written per table."""
    rows: dict[str, int] = {}

    def write(table: str, data: pa.Table) -> None:
        sink.write(table, data)
        rows[table] = rows.get(table, 0) + data.num_rows

    for table, data in vocabulary_tables().items():
        write(table, data)
    for table, data in site_tables(profile, seed=seed, patients=patients, reference=reference_date).items():
        write(table, data)
    ids = IdCounter()
    for chunk, first in enumerate(range(0, patients, chunk_size)):
        n = min(chunk_size, patients - first)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, chunk)))
        for table, data in build_chunk(rng, profile, n, first + 1, reference_date, ids).items():
            write(table, data)
        log.debug("%s: chunk %d (%d children) written", profile.slug, chunk, n)
    return rows


__all__ = [
    "CHUNK_SIZE",
    "PROFILES",
    "REFERENCE_DATE",
    "HospitalProfile",
    "HospitalResult",
    "generate",
    "generate_hospital",
    "hospital_profiles",
]
