"""The hub's part of a synthetic dataset's report: the sample, its fidelity, and the evaluation round.

Everything here is post-processing of what the gates released (the noisy marginals) and of the sample
drawn from them; no real row is read. Fidelity of a marginal is ``1 − TVD`` between the sample's
distribution on the marginal's cells and the released noisy counts (negative counts clamped at 0, then
normalised): the total-variation complement that sdmetrics' QualityReport uses for column shapes and
pairs (``TVComplement``, SDV documentation), here measured against the DP marginals instead of the real
rows, which never leave. :func:`evaluation_report` adds what the nodes measured on their real rows in
round 2 (sdmetrics' quality score and pMSE, train-on-synthetic AUROC, distances, anonymeter's risks),
also post-processing of noisy counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from phds.analyses.base import Final, released_budgets, released_values
from phds.analyses.learning_eval import DEFAULT_BINS, binned_metrics, counts_from_cells
from phds.analyses.synthetic_quality import quality
from phds.analyses.synthetic_risks import ATTACKS, risk_of
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


def evaluation_report(
    params: SyntheticParams, state: Mapping[str, Any], released: Mapping[str, Mapping[str, Any]]
) -> Final:
    """The final result: round 1's, with the utility and privacy each node measured in round 2."""
    result = dict(state["result"])
    columns = list(state["columns"])
    frame = pd.DataFrame(result["rows"])
    dcr: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    models: dict[str, Any] = {}
    risks: dict[str, Any] = {}
    pooled: dict[str, list[np.ndarray]] = {"tstr": [], "trtr": []}
    for hospital, payload in sorted(released.items()):
        values = released_values(payload)
        own = frame[frame["hospital"] == hospital] if not frame.empty else frame
        dcr[hospital] = {part: _dcr(values[part]) for part in ("dcr", "dcr_control") if part in values}
        scores[hospital] = quality(columns, values, discretise(own, columns))
        models[hospital] = {}
        for name in ("tstr", "trtr"):
            if name in values:
                neg, pos, _ = counts_from_cells(values[name]["cells"], DEFAULT_BINS)
                pooled[name].append(np.vstack([neg, pos]))
                models[hospital][name] = _auc(neg, pos)
        risks[hospital] = {a: risk_of(values, a) for a in ATTACKS}
    network = {name: _auc(*np.sum(parts, axis=0)) for name, parts in pooled.items() if parts}
    result["utility"] = {
        **result["utility"],
        "quality": scores,
        "train_synthetic_test_real": {"hospitals": models, "network": network, "target": _target(params)},
    }
    result["privacy"] = {"distance_to_closest_synthetic": dcr, "anonymeter": risks}
    result["dp_budget"] = released_budgets(released)
    notes = ["every utility and privacy figure is post-processing of noisy counts each node's gate released"]
    if params.target is not None and state.get("tstr") is None:
        notes.append(
            f"no train-on-synthetic model: the synthetic sample has fewer than 5 rows of one class of "
            f"{params.target.column}"
        )
    if not any(any(r.values()) for r in risks.values()):
        notes.append("no node ran anonymeter's attacks (not installed there, or too few control rows)")
    return Final(result, notes=notes)


def _dcr(released: Mapping[str, Any]) -> dict[str, Any]:
    cells = released["cells"]
    out: dict[str, Any] = {lv: c["value"] for lv, c in cells.items()}
    out["ci95"] = next(iter(cells.values()))["dp"]["ci95"]
    return out


def _auc(neg: np.ndarray, pos: np.ndarray) -> dict[str, Any]:
    metrics = binned_metrics(np.asarray(neg, dtype=float), np.asarray(pos, dtype=float), DEFAULT_BINS)
    return {
        "auroc": metrics["auroc"],
        "auprc": metrics["auprc"],
        "n": metrics["n"],
        "cases": metrics["cases"],
    }


def _target(params: SyntheticParams) -> dict[str, Any] | None:
    return None if params.target is None else params.target.model_dump(mode="json")


def _plain(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


__all__ = ["evaluation_report", "marginal_fidelity", "network_report"]
