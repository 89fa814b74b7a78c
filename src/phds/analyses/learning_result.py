"""Hub side of the evaluation round of ``learning.fedavg`` / ``learning.fedprox``: the study's result.

Per hospital: its exact metrics when its gate released them (else the binned ones), its calibration
bins; pooled: metrics of the summed bins (:mod:`phds.analyses.learning_eval`). The model leaves only
when every hospital that answered the evaluation accepted it (its gate released an acceptance bound to
the model's hash; under DP, its evaluation release itself) and those are a majority of the hospitals
that trained the last round; a hospital that did not answer is named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from phds.analyses.base import Final
from phds.analyses.learning_eval import binned_metrics, counts_from_cells, roc_points
from phds.analyses.learning_frame import design_columns
from phds.analyses.learning_node import model_shape, standardisation
from phds.analyses.learning_params import LearningParams
from phds.protocol.canonical import canonical_hash


def final(
    algorithm: str, params: LearningParams, state: Mapping[str, Any], values: Mapping[str, Any]
) -> Final:
    cuts = params.eval_bins
    digest = canonical_hash({"weights": list(state["weights"])})
    nb = len(cuts) + 1
    neg_all, pos_all = np.zeros(nb), np.zeros(nb)
    per: dict[str, Any] = {}
    suppressed, brier_sum, brier_n, accepted = 0, 0.0, 0.0, []
    for h, v in values.items():
        cells = v["calibration"]["cells"] if "calibration" in v else {}
        neg, pos, s = counts_from_cells(cells, cuts)
        neg_all, pos_all, suppressed = neg_all + neg, pos_all + pos, suppressed + s
        binned = binned_metrics(neg, pos, cuts)
        row: dict[str, Any] = {
            "n": binned["n"],
            "auroc": binned["auroc"],
            "auprc": binned["auprc"],
            "brier": None,
            "from_bins": True,
            "calibration": binned["calibration"],
        }
        if "metrics" in v:
            m = v["metrics"]
            row.update(
                {k: float(m["values"][k]) for k in ("auroc", "auprc", "brier")},
                n=int(m["n_obs"]["value"]),
                from_bins=False,
            )
            brier_sum, brier_n = brier_sum + row["brier"] * row["n"], brier_n + row["n"]
        elif not state.get("dp"):
            row["note"] = "exact metrics withheld: fewer than k cases or non-cases held out"
        per[h] = row
        if state.get("dp") or v.get("accept", {}).get("values", {}).get("model_sha256") == digest:
            accepted.append(h)
    no_bins: dict[str, Any] = {"auroc": None, "auprc": None}
    pooled = binned_metrics(neg_all, pos_all, cuts) if cuts else no_bins
    pooled["brier"] = brier_sum / brier_n if brier_n else None
    notes = [
        f"{h} did not answer round {r} (timed out, declined or refused) and was left out from then on"
        for h, r in sorted(state.get("skipped", {}).items())
    ]
    trained = list(state["hospitals"])
    refused = sorted(set(values) - set(accepted))
    absent = sorted(set(trained) - set(values))
    if absent:
        notes.append(f"{', '.join(absent)} did not answer the evaluation round")
    shape = model_shape(params)
    columns = design_columns(params.features.numeric, params.features.categorical)
    mean, sd = standardisation(params, state)
    model: dict[str, Any] = {
        "kind": params.model.kind,
        "hidden": list(params.model.hidden),
        "columns": columns,
        "n_params": shape.n_params,
        "weights": None,
        "standardisation": {
            "mean": dict(zip(params.features.numeric, mean, strict=True)),
            "sd": dict(zip(params.features.numeric, sd, strict=True)),
        },
    }
    result: dict[str, Any] = {
        "algorithm": algorithm,
        "rounds": params.rounds,
        "mu": params.mu,
        "hospitals": trained,
        "skipped": dict(state.get("skipped", {})),
        "curve": list(state["curve"]),
        "model": model,
        "coefficients": None,
        "metrics": {"per_hospital": per, "pooled": pooled},
        "roc": roc_points(neg_all, pos_all),
        "suppressed_bins": suppressed,
        "dp": bool(state.get("dp")),
    }
    if refused or 2 * len(accepted) <= len(trained):
        who = ", ".join(refused) if refused else "fewer than a majority of the training hospitals"
        notes.append(f"the model is withheld: {who} did not accept it at evaluation")
    else:
        model["weights"] = list(state["weights"])
        if params.model.kind == "logistic":
            result["coefficients"] = original_scale(
                list(state["weights"]), columns, len(params.features.numeric), mean, sd
            )
    if suppressed:
        notes.append(
            f"{suppressed} risk-bin cell(s) were suppressed at a hospital; pooled metrics "
            "count each at the midpoint of its released bounds"
        )
    if state.get("dp"):
        notes.append(
            "DP-FedAvg: one noisy clipped-gradient step per round (local_epochs and μ unused); "
            "evaluation bins are noisy counts"
        )
    return Final(result, notes)


def original_scale(
    w: list[float], columns: list[str], n_numeric: int, mean: list[float], sd: list[float]
) -> dict[str, float]:
    """Logistic coefficients on the features' own scale: β/sd, and the intercept b − Σ β·mean/sd."""
    b, beta = w[0], np.asarray(w[1:], dtype=float)
    out = beta.copy()
    out[:n_numeric] = beta[:n_numeric] / np.asarray(sd, dtype=float)
    intercept = b - float(
        np.sum(beta[:n_numeric] * np.asarray(mean, dtype=float) / np.asarray(sd, dtype=float))
    )
    return {"(Intercept)": float(intercept), **{c: float(v) for c, v in zip(columns, out, strict=True)}}


__all__ = ["final", "original_scale"]
