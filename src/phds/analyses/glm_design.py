"""Node side of ``stats.glm``: the complete-case frame, the shared design matrix and one IRLS step.

Rows with a missing value in any model variable (outcome, covariates, offset, weights) are dropped, as
R's ``na.omit`` and statsmodels' ``missing="drop"`` do. Categorical variables (``C(x)`` or text columns)
are encoded against the *network's* level set that the hub fixed in round 1, so every hospital builds
the same columns with formulaic. Frames and designs are cached per node data object for the rounds of
one study (at most :data:`CACHE_SIZE` entries), so a Newton round costs one pass over X.

An IRLS step releases the upper-triangular factor of the QR decomposition of ``√w [X | z]``, without
its last diagonal entry. ``RᵀR = XᵀWX`` and ``Rᵀ(Qᵀ√w z) = XᵀWz``, so this says exactly what the
information matrix and score do (DataSHIELD ``glmDS2`` releases those), while the hub can solve the
pooled least-squares problem with the conditioning of X rather than of XᵀWX (Golub & Van Loan,
*Matrix Computations*, §5.3: stacked QR for updating least squares).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from phds.analyses.glm_family import Family
from phds.analyses.glm_formula import Expression, ParsedFormula
from phds.analyses.tables import TableSpec, analysis_table, id_column, persons_of
from phds.errors import InputError
from phds.privacy.aggregates import Persons, PointEvidence
from phds.privacy.design_checks import check_linear_predictor

if TYPE_CHECKING:
    from phds.sources import NodeData

CACHE_SIZE = 16  # frames and designs; a 200,000 × 12 design is about 20 MB
_cache: OrderedDict[tuple[Any, ...], tuple[object, Any]] = OrderedDict()


def _cached(owner: object, key: tuple[Any, ...], build: Any) -> Any:
    """*build()* once per (*owner* object, *key*); holding *owner* keeps its id from being reused."""
    full = (id(owner), *key)
    hit = _cache.get(full)
    if hit is not None and hit[0] is owner:
        _cache.move_to_end(full)
        return hit[1]
    value = build()
    _cache[full] = (owner, value)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return value


def level_name(value: Any) -> str:
    """A level's wire name: integral numbers without ``.0`` (``1``, not ``1.0``), text as it is."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def sort_levels(levels: set[str]) -> list[str]:
    """Numeric levels in numeric order, otherwise in text order (as R and patsy sort them)."""
    try:
        return sorted(levels, key=float)
    except ValueError:
        return sorted(levels)


@dataclass(frozen=True)
class Frame:
    """The complete cases at this node and which of the formula's variables are categorical."""

    df: pd.DataFrame
    categorical: tuple[str, ...]
    y: np.ndarray
    offset: np.ndarray
    weights: np.ndarray
    persons: Persons


def load_frame(
    data: NodeData,
    spec: TableSpec,
    formula: ParsedFormula,
    offset: Expression | None,
    weights: Expression | None,
    family: Family,
) -> Frame:
    variables = list(dict.fromkeys([*formula.variables, *(offset.variables if offset else ()),
                                    *(weights.variables if weights else ())]))  # fmt: skip

    def build() -> Frame:
        table = analysis_table(data, spec, variables, field="analysis.params.formula")
        df = table.select(*variables, id_column(spec)).execute().dropna().reset_index(drop=True)
        persons = persons_of(data, spec, df)
        rhs_vars = set(formula.variables) - set(formula.outcome.variables)
        text = [v for v in formula.variables if v in rhs_vars and not pd.api.types.is_numeric_dtype(df[v])]
        categorical = tuple(dict.fromkeys([*formula.categorical, *text]))
        cols = {v: df[v].to_numpy(dtype=float) for v in variables if v not in categorical}
        y = formula.outcome.evaluate(cols)
        off = offset.evaluate(cols) if offset else np.zeros(len(df))
        w = weights.evaluate(cols) if weights else np.ones(len(df))
        for name, arr in (("formula", y), ("offset", off), ("weights", w)):
            if not np.all(np.isfinite(arr)):
                raise InputError(
                    f"the {name} gives non-finite values at this node", field=f"analysis.params.{name}"
                )
        if np.any(w <= 0):
            raise InputError("weights must be positive", field="analysis.params.weights")
        if family.name == "binomial" and not np.all((y == 0) | (y == 1)):
            raise InputError("a binomial outcome must be 0 or 1", field="analysis.params.formula")
        if family.name == "poisson" and np.any(y < 0):
            raise InputError("a Poisson outcome cannot be negative", field="analysis.params.formula")
        return Frame(df, categorical, y, off, w, persons)

    key = ("frame", spec.model_dump_json(), formula.rhs, formula.outcome.text,
           offset.text if offset else None, weights.text if weights else None)  # fmt: skip
    frame: Frame = _cached(data, key, build)
    return frame


def two_levels(values: np.ndarray) -> dict[str, int] | None:
    """Counts of the two values of a variable that takes exactly two (DataSHIELD's binary check)."""
    if values.size == 0:
        return None
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return None
    n_lo = int(np.count_nonzero(values == lo))
    n_hi = int(np.count_nonzero(values == hi))
    if n_lo + n_hi != values.size:
        return None
    return {level_name(lo): n_lo, level_name(hi): n_hi}


def local_levels(frame: Frame) -> dict[str, dict[str, int]]:
    """Each categorical variable's level names and counts at this node."""
    out: dict[str, dict[str, int]] = {}
    for var in frame.categorical:
        names = frame.df[var].map(level_name)
        out[var] = {str(k): int(v) for k, v in names.value_counts().items()}
    return out


@dataclass(frozen=True)
class Design:
    """The model matrix under the network's levels, with its columns and binary-column counts."""

    x: np.ndarray
    columns: list[str]
    binary_levels: dict[str, dict[str, int]]


def build_design(frame: Frame, formula: ParsedFormula, levels: Mapping[str, list[str]]) -> Design:
    from formulaic import model_matrix

    def build() -> Design:
        df = pd.DataFrame(index=frame.df.index)
        for var in formula.variables:
            if var in frame.categorical:
                names = frame.df[var].map(level_name)
                unknown = set(names) - set(levels[var])
                if unknown:
                    raise InputError(f"{var} has levels the network did not fix", field="analysis.params")
                df[formula.alias_of(var)] = pd.Categorical(names, categories=list(levels[var]))
            else:
                df[formula.alias_of(var)] = frame.df[var].to_numpy(dtype=float)
        mm = model_matrix(formula.rhs, df, na_action="raise")
        x = np.ascontiguousarray(mm.to_numpy(dtype=float))
        if not np.all(np.isfinite(x)):
            raise InputError("the formula's transformations give non-finite values at this node",
                             field="analysis.params.formula")  # fmt: skip
        columns = [formula.display(str(c)) for c in mm.columns]
        binary = {c: lv for j, c in enumerate(columns) if (lv := two_levels(x[:, j])) is not None}
        if (lv := two_levels(frame.y)) is not None:
            binary[f"outcome {formula.outcome.text}"] = lv
        return Design(x, columns, binary)

    key = ("design", json.dumps(levels, sort_keys=True), formula.rhs)
    design: Design = _cached(frame, key, build)
    return design


def irls_step(
    frame: Frame, design: Design, family: Family, beta: list[float] | None, mean_y: float
) -> tuple[dict[str, Any], PointEvidence | None]:
    """Deviance, Pearson χ², log-likelihood terms at β, and the QR factor of the next WLS problem; with
    a β from the hub, the linear predictors and working weights the gate checks for admissibility."""
    x, y, off, w = design.x, frame.y, frame.offset, frame.weights
    if beta is None:  # statsmodels: μ₀ from starting_mu, η₀ = g(μ₀) without the offset
        mu = family.starting_mu(y, mean_y)
        eta = family.link(mu)
    else:
        with np.errstate(all="ignore"):
            eta = x @ np.asarray(beta, dtype=float) + off
        if family.link_name != "identity":
            check_linear_predictor(eta)  # before anything is computed at a β the hub chose
        mu = family.inverse(eta)
    p = x.shape[1]
    ww = w * family.irls_weights(mu)
    z = eta + family.link_deriv(mu) * (y - mu) - off
    sw = np.sqrt(ww)
    a = np.empty((x.shape[0], p + 1))
    np.multiply(x, sw[:, None], out=a[:, :p])
    a[:, p] = sw * z
    r = cast(np.ndarray, np.linalg.qr(a, mode="r"))  # (p+1) × (p+1); numpy's stubs mistype mode "r"
    if r.shape[0] < p + 1:
        r = np.vstack([r, np.zeros((p + 1 - r.shape[0], p + 1))])
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    r = r * signs[:, None]
    values = {
        "deviance": float(np.sum(w * family.unit_deviance(y, mu))),
        "pearson": float(np.sum(w * (y - mu) ** 2 / family.variance(mu))),
        "loglik": family.loglik_sum(y, mu, w),
        "r": r[:p, :].tolist(),
    }
    if beta is None:
        return values, None
    return values, PointEvidence(None if family.link_name == "identity" else eta, ww)


def null_step(frame: Frame, family: Family, beta0: float | None, mu0: float | None) -> dict[str, float]:
    """The intercept-only model: its deviance at a fixed mean, or one IRLS step with the offset."""
    y, off, w = frame.y, frame.offset, frame.weights
    if beta0 is None:
        assert mu0 is not None
        mu = np.full_like(y, mu0)
        return {"deviance": float(np.sum(w * family.unit_deviance(y, mu)))}
    eta = beta0 + off
    mu = family.inverse(eta)
    ww = w * family.irls_weights(mu)
    z = eta + family.link_deriv(mu) * (y - mu) - off
    return {
        "deviance": float(np.sum(w * family.unit_deviance(y, mu))),
        "pearson": float(np.sum(w * (y - mu) ** 2 / family.variance(mu))),
        "sum_w": float(np.sum(ww)),
        "sum_wz": float(np.sum(ww * z)),
    }
