"""The hub's part of a synthetic dataset's report: the sample, and its fidelity to the released marginals.

Everything here is post-processing of what the gates released (the noisy marginals) and of the sample
drawn from them; no real row is read. Fidelity of a marginal is ``1 − TVD`` between the sample's
distribution on the marginal's cells and the released noisy counts (negative counts clamped at 0, then
normalised): the total-variation complement that sdmetrics' QualityReport uses for column shapes and
pairs (``TVComplement``, SDV documentation), here measured against the DP marginals instead of the real
rows, which never leave.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from phds.privacy.synthetic_dp import discretise

if TYPE_CHECKING:
    from phds.analyses.synthetic import SyntheticParams


def marginal_fidelity(sample: pd.DataFrame, gen: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``1 − TVD`` of the sample against each released marginal (module docstring)."""
    columns = gen["columns"]
    names = [c["name"] for c in columns]
    sizes = {c["name"]: len(c["labels"]) for c in columns}
    codes = discretise(sample, columns)
    out = []
    for m in gen["marginals"]:
        clique = list(m["clique"])
        shape = tuple(sizes[a] for a in clique)
        idx = np.ravel_multi_index(tuple(codes[:, names.index(a)] for a in clique), shape)
        synth = np.bincount(idx, minlength=int(np.prod(shape))).astype(float)
        noisy = np.clip(np.asarray(m["values"], dtype=float), 0.0, None)
        p = synth / max(synth.sum(), 1.0)
        q = noisy / max(noisy.sum(), 1e-12)
        out.append({"clique": clique, "fidelity": float(1.0 - 0.5 * np.abs(p - q).sum())})
    return out


def network_report(
    params: SyntheticParams,
    samples: Mapping[str, pd.DataFrame],
    measured: Mapping[str, Mapping[str, Any]],
    budgets: Mapping[str, Any],
) -> dict[str, Any]:
    """The result of round 1: rows with a hospital column, the columns' domains and the fidelity."""
    rows: list[dict[str, Any]] = []
    fidelity: dict[str, Any] = {}
    for hospital, frame in sorted(samples.items()):
        with_h = frame.assign(hospital=hospital)
        records = with_h.astype(object).where(with_h.notna(), None).to_dict(orient="records")
        rows.extend({str(k): _plain(v) for k, v in r.items()} for r in records)
        scores = marginal_fidelity(frame, measured[hospital])
        one = [s["fidelity"] for s in scores if len(s["clique"]) == 1]
        two = [s["fidelity"] for s in scores if len(s["clique"]) == 2]
        fidelity[hospital] = {
            "marginals": scores,
            "one_way_mean": float(np.mean(one)) if one else None,
            "two_way_mean": float(np.mean(two)) if two else None,
            "tree": [s["clique"] for s in scores if len(s["clique"]) == 2],
            "noise_stddev": measured[hospital]["dp"]["scale"],
            "rho": measured[hospital]["dp"]["rho"],
            "epsilon": measured[hospital]["dp"]["epsilon"],
        }
    return {
        "algorithm": "mst",
        "columns": [c.name for c in params.columns] + ["hospital"],
        "domains": {h: g["columns"] for h, g in sorted(measured.items())},
        "rows": rows,
        "rows_per_hospital": params.rows,
        "seed": params.seed,
        "utility": {"fidelity_to_released_marginals": fidelity},
        "dp_budget": dict(budgets),
    }


def _plain(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


__all__ = ["marginal_fidelity", "network_report"]
