"""Differentially private marginals for synthetic data (MST), and the post-processing that samples rows.

At the node, :func:`measure_mst` runs OpenDP's MST (``opendp.extras.mbi.MST``, OpenDP 0.16 with
``opendp[mbi]``; McKenna, Miklau & Sheldon 2021, "Winning the NIST Contest: A scalable and general
approach to differentially private synthetic data", JPC 11(3)) on the declared, discretised columns:
noisy one-way marginals of every column, a DP selection (report-noisy-max, one edge at a time) of a
spanning tree of the column pairs worst explained by the one-way model, and noisy two-way marginals on
the tree's edges. OpenDP's defaults split the loss: 10% on selection, 90% on measurement (``measure_split``
0.9). The privacy unit is one row (one person: ``contributions=1``), the loss ρ-zCDP. Only the noisy
marginals (and their noise scales) leave; the model OpenDP fits at the node is not released.

At the hub or in the SDK, :func:`fit_and_sample` fits a Markov random field to the released marginals
with Private-PGM's mirror descent (``mbi.estimation.mirror_descent``; McKenna, Sheldon & Miklau 2019,
ICML) and samples rows from it: post-processing of DP releases, at no further privacy cost (Dwork &
Roth 2014, Prop. 2.1).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from phds.errors import InputError

NA_LABEL = "NA"
"""The label of OpenDP's extra key for a value outside the declared categories (or missing)."""


@dataclass(frozen=True)
class ColumnBins:
    """How one column is discretised: declared ``categories`` or ``cuts`` (left-open bin edges)."""

    name: str
    categories: tuple[str, ...] | None = None
    cuts: tuple[float, ...] | None = None
    bounds: tuple[float, float] | None = None  # where values of the open end bins are drawn from


@dataclass(frozen=True)
class MstMeasurement:
    """What MST released: the domain's labels per column and the noisy marginals."""

    columns: list[dict[str, Any]]
    marginals: list[dict[str, Any]]
    max_stddev: float


def _frame(frame: pd.DataFrame, bins: Sequence[ColumnBins]) -> Any:
    import polars as pl

    data: dict[str, Any] = {}
    for b in bins:
        values = frame[b.name]
        if b.categories is not None:
            text = values.map(lambda v: None if pd.isna(v) else _text(v))
            data[b.name] = pl.Series(b.name, text.tolist(), dtype=pl.Utf8)
        else:
            numbers = pd.to_numeric(values, errors="coerce").astype(float)
            data[b.name] = pl.Series(b.name, numbers.tolist(), dtype=pl.Float64, nan_to_null=True)
    return pl.DataFrame(data)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _patch_mst_selection() -> None:
    """Work round OpenDP 0.16's MST refusing its own selection for more than a few columns.

    ``opendp.extras.mbi._mst._make_mst_select`` gives each of the d − 1 edge selections
    ``prior(d_out / (d − 1))`` and composes them; the composed loss, summed with upward rounding, ends a
    few ulps above ``d_out`` and the outer compositor refuses ("insufficient budget for query": measured
    here for every ρ tried with 10 columns, never with 3). Selecting with ``d_out · (1 − 1e-9)`` keeps
    the sum within the budget; it spends less than the ledger recorded, never more. Pinned to
    ``opendp>=0.16,<0.17``; a later OpenDP that fixes it makes this a no-op in effect.
    """
    from opendp.extras.mbi import _mst

    module: Any = _mst
    original: Any = module._make_mst_select
    if getattr(original, "__phds_margin__", False):
        return

    def select(*args: Any, d_out: float, **kwargs: Any) -> Any:
        return original(*args, d_out=d_out * (1.0 - 1e-9), **kwargs)

    select.__phds_margin__ = True  # type: ignore[attr-defined]
    module._make_mst_select = select


def _release(context: Any, bins: Sequence[ColumnBins], keys: Any, cuts: Any, rho: float) -> Any:
    from opendp.extras.mbi import MST

    _patch_mst_selection()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # OpenDP warns that ρ > 0.25 is large; the ledger decides
        return (
            context.query(rho=rho)
            .select(*[b.name for b in bins])
            .contingency_table(keys=keys, cuts=cuts, algorithm=MST())
            .release()
        )


def measure_mst(frame: pd.DataFrame, bins: Sequence[ColumnBins], rho: float) -> MstMeasurement:
    """OpenDP's MST on *frame*'s columns under ρ-zCDP (one row per person); see the module docstring."""
    import opendp.prelude as dp

    if len(bins) < 2:
        raise InputError("MST needs at least two columns", field="analysis.params.columns")
    dp.enable_features("contrib")
    data = _frame(frame, bins)
    context = dp.Context.compositor(
        data=data.lazy(), privacy_unit=dp.unit_of(contributions=1), privacy_loss=dp.loss_of(rho=rho)
    )
    keys = {b.name: list(b.categories) for b in bins if b.categories is not None}
    cuts = {b.name: [float(c) for c in b.cuts] for b in bins if b.cuts is not None}
    table = _release(context, bins, keys, cuts, rho)
    from mbi import Factor

    columns = []
    for b in bins:
        labels = [NA_LABEL if v is None else str(v) for v in table.keys[b.name].to_list()]
        columns.append({"name": b.name, "labels": labels, "cuts": list(cuts.get(b.name, [])) or None})
    marginals: list[dict[str, Any]] = []
    stddevs: list[float] = []
    for m in table.marginals.flatten():
        if m.query is not Factor.datavector:  # a prefix or other linear query: not what MST measures
            raise InputError("MST released a measurement that is not a marginal", field="analysis")
        values = np.asarray(m.noisy_measurement, dtype=float).ravel()
        stddevs.append(float(m.stddev))
        marginals.append({"clique": list(m.clique), "values": values.tolist(), "stddev": stddevs[-1]})
    return MstMeasurement(columns, marginals, max(stddevs))


def fit_and_sample(
    columns: Sequence[Mapping[str, Any]],
    marginals: Sequence[Mapping[str, Any]],
    rows: int,
    seed: int,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    iters: int = 1000,
) -> pd.DataFrame:
    """Rows sampled from the Markov random field fitted to released noisy *marginals*."""
    import jax.numpy as jnp
    from mbi import Domain, LinearMeasurement, estimation

    domain = Domain([c["name"] for c in columns], [len(c["labels"]) for c in columns])
    measurements = []
    for m in marginals:
        shape = tuple(domain.size(a) for a in m["clique"])
        values = np.asarray(m["values"], dtype=float)
        if values.size != math.prod(shape) or not np.all(np.isfinite(values)):
            raise InputError("a released marginal does not fit its columns' domain", field="payload")
        measurements.append(LinearMeasurement(jnp.asarray(values), tuple(m["clique"]), float(m["stddev"])))
    model = estimation.mirror_descent(domain, measurements, iters=iters)
    state = np.random.get_state()
    np.random.seed(seed)  # mbi samples with numpy's global generator
    try:
        indices = model.synthetic_data(rows, method="sample").df
    finally:
        np.random.set_state(state)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for c in columns:
        idx = np.asarray(indices[c["name"]].to_numpy(), dtype=int)
        labels = np.asarray(c["labels"], dtype=object)
        if not c.get("cuts"):
            out[c["name"]] = np.where(labels[idx] == NA_LABEL, None, labels[idx])
            continue
        cuts = np.asarray(c["cuts"], dtype=float)
        lo, hi = (bounds or {}).get(c["name"], (cuts[0], cuts[-1]))
        edges = np.asarray([min(lo, cuts[0]), *cuts, max(hi, cuts[-1])])
        which = np.clip(idx, 0, cuts.size)  # the last key is the null (missing) bin
        value = rng.uniform(edges[which], edges[which + 1])
        out[c["name"]] = np.where(idx > cuts.size, np.nan, value)
    return pd.DataFrame(out)


def discretise(frame: pd.DataFrame, columns: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Each row as its domain indices (the bins MST saw), for matching real and synthetic rows."""
    out = np.zeros((len(frame), len(columns)), dtype=np.int64)
    for j, c in enumerate(columns):
        labels = list(c["labels"])
        values = frame[c["name"]]
        if c.get("cuts"):
            x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            idx = np.searchsorted(np.asarray(c["cuts"], dtype=float), x, side="left")  # left-open bins
            out[:, j] = np.where(np.isnan(x), len(labels) - 1, idx)
        else:
            pos = {lab: i for i, lab in enumerate(labels)}
            na = pos.get(NA_LABEL, len(labels) - 1)
            out[:, j] = [na if v is None or pd.isna(v) else pos.get(_text(v), na) for v in values]
    return out


__all__ = ["NA_LABEL", "ColumnBins", "MstMeasurement", "discretise", "fit_and_sample", "measure_mst"]
