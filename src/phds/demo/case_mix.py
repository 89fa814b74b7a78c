"""Synthetic hospitals with declared case mixes: the ground truth of the federated-learning checks.

Every hospital draws its patients from one shared outcome model and its own case mix:

* four numeric features ``age_z``, ``lactate``, ``heart_rate_z``, ``crp`` and a binary ``sex``; hospital h
  shifts the means of the numeric ones by ``skew · offset_h`` (offsets drawn once from the seed, each
  coordinate N(0, 1)) and scales their spread by ``1 + 0.5 · skew · u_h`` (u_h uniform in [−1, 1]);
* the outcome is Bernoulli(σ(η)) with the **same** η for every hospital:
  ``η = β₀ + β·x + γ · lactate · 1[hospital's case mix is surgical]`` where the interaction γ (0 unless
  ``interaction`` is given) is switched on at the hospitals listed in ``surgical``: a deliberately
  non-IID split whose optimum differs per hospital, the situation FedProx (Li et al. 2020) was made for;
* the hospital's size is ``rows`` (or ``rows · size_h`` with ``sizes``), so the largest ones dominate
  a row-weighted average.

``skew = 0`` and no interaction give IID hospitals (the benchmark's setting). :data:`TRUE_BETA` and
:data:`TRUE_INTERCEPT` are the ground truth a pooled fit should recover when the interaction is off.
Rows get an ``id`` column and are written as CSV (one file per hospital) by :func:`write_hospitals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ("age_z", "lactate", "heart_rate_z", "crp")
TRUE_INTERCEPT = -2.0
TRUE_BETA = {"age_z": 0.4, "lactate": 0.8, "heart_rate_z": 0.5, "crp": 0.3, "sex": -0.3}
BASE_MEANS = {"age_z": 0.0, "lactate": 1.5, "heart_rate_z": 0.0, "crp": 2.0}


@dataclass(frozen=True)
class CaseMix:
    """How the hospitals differ (module docstring)."""

    hospitals: int = 3
    rows: int = 2000
    skew: float = 0.0
    interaction: float = 0.0
    surgical: tuple[int, ...] = ()
    sizes: tuple[float, ...] = ()
    seed: int = 0


def hospital_frame(mix: CaseMix, h: int) -> pd.DataFrame:
    """Hospital *h*'s rows (0-based), deterministic from the mix's seed."""
    shift_rng = np.random.default_rng([mix.seed, 7919])
    offsets = shift_rng.normal(size=(mix.hospitals, len(FEATURES)))
    spreads = shift_rng.uniform(-1, 1, size=mix.hospitals)
    rng = np.random.default_rng([mix.seed, h])
    n = round(mix.rows * (mix.sizes[h] if mix.sizes else 1.0))
    scale = 1.0 + 0.5 * mix.skew * spreads[h]
    cols = {
        f: BASE_MEANS[f] + mix.skew * offsets[h, j] + scale * rng.normal(size=n)
        for j, f in enumerate(FEATURES)
    }
    sex = rng.integers(0, 2, size=n)
    eta = TRUE_INTERCEPT + sum(TRUE_BETA[f] * (cols[f] - BASE_MEANS[f]) for f in FEATURES)
    eta = eta + TRUE_BETA["sex"] * sex
    if h in mix.surgical:
        eta = eta + mix.interaction * (cols["lactate"] - BASE_MEANS["lactate"])
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-eta))
    return pd.DataFrame({"id": np.arange(n), **cols, "sex": sex, "outcome": y.astype(int)})


def write_hospitals(mix: CaseMix, folder: Path, names: Sequence[str] | None = None) -> dict[str, Path]:
    """One CSV per hospital under *folder*; returns ``{hospital name: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for h in range(mix.hospitals):
        name = names[h] if names else f"hospital{h + 1}"
        path = folder / f"{name}.csv"
        hospital_frame(mix, h).to_csv(path, index=False)
        out[name] = path
    return out


__all__ = [
    "BASE_MEANS",
    "FEATURES",
    "TRUE_BETA",
    "TRUE_INTERCEPT",
    "CaseMix",
    "hospital_frame",
    "write_hospitals",
]
