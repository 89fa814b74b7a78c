"""Node side of ``learning.fedavg`` / ``learning.fedprox``: the aggregates of each phase.

See :mod:`phds.analyses.learning` for the protocol. Each function returns what the gate is asked to
release; it never releases anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from phds.analyses.context import LocalContext, dp_clip
from phds.analyses.learning_eval import auprc, auroc, bin_labels, bin_levels, brier
from phds.analyses.learning_frame import LearningFrame, design_columns, inputs
from phds.analyses.learning_models import (
    Shapes,
    Training,
    clip_l2,
    forward,
    local_train,
    log_loss,
    predict_proba,
    row_gradients,
    shapes,
    sigmoid,
)
from phds.analyses.learning_params import LearningParams
from phds.privacy.aggregates import (
    Aggregate,
    BreakdownAggregate,
    DesignEvidence,
    ModelAggregate,
    PointEvidence,
    SumAggregate,
    UpdateAggregate,
)
from phds.protocol.canonical import canonical_hash


def model_shape(params: LearningParams) -> Shapes:
    d = len(design_columns(params.features.numeric, params.features.categorical))
    return shapes(params.model.kind, d, params.model.hidden)


def standardisation(params: LearningParams, state: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    numeric, pre = params.features.numeric, params.preprocessing
    if pre.standardise == "declared":
        return [pre.means[v] for v in numeric], [pre.sds[v] for v in numeric]
    if pre.standardise == "network" and numeric:
        return list(state["mean"]), list(state["sd"])
    return [0.0] * len(numeric), [1.0] * len(numeric)


def row_norms(shape: Shapes, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's gradient norm at *w* (in chunks, so an MLP never holds n × P at once)."""
    if len(shape.sizes) == 2:  # logistic: (p − y)·[1, x]
        eta, _ = forward(shape, w, x)
        return np.asarray(np.abs(sigmoid(eta) - y) * np.sqrt(1.0 + np.einsum("ij,ij->i", x, x)))
    out = [
        np.asarray(np.linalg.norm(row_gradients(shape, w, x[i : i + 8192], y[i : i + 8192]), axis=1))
        for i in range(0, x.shape[0], 8192)
    ]
    return np.concatenate(out) if out else np.zeros(0)


def moments(ctx: LocalContext, params: LearningParams, frame: LearningFrame) -> list[Aggregate]:
    contributions: dict[str, np.ndarray] = {}
    clip: dict[str, tuple[float, float]] = {}
    for j, var in enumerate(params.features.numeric):
        col = frame.train.numeric[:, j]
        bounds = dp_clip(ctx, var)
        if bounds is not None:
            lo, hi = bounds
            col = np.clip(col, lo, hi)
            clip[f"x:{var}"], clip[f"x2:{var}"] = (lo, hi), (0.0, max(lo * lo, hi * hi))
        contributions[f"x:{var}"], contributions[f"x2:{var}"] = col, col**2
    return [SumAggregate("moments", frame.train.persons, contributions, clip=clip or None)]


def train(ctx: LocalContext, params: LearningParams, frame: LearningFrame, w: np.ndarray) -> list[Aggregate]:
    shape = model_shape(params)
    inp = inputs(frame.train, *standardisation(params, ctx.state))
    x, y = inp.x, frame.train.y
    eta, _ = forward(shape, w, x)
    p = sigmoid(eta)
    cols = ["Intercept", *design_columns(params.features.numeric, params.features.categorical)]
    design = DesignEvidence(inp.with_intercept, cols, y)
    point = PointEvidence(eta, p * (1 - p))
    norms = row_norms(shape, w, x, y)
    persons, size, clip = frame.train.persons, shape.n_params, params.clip_norm
    if ctx.dp is not None:  # DP-FedAvg: the gate clips, sums and noises the per-row gradients
        grads = row_gradients(shape, w, x, y)
        return [UpdateAggregate("update", persons, size, clip, None, design, point, norms, None, grads)]
    how = Training(params.local_epochs, params.learning_rate, params.batch_size, params.mu, params.model.l2)
    if params.model.kind == "torch_mlp":
        from phds.analyses.learning_torch import local_train_torch

        local = local_train_torch(shape, w, x, y, how, [params.seed, ctx.round_no])
    else:
        local = local_train(shape, w, x, y, how, [params.seed, ctx.round_no])
    delta, _ = clip_l2(local - w, clip)
    values = {"loss": log_loss(shape, w, x, y)}
    return [UpdateAggregate("update", persons, size, clip, delta, design, point, norms, values)]


def evaluate(
    ctx: LocalContext,
    params: LearningParams,
    frame: LearningFrame,
    w: np.ndarray,
) -> list[Aggregate]:
    shape = model_shape(params)
    held = frame.held_out
    p = predict_proba(shape, w, inputs(held, *standardisation(params, ctx.state)).x)
    y = held.y
    cuts = params.eval_bins
    out: list[Aggregate] = []
    if cuts:  # eval_bins: [] asks for no risk-bin counts (module docstring of learning_eval)
        out.append(BreakdownAggregate("calibration", held.persons, bin_labels(y, p, cuts), bin_levels(cuts)))
    if ctx.dp is None:
        digest = canonical_hash({"weights": list(ctx.state["weights"])})
        out.append(ModelAggregate("accept", frame.train.persons, shape.n_params, {"model_sha256": digest}))
        cases = int(y.sum())
        if cases >= ctx.k and y.size - cases >= ctx.k:
            metrics = {"auroc": auroc(y, p), "auprc": auprc(y, p), "brier": brier(y, p)}
            design = DesignEvidence(np.ones((y.size, 1)), ["Intercept"], y)
            out.append(ModelAggregate("metrics", held.persons, 1, metrics, design=design))
    return out


__all__ = ["evaluate", "model_shape", "moments", "row_norms", "standardisation", "train"]
