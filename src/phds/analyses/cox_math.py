"""Cox partial-likelihood arithmetic shared by the node and the hub (numpy only, no I/O).

A node turns its rows into *time sums*: for each distinct time key τ (an exact duration, or a time bin),
the number of events d, the risk-set sums S0 = Σ_{T≥τ} w, S1 = Σ w·x, S2 = Σ w·x·xᵀ with w = exp(xᵀβ),
and the tied-event sums D0, D1, D2 over the events at τ (Efron needs them). Sums over hospitals are
sums of these, so the hub evaluates the pooled log partial likelihood, gradient and Hessian exactly.

Efron (1977) with ``d`` tied events uses φ_l = S0 − (l/d)·D0, l = 0..d−1 (likewise for S1, S2); Breslow
uses S0 alone (Kalbfleisch & Prentice 2002, §4.2.3). The Efron sums are expanded into the per-time
scalars Σ 1/φ, Σ f/φ, Σ 1/φ², Σ f/φ², Σ f²/φ² so no array grows with d·p².
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Ties = Literal["efron", "breslow"]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TimeSums:
    """Per-time-key sums (keys ascending): d (K), S0/D0 (K), S1/D1 (K×p), S2/D2 (K×p×p), Σx of events."""

    keys: NDArray[np.int64]
    d: NDArray[np.int64]
    s0: FloatArray
    s1: FloatArray
    s2: FloatArray
    d0: FloatArray
    d1: FloatArray
    d2: FloatArray
    event_x: FloatArray


def time_sums(
    key: NDArray[np.int64],
    event: NDArray[np.bool_],
    x: FloatArray,
    beta: FloatArray,
    n_keys: int | None = None,
) -> TimeSums:
    """Sums per time key. With *n_keys* the keys are 0..n_keys−1 (bins, empty ones included)."""
    n, p = x.shape
    w = np.exp(x @ beta)
    if n_keys is None:
        keys, inverse = np.unique(key, return_inverse=True)
    else:
        keys, inverse = np.arange(n_keys, dtype=np.int64), key
    k = len(keys)
    ew = w * event

    def per_key(weights: FloatArray) -> FloatArray:
        return np.bincount(inverse, weights=weights, minlength=k).astype(np.float64)

    a0, e0 = per_key(w), per_key(ew)
    a1 = np.column_stack([per_key(w * x[:, j]) for j in range(p)]) if p else np.zeros((k, 0))
    e1 = np.column_stack([per_key(ew * x[:, j]) for j in range(p)]) if p else np.zeros((k, 0))
    a2 = np.zeros((k, p, p))
    e2 = np.zeros((k, p, p))
    for i in range(p):
        for j in range(i, p):
            xx = x[:, i] * x[:, j]
            a2[:, i, j] = a2[:, j, i] = per_key(w * xx)
            e2[:, i, j] = e2[:, j, i] = per_key(ew * xx)

    def at_risk(a: FloatArray) -> FloatArray:  # Σ over keys ≥ this one
        return np.cumsum(a[::-1], axis=0)[::-1]

    d = np.bincount(inverse, weights=event.astype(np.float64), minlength=k).astype(np.int64)
    event_x = x[event].sum(axis=0) if n else np.zeros(p)
    return TimeSums(keys.astype(np.int64), d, at_risk(a0), at_risk(a1), at_risk(a2), e0, e1, e2, event_x)


def add_sums(parts: list[TimeSums]) -> TimeSums:
    """Sum the time sums of several hospitals over the same keys."""

    def total(field: str) -> FloatArray:
        return np.asarray(np.sum([getattr(t, field) for t in parts], axis=0), dtype=np.float64)

    d = np.asarray(np.sum([t.d for t in parts], axis=0), dtype=np.int64)
    return TimeSums(
        parts[0].keys,
        d,
        total("s0"),
        total("s1"),
        total("s2"),
        total("d0"),
        total("d1"),
        total("d2"),
        total("event_x"),
    )


def partial_likelihood(s: TimeSums, beta: FloatArray, ties: Ties) -> tuple[float, FloatArray, FloatArray]:
    """Log partial likelihood, gradient and Hessian at *beta* from pooled time sums."""
    m = s.d > 0
    d, s0, s1, s2 = s.d[m], s.s0[m], s.s1[m], s.s2[m]
    ll = float(s.event_x @ beta)
    if ties == "breslow":
        ll -= float(np.sum(d * np.log(s0)))
        mean = s1 / s0[:, None]
        grad = s.event_x - np.sum(d[:, None] * mean, axis=0)
        second = s2 / s0[:, None, None] - mean[:, :, None] * mean[:, None, :]
        return ll, grad, -np.einsum("k,kij->ij", d.astype(np.float64), second)
    d0, d1, d2 = s.d0[m], s.d1[m], s.d2[m]
    idx = np.repeat(np.arange(len(d)), d)
    starts = np.repeat(np.cumsum(d) - d, d)
    f = (np.arange(len(idx)) - starts) / d[idx]
    phi = s0[idx] - f * d0[idx]
    k = len(d)

    def per_time(v: FloatArray) -> FloatArray:
        return np.bincount(idx, weights=v, minlength=k).astype(np.float64)

    a, b = per_time(1 / phi), per_time(f / phi)
    c, e, g = per_time(phi**-2), per_time(f / phi**2), per_time(f * f / phi**2)
    ll -= float(np.sum(np.log(phi)))
    grad = s.event_x - np.sum(s1 * a[:, None] - d1 * b[:, None], axis=0)
    outer_s = np.einsum("k,ki,kj->ij", c, s1, s1)
    cross = np.einsum("k,ki,kj->ij", e, s1, d1)
    outer_d = np.einsum("k,ki,kj->ij", g, d1, d1)
    first = np.einsum("k,kij->ij", a, s2) - np.einsum("k,kij->ij", b, d2)
    hess = -(first - (outer_s - cross - cross.T + outer_d))
    return ll, grad, hess


__all__ = ["Ties", "TimeSums", "add_sums", "partial_likelihood", "time_sums"]
