"""``survival.cox`` under secure aggregation: the Newton rounds as network sums.

Clear rounds (:meth:`layout` gives None): round 1 fixes the categorical levels (a union of released
level names, not a sum) and releases each hospital's event and dropped counts, which the result lists;
unstratified, round 2 agrees the time bins (an intersection of each hospital's admissible cuts, not a
sum) and keeps each hospital's events per bin in the state. Every later round is a sum:

* stratified by hospital: the pooled stratified log partial likelihood, gradient and Hessian are the
  sums of the hospitals' (ℓ = Σ_h ℓ_h; Kalbfleisch & Prentice 2002, §4.5), so the blocks are ℓ, g and
  the upper triangle of H;
* unstratified: the per-bin risk-set sums S0, S1, S2 and tied-event sums D0, D1, D2 (Efron) and Σx over
  events add over hospitals (:mod:`phds.analyses.cox_math`), so the blocks are those (S2 and D2 as upper
  triangles); the bins' event counts are the sum of the per-hospital counts already in the state.

Each round also sums ``n_obs``, the network's number of rows (the result's ``n``). Fixed point: scale 2²⁰
and clip 2³⁷ (32 · 2⁵⁷ = 2⁶²), each summed entry within m · 2⁻²¹ of the exact sum; :func:`errors` turns
that into bounds on ℓ and g for the Newton stop (:mod:`phds.analyses.cox_newton`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from phds.analyses.base import SecureLayout
from phds.analyses.cox_math import FloatArray, Ties, TimeSums, partial_likelihood
from phds.errors import InputError

SCALE = 2**20
CLIP = float(2**37)


def layout(stratified: bool, ties: Ties, round_no: int, state: Mapping[str, Any]) -> SecureLayout | None:
    """The round's blocks; None for the design round and, unstratified, the bins round."""
    if round_no == 1 or (not stratified and round_no == 2):
        return None
    p = len(state["columns"])
    tri = p * (p + 1) // 2
    blocks: list[tuple[str, int]] = [("n_obs", 1)]
    if stratified:
        blocks += [("loglik", 1), ("gradient", p), ("hessian", tri)]
    else:
        k = len(state["cuts"]) + 1
        blocks += [("s0", k), ("s1", k * p), ("s2", k * tri), ("event_x", p)]
        if ties == "efron":
            blocks += [("d0", k), ("d1", k * p), ("d2", k * tri)]
    return SecureLayout(tuple(blocks), scale=SCALE, clip=CLIP)


def summands(found: SecureLayout, p: int, agg: Mapping[str, Any]) -> dict[str, Any]:
    """A node's blocks from its released ``cox_step`` or ``risk_sets`` aggregate."""
    values = agg["values"]
    upper = np.triu_indices(p)
    out: dict[str, Any] = {"n_obs": [int(agg["n_obs"]["value"])]}
    for name, _ in found.blocks:
        if name == "n_obs":
            continue
        if name not in values:
            raise InputError(f"the release has no {name}", field="secure_aggregation")
        value = np.asarray(values[name], dtype=float)
        if name == "hessian":
            value = value.reshape(p, p)[upper]
        elif name in ("s2", "d2"):
            value = value.reshape(-1, p, p)[:, upper[0], upper[1]]
        out[name] = value.ravel()
    return out


def _full(block: Any, p: int) -> FloatArray:
    """Symmetric p × p matrices (one per row of *block*) from their upper triangles."""
    tri = np.asarray(block, dtype=float).reshape(-1, p * (p + 1) // 2)
    out = np.zeros((tri.shape[0], p, p))
    i, j = np.triu_indices(p)
    out[:, i, j] = tri
    out[:, j, i] = tri
    return out


def required(found: SecureLayout | None) -> SecureLayout:
    if found is None:
        raise InputError("this round is released in the clear", field="secure_aggregation")
    return found


def evaluate(
    found: SecureLayout,
    sums: Mapping[str, Any],
    state: Mapping[str, Any],
    ties: Ties,
    stratified_by_hospital: bool,
    contributors: int,
) -> tuple[float, FloatArray, FloatArray, float, FloatArray]:
    """ℓ, g and H of the network at the state's β from the summed blocks, and :func:`errors`' bounds."""
    missing = [name for name, _ in found.blocks if name not in sums]
    if missing:
        raise InputError(f"the secure sum has no block {missing[0]!r}", field="secure_aggregation")
    p = len(state["columns"])
    beta = np.asarray(state["beta"], dtype=np.float64)
    pooled = None
    if stratified_by_hospital:
        ll, grad, hess = stratified(sums, p)
    else:
        pooled = pooled_sums(sums, state, ties, p)
        ll, grad, hess = partial_likelihood(pooled, beta, ties)
    ll_error, grad_error = errors(found, contributors, pooled, beta, ties)
    return ll, grad, hess, ll_error, grad_error


def stratified(sums: Mapping[str, Any], p: int) -> tuple[float, FloatArray, FloatArray]:
    """ℓ, g and H of the network from the summed blocks."""
    ll = float(np.asarray(sums["loglik"], dtype=float).ravel()[0])
    return ll, np.asarray(sums["gradient"], dtype=float).ravel(), _full(sums["hessian"], p)[0]


def pooled_sums(sums: Mapping[str, Any], state: Mapping[str, Any], ties: Ties, p: int) -> TimeSums:
    """The network's time sums on the agreed bins (events per bin from the state)."""
    k = len(state["cuts"]) + 1
    d = np.sum([np.asarray(v, dtype=np.int64) for v in state["bin_events"].values()], axis=0)

    def block(name: str, shape: tuple[int, ...]) -> FloatArray:
        return np.asarray(sums[name], dtype=float).reshape(shape)

    efron = ties == "efron"  # Breslow uses S0, S1, S2 alone
    return TimeSums(
        np.arange(k, dtype=np.int64), np.asarray(d, dtype=np.int64).reshape(k),
        block("s0", (k,)), block("s1", (k, p)), _full(sums["s2"], p),
        block("d0", (k,)) if efron else np.zeros(k),
        block("d1", (k, p)) if efron else np.zeros((k, p)),
        _full(sums["d2"], p) if efron else np.zeros((k, p, p)),
        block("event_x", (p,)),
    )  # fmt: skip


def errors(
    found: SecureLayout, contributors: int, pooled: TimeSums | None, beta: FloatArray, ties: Ties
) -> tuple[float, FloatArray]:
    """Bounds on the errors of ℓ and of each entry of g from the fixed point (first order).

    Every summed entry is within r = m/(2·scale) of the exact sum. Stratified, ℓ and g are sums: r each.
    Unstratified, g = Σx_events − Σ_{t,l} T_tl with T = (S1 − f D1)/φ, φ = S0 − f D0 (f = l/d_t, Efron;
    f = 0, Breslow): |δT_j| ≤ r (1 + f)(1 + |T_j|)/φ, and |δ log φ| ≤ r (1 + f)/φ.
    """
    r = contributors * 0.5 / found.scale
    p = beta.shape[0]
    if pooled is None:
        return r, np.full(p, r)
    m = pooled.d > 0
    d = pooled.d[m]
    idx = np.repeat(np.arange(len(d)), d)
    starts = np.repeat(np.cumsum(d) - d, d)
    f = (np.arange(len(idx)) - starts) / d[idx] if ties == "efron" else np.zeros(len(idx))
    phi = pooled.s0[m][idx] - f * pooled.d0[m][idx]
    t = pooled.s1[m][idx] - f[:, None] * pooled.d1[m][idx]
    t = t / phi[:, None]
    weight = (1 + f) / phi
    grad = r * (1 + np.sum(weight[:, None] * (1 + np.abs(t)), axis=0))
    ll = r * (float(np.sum(np.abs(beta))) + float(np.sum(weight)))
    return ll, grad


__all__ = [
    "CLIP",
    "SCALE",
    "errors",
    "evaluate",
    "layout",
    "pooled_sums",
    "required",
    "stratified",
    "summands",
]
