"""``stats.glm`` under secure aggregation: the IRLS rounds as network sums (the design round stays clear).

The design round is released in the clear: it fixes the network's level names (a union, not a sum) and
its row counts are gate-checked against nfilter; the hub needs them before any sum has a layout. Each
IRLS round a node's released ``[R | Qᵀz]`` (p × (p+1), upper triangular) becomes its Gram blocks

    G = XᵀWX = RᵀR   and   s = XᵀWz − G β₀ = Rᵀ(Qᵀz − R β₀)   (√W X = QR, so XᵀWX = RᵀQᵀQR = RᵀR)

(the upper triangle of G, and s at the β₀ the round was evaluated at, 0 in the first round), plus the
scalar deviance, Pearson χ², log-likelihood and the null model's parts. They add over hospitals. The
hub rebuilds an equivalent pooled ``[R | Qᵀz]`` by the Cholesky factor of ΣG (R upper triangular with a
positive diagonal: the R of the stacked QR up to row signs) and Qᵀz = R⁻ᵀ (ΣG β₀ + Σs), then runs the
same solve, convergence rule and summary as in the clear: β = (ΣG)⁻¹ ΣXᵀWz = β₀ + (ΣG)⁻¹ Σs (Golub &
Van Loan, *Matrix Computations*, §4.2 and §5.3). Sending s rather than XᵀWz keeps the fixed-point error
of G out of β as IRLS converges: an error δG moves β by (ΣG)⁻¹ δG (ΣG)⁻¹ Σs, and Σs → 0.

Fixed point: :data:`SCALE` = 2²⁰ and :data:`CLIP` = 2³⁷ (32 parties · 2³⁷ · 2²⁰ = 2⁶², the ring's
headroom). Each hospital's entry is rounded to 2⁻²⁰, so every summed entry is within m · 2⁻²¹ of the
exact sum (m contributors); a node whose sum exceeds 2³⁷ ≈ 1.4·10¹¹ (for example XᵀWX of a covariate in
the thousands over 10⁵ rows) refuses rather than wrap. Convergence: statsmodels' rule compares two
deviances, each now known to within m · 2⁻²¹, so the hub accepts a change up to ``tol`` plus twice that
(over the scale in force); otherwise the quantised iteration can cycle between two deviances one 2⁻²⁰
apart (measured: the null model with an offset). IRLS converges quadratically for these canonical
links, so stopping at that change costs β a second-order error only. The columns (and so the
layout's size) follow from the formula and the network's levels in the round state, as every node
builds them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg

from phds.analyses.base import SecureLayout
from phds.analyses.glm_formula import parse_formula
from phds.errors import InputError

SCALE = 2**20
CLIP = float(2**37)
GRAM_RANK_TOL = 1e-10
"""A column is aliased when its pooled weighted variance left after the previous columns is at most
this fraction of its own (a variance inflation factor of 10¹⁰), or within the fixed-point error."""


def design_columns(formula: str, levels: Mapping[str, Sequence[str]]) -> list[str]:
    """The model's column names, as :func:`~phds.analyses.glm_design.build_design` makes them at every
    node: formulaic on a synthetic frame holding every network level (the names depend on no data)."""
    return list(_columns(formula, json.dumps({k: list(v) for k, v in levels.items()}, sort_keys=True)))


@lru_cache(maxsize=64)
def _columns(formula: str, levels_json: str) -> tuple[str, ...]:
    from formulaic import model_matrix

    parsed = parse_formula(formula)
    levels: dict[str, list[str]] = json.loads(levels_json)
    rows = max([2, *(len(v) for v in levels.values())])
    frame = pd.DataFrame(index=range(rows))
    for var in parsed.variables:
        if var in levels:
            names = list(levels[var])
            if not names:
                raise InputError(f"{var} has no levels in the network", field="analysis.params.formula")
            cells = [names[i % len(names)] for i in range(rows)]
            frame[parsed.alias_of(var)] = pd.Categorical(cells, categories=names)
        else:
            frame[parsed.alias_of(var)] = np.linspace(1.0, 2.0, rows)
    with np.errstate(all="ignore"):
        mm = model_matrix(parsed.rhs, frame, na_action="ignore")
    return tuple(parsed.display(str(c)) for c in mm.columns)


def layout(formula: str, state: Mapping[str, Any]) -> SecureLayout | None:
    """The IRLS round's blocks (None for the design round, released in the clear)."""
    if state.get("phase", "design") == "design":
        return None
    p = len(design_columns(formula, state["levels"]))
    blocks: list[tuple[str, int]] = [("n_obs", 1)]
    if not state["main_done"]:
        blocks += [("main.xtwx", p * (p + 1) // 2), ("main.score", p), ("main.deviance", 1),
                   ("main.pearson", 1), ("main.loglik", 1)]  # fmt: skip
    if not state["null_done"]:
        blocks.append(("null.deviance", 1))
        if state["null_beta"] is not None:  # with an offset the null model is fitted alongside
            blocks += [("null.pearson", 1), ("null.sum_w", 1), ("null.sum_wz", 1)]
    return SecureLayout(tuple(blocks), scale=SCALE, clip=CLIP)


def required(formula: str, state: Mapping[str, Any]) -> SecureLayout:
    """The round's layout; the design round has none (it is released in the clear)."""
    found = layout(formula, state)
    if found is None:
        raise InputError("the design round is released in the clear", field="secure_aggregation")
    return found


def reference_beta(state: Mapping[str, Any], p: int) -> np.ndarray:
    """β₀: the coefficients the round is evaluated at (0 in the first IRLS round)."""
    beta = state.get("beta")
    return np.zeros(p) if beta is None else np.asarray(beta, dtype=float)


def summands(formula: str, state: Mapping[str, Any], n: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """A node's blocks from its released IRLS values (``columns``, ``main``, ``null``) and n."""
    found = required(formula, state)
    columns = design_columns(formula, state["levels"])
    if list(values["columns"]) != columns:
        raise InputError(
            "this hospital's design columns differ from those the network's levels give",
            field="secure_aggregation",
        )
    out: dict[str, Any] = {"n_obs": [n]}
    names = {name for name, _ in found.blocks}
    if "main.xtwx" in names:
        main = values["main"]
        b = np.asarray(main["r"], dtype=float)
        p = len(columns)
        if b.shape != (p, p + 1):
            raise InputError("the released [R | Qᵀz] block has the wrong shape", field="secure_aggregation")
        gram = b.T @ b  # [XᵀWX, XᵀWz; ·, ·] = BᵀB
        out["main.xtwx"] = gram[:p, :p][np.triu_indices(p)]
        out["main.score"] = gram[:p, p] - gram[:p, :p] @ reference_beta(state, p)
        out.update({f"main.{k}": [float(main[k])] for k in ("deviance", "pearson", "loglik")})
    for name in names:
        if name.startswith("null."):
            out[name] = [float(values["null"][name.removeprefix("null.")])]
    return out


def network_values(
    formula: str, state: Mapping[str, Any], sums: Mapping[str, Any], contributors: int
) -> tuple[dict[str, Any], float]:
    """The summed blocks as one pseudo-hospital's IRLS values (the pooled ``[R | Qᵀz]`` in ``main.r``),
    and the error bound of each summed entry: m/(2·scale) for m contributors."""
    found = required(formula, state)
    missing = [name for name, _ in found.blocks if name not in sums]
    if missing:
        raise InputError(f"the secure sum has no block {missing[0]!r}", field="secure_aggregation")
    scalar = {name: float(np.asarray(sums[name], dtype=float).ravel()[0]) for name, size in found.blocks
              if size == 1}  # fmt: skip
    if round(scalar["n_obs"]) != int(state["n"]):
        raise InputError("the summed rows differ from the design round's", field="secure_aggregation")
    error = contributors * 0.5 / found.scale
    columns = design_columns(formula, state["levels"])
    out: dict[str, Any] = {"columns": columns}
    if "main.xtwx" in sums:
        p = len(columns)
        xtwx = np.zeros((p, p))
        xtwx[np.triu_indices(p)] = np.asarray(sums["main.xtwx"], dtype=float)
        xtwx = np.triu(xtwx) + np.triu(xtwx, 1).T
        r = gram_factor(xtwx, columns, error)
        xtwz = xtwx @ reference_beta(state, p) + np.asarray(sums["main.score"], dtype=float)
        qz = linalg.solve_triangular(r, xtwz, trans="T")
        out["main"] = {
            "r": np.column_stack([r, qz]).tolist(),
            **{k: scalar[f"main.{k}"] for k in ("deviance", "pearson", "loglik")},
        }
    null = {name.removeprefix("null."): v for name, v in scalar.items() if name.startswith("null.")}
    if null:
        out["null"] = null
    return out, error


def gram_factor(gram: np.ndarray, columns: Sequence[str], error: float) -> np.ndarray:
    """The upper Cholesky factor R of a Gram matrix (RᵀR = G, diagonal > 0), refusing aliased columns.

    Column j's pivot s_j = G_jj − ‖R_{<j,j}‖² is its weighted variance left after the columns before it.
    It is aliased when s_j ≤ :data:`GRAM_RANK_TOL` · G_jj, or when s_j is within what an entry error e
    of G can make of it: |δs_j| ≤ e (1 + ‖a‖₁)², a the regression of column j on the earlier ones.
    """
    p = len(columns)
    r = np.zeros((p, p))
    aliased: list[str] = []
    kept: list[int] = []
    for j in range(p):
        s = float(gram[j, j] - r[:j, j] @ r[:j, j])
        a = linalg.solve_triangular(r[np.ix_(kept, kept)], r[kept, j]) if kept else np.zeros(0)
        noise = error * (1.0 + float(np.sum(np.abs(a)))) ** 2
        if not s > max(GRAM_RANK_TOL * float(gram[j, j]), 4.0 * noise):
            aliased.append(columns[j])
            continue
        r[j, j] = np.sqrt(s)
        r[j, j + 1 :] = (gram[j, j + 1 :] - r[:j, j] @ r[:j, j + 1 :]) / r[j, j]
        kept.append(j)
    if aliased:
        raise InputError(
            "the design is rank-deficient across the network (aliased: "
            f"{', '.join(aliased)}); drop or merge these terms",
            field="analysis.params.formula",
        )
    return r


__all__ = [
    "CLIP",
    "SCALE",
    "design_columns",
    "gram_factor",
    "layout",
    "network_values",
    "reference_beta",
    "required",
    "summands",
]
