"""Shared data and harness helpers for the attack suite (tests/privacy/attacks); conftest.py exposes it.

Every attack runs through :class:`phds.analyses.testing.Federation`: real node runtimes answering real
tasks. The planted site is a small slice of DataSHIELD CNSIM1 with one *target* patient whose values are
unique, so each test knows the ground truth it must not be able to recover.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phds.analyses.testing import Federation, FederationRun

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
CNSIM_DIR = SHARED / "tabular" / "datashield" / "CNSIM"
ROSSI = SHARED / "survival" / "lifelines" / "rossi.csv"

TARGET_HDL = 9.87  # no other patient is anywhere near (CNSIM HDL < 3)
TARGET_TSC = 7.123  # the secret the GLM attacks try to read
TARGET_TRIG = 4.321
RARE_BMI_LEVEL = 4  # only the target has this PM_BMI_CATEGORICAL level
CVA_CASES = 3  # DIS_CVA = 1 for exactly three patients
GLUC_MISSING = 3  # LAB_GLUC_ADJUSTED is missing for exactly three patients
GENDER_MISSING = 2  # GENDER is missing for exactly two patients
NUMERIC = ["LAB_TSC", "LAB_TRIG", "LAB_HDL", "LAB_GLUC_ADJUSTED", "PM_BMI_CONTINUOUS"]


def cnsim_path(i: int) -> Path:
    return CNSIM_DIR / f"CNSIM{i}.csv"


def load_csv(path: Path | str) -> pd.DataFrame:
    """A CSV as the node reads it: header names stripped, the unnamed index column kept as row_name."""
    frame = pd.read_csv(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.rename(columns={"Unnamed: 0": "row_name"})


def write_csv(frame: pd.DataFrame, path: Path, *, index_column: bool = True) -> Path:
    out = frame if index_column else frame.drop(columns=["row_name"], errors="ignore")
    out.to_csv(path, index=False)
    return path


def planted_frame(n: int = 300, *, seed: int = 0) -> pd.DataFrame:
    """*n* complete CNSIM1 rows; row 0 is the target patient, with planted small counts (module constants)."""
    raw = load_csv(cnsim_path(1))
    frame = raw.dropna(subset=[*NUMERIC, "PM_BMI_CATEGORICAL"]).head(n).reset_index(drop=True).copy()
    frame["PM_BMI_CATEGORICAL"] = frame["PM_BMI_CATEGORICAL"].astype(int)
    frame["DIS_CVA"] = 0
    frame["DIS_AMI"] = 0
    frame.loc[0, ["LAB_HDL", "LAB_TSC", "LAB_TRIG"]] = [TARGET_HDL, TARGET_TSC, TARGET_TRIG]
    frame.loc[0, ["GENDER", "DIS_AMI", "DIS_DIAB", "PM_BMI_CATEGORICAL"]] = [1, 1, 1, RARE_BMI_LEVEL]
    frame.loc[0 : CVA_CASES - 1, "DIS_CVA"] = 1
    frame["GENDER"] = frame["GENDER"].astype("Int64")
    frame.loc[3 : 3 + GLUC_MISSING - 1, "LAB_GLUC_ADJUSTED"] = np.nan
    frame.loc[10 : 10 + GENDER_MISSING - 1, "GENDER"] = pd.NA
    return frame


@dataclass
class Site:
    """A planted hospital file and its ground truth."""

    path: Path
    frame: pd.DataFrame

    @property
    def target(self) -> pd.Series:
        return self.frame.iloc[0]


def planted_site(tmp_path: Path) -> Site:
    frame = planted_frame()
    return Site(write_csv(frame, tmp_path / "planted.csv"), frame)


def make_site(tmp_path: Path, frame: pd.DataFrame, name: str = "site.csv", **kw: Any) -> Site:
    return Site(write_csv(frame, tmp_path / name, **kw), frame)


def federation(
    tmp_path: Path, sites: Mapping[str, Path | Site], dataset: str = "cnsim", **kw: Any
) -> Federation:
    """One federation (keep it across the queries of a test: the guard remembers)."""
    hospitals = {h: {dataset: s.path if isinstance(s, Site) else s} for h, s in sites.items()}
    return Federation(hospitals=hospitals, folder=tmp_path / "federation", **kw)


# -- reading what was released --------------------------------------------------------------------------


def walk(obj: Any) -> Iterator[Any]:
    """Every scalar (and every key) in a nested payload."""
    if isinstance(obj, Mapping):
        for key, val in obj.items():
            yield key
            yield from walk(val)
    elif isinstance(obj, list | tuple):
        for val in obj:
            yield from walk(val)
    else:
        yield obj


def everything(run: FederationRun) -> list[Any]:
    """All that left the nodes (every released payload) and the final result."""
    return [run.releases, run.result, run.notes]


def numbers(run: FederationRun) -> list[float]:
    out = []
    for x in walk(everything(run)):
        if isinstance(x, bool):
            continue
        if isinstance(x, int | float) and math.isfinite(float(x)):
            out.append(float(x))
        elif isinstance(x, str):
            try:
                v = float(x)
            except ValueError:
                continue
            if math.isfinite(v):
                out.append(v)
    return out


def strings(run: FederationRun) -> list[str]:
    return [str(x) for x in walk(everything(run)) if isinstance(x, str | int | float)]


def exact(cell: Any) -> int | None:
    """The exact value of a released count, or None when it was suppressed (or absent)."""
    if not isinstance(cell, Mapping) or cell.get("suppressed", True) or cell.get("value") is None:
        return None
    return int(cell["value"])


def values(payload: Mapping[str, Any]) -> dict[str, Any]:
    return dict(payload.get("values", {}))


def recovers(estimate: float | None, truth: float, tol: float = 1e-6) -> bool:
    """True when the attacker's estimate pins the secret (to *tol*, relative)."""
    if estimate is None or not math.isfinite(estimate):
        return False
    return abs(estimate - truth) <= tol * max(1.0, abs(truth))


def coef(run: FederationRun, term: str) -> float | None:
    if run.result is None:
        return None
    for c in run.result.get("coefficients", []):
        if c["term"] == term:
            return float(c["estimate"])
    return None


def mappings(obj: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping nested in *obj*."""
    if isinstance(obj, Mapping):
        yield obj
        for val in obj.values():
            yield from mappings(val)
    elif isinstance(obj, list | tuple):
        for val in obj:
            yield from mappings(val)


def small_exact_counts(run: FederationRun) -> list[int]:
    """Every exact count in 1..4 anywhere in the releases or the result."""
    found = []
    for x in mappings(everything(run)):
        if x.get("type") == "count":
            v = exact(x)
            if v is not None and 1 <= v <= 4:
                found.append(v)
    return found


def first_payloads(run: FederationRun, hospital: str = "site1") -> list[dict[str, Any]]:
    return run.releases.get(hospital, [])


Tamper = Callable[[Any], Any]


def attempt(fed: Federation, analysis: str, params: Mapping[str, Any], **kw: Any) -> FederationRun:
    """Run a study; parameters the analysis rejects before anything runs end it with ``error`` (a defence)."""
    from phds.errors import InputError

    try:
        run = fed.run(analysis, params, **kw)
    except InputError as exc:
        run = FederationRun(None, [], 0, {}, error=f"rejected: {exc.message}")
    if os.environ.get("PHDS_ATTACK_DEBUG"):
        print(f"\n[{analysis}] error={run.error} refused={run.refused} released={run.result is not None}")
    return run
