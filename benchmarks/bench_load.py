"""Load throughput: PHDS's CDM loader vs DuckDB's own ``read_csv`` of the same CSV folder.

PHDS: ``load_cdm`` into a fresh DuckDB store (typed CDM 5.4 tables, one transaction, 5.3 mapping).
Baseline: ``CREATE TABLE … AS SELECT * FROM read_csv(file)`` with DuckDB's type auto-detection into
plain tables of a fresh DuckDB file. Both report rows per second over the median of ``REPEATS`` runs;
the target is PHDS within 1.5× of the baseline's time.

The CSV folder, in order of preference:
1. ``PHDS_BENCH_LOAD_SOURCE``: any OHDSI-style CSV folder;
2. a synthetic hospital from ``phds simulate --hospitals 1 --patients $PHDS_BENCH_LOAD_PATIENTS``;
3. the real eunomia-gibleed export with every data row repeated ``PHDS_BENCH_LOAD_SCALE`` times
   (written to a temporary folder, never into the repository).

With ``PHDS_BENCH_LOAD_PG_DSN`` set (e.g. ``postgresql://postgres@127.0.0.1:5432/test``) it also times
PHDS loading the same folder into a PostgreSQL schema.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.common import median_seconds, timed, write_result
from phds.omop.load import load_cdm
from phds.omop.store import open_store

REPEATS = int(os.environ.get("PHDS_BENCH_LOAD_REPEATS", "5"))
PATIENTS = int(os.environ.get("PHDS_BENCH_LOAD_PATIENTS", "100000"))
SCALE = int(os.environ.get("PHDS_BENCH_LOAD_SCALE", "20"))
PG_DSN = os.environ.get("PHDS_BENCH_LOAD_PG_DSN")  # optional: also time loading into PostgreSQL
EUNOMIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "omop" / "eunomia-gibleed"


def synth_folder(out: Path) -> Path | None:
    """A synthetic hospital export from ``phds simulate``, or None when the generator is not available."""
    cmd = [sys.executable, "-m", "phds.cli.main", "synth", "--hospitals", "1", "--patients", str(PATIENTS)]
    cmd += ["--seed", "1", "--out", str(out), "--format", "csv"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None
    folders = {p.parent for p in out.rglob("*.csv") if p.stem.lower() == "person"}
    return sorted(folders)[0] if len(folders) >= 1 else None


def scaled_eunomia(out: Path, scale: int) -> Path:
    """eunomia-gibleed with every data row repeated *scale* times (ids repeat; the loader has no keys)."""
    out.mkdir(parents=True, exist_ok=True)
    for src in EUNOMIA.glob("*.csv"):
        dst = out / src.name
        with src.open("rb") as fh:
            header = fh.readline()
            body = fh.read()
        if body and not body.endswith(b"\n"):
            body += b"\n"
        with dst.open("wb") as fh:
            fh.write(header)
            for _ in range(scale):
                fh.write(body)
    return out


def pick_source(tmp: Path) -> tuple[Path, str]:
    """The CSV folder to load, and a description of where it came from."""
    env = os.environ.get("PHDS_BENCH_LOAD_SOURCE")
    if env:
        return Path(env), f"PHDS_BENCH_LOAD_SOURCE={env}"
    synth = synth_folder(tmp / "synth")
    if synth is not None:
        return synth, f"phds simulate --hospitals 1 --patients {PATIENTS} --seed 1"
    return scaled_eunomia(
        tmp / "eunomia", SCALE
    ), f"eunomia-gibleed rows repeated x{SCALE} (phds simulate absent)"


def phds_load(source: Path, db: Path) -> int:
    db.unlink(missing_ok=True)
    with open_store(f"duckdb:///{db}") as store:
        return load_cdm(source, store).rows


def phds_load_postgres(source: Path, dsn: str) -> int:
    url = f"{dsn}?schema=phds_bench_load"
    with open_store(url) as store:
        store.execute('DROP SCHEMA IF EXISTS "phds_bench_load" CASCADE')
        rows = load_cdm(source, store).rows
        store.execute('DROP SCHEMA IF EXISTS "phds_bench_load" CASCADE')
    return rows


def duckdb_baseline(source: Path, db: Path) -> int:
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    rows = 0
    try:
        for i, path in enumerate(sorted(source.glob("*.csv"))):
            con.execute(f"CREATE TABLE t{i} AS SELECT * FROM read_csv('{path}')")
            rows += int(con.execute(f"SELECT count(*) FROM t{i}").fetchall()[0][0])
    finally:
        con.close()
    return rows


def main() -> dict[str, Any]:
    # The loader warns about 5.3 quirks on every run; one benchmark summary is enough.
    logging.getLogger("phds.omop.load").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="phds-bench-load-"))
    try:
        source, origin = pick_source(tmp)
        size = sum(p.stat().st_size for p in source.glob("*.csv"))
        _, rows = timed(lambda: phds_load(source, tmp / "phds.duckdb"))  # warm-up, also counts rows
        base_rows = duckdb_baseline(source, tmp / "base.duckdb")
        phds_median, phds_runs = median_seconds(lambda: phds_load(source, tmp / "phds.duckdb"), REPEATS)
        base_median, base_runs = median_seconds(lambda: duckdb_baseline(source, tmp / "base.duckdb"), REPEATS)
        pg_median = median_seconds(lambda: phds_load_postgres(source, PG_DSN), REPEATS)[0] if PG_DSN else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = phds_median / base_median
    result: dict[str, Any] = {
        "source": origin,
        "csv_bytes": size,
        "rows": rows,
        "baseline_rows": base_rows,
        "repeats": REPEATS,
        "phds_seconds_median": round(phds_median, 4),
        "phds_seconds_runs": [round(s, 4) for s in phds_runs],
        "phds_rows_per_second": round(rows / phds_median),
        "duckdb_read_csv_seconds_median": round(base_median, 4),
        "duckdb_read_csv_seconds_runs": [round(s, 4) for s in base_runs],
        "duckdb_read_csv_rows_per_second": round(base_rows / base_median),
        "time_ratio_phds_over_baseline": round(ratio, 3),
        "target_ratio": 1.5,
        "meets_target": ratio <= 1.5,
        "spread_phds": round(statistics.pstdev(phds_runs), 4),
    }
    if pg_median is not None:  # PHDS into PostgreSQL (DuckDB parses, COPY streams); includes DROP SCHEMA
        result["phds_postgres_seconds_median"] = round(pg_median, 4)
        result["phds_postgres_rows_per_second"] = round(rows / pg_median)
    write_result("load", result)
    return result
