"""Node side of federated learning: the declared features as a design, and the held-out split.

Rows with a missing value in the outcome or any declared feature are dropped (complete cases, as
``stats.glm`` does). Numeric features enter as they are, then standardised with the network's (or the
declared) means and SDs; a categorical feature enters as one indicator per declared level but the
first (its reference); a value outside its declared levels is an error, so no level name is ever
learnt from data. The outcome must be 0/1.

The held-out split is deterministic and made at the node: a row is held out when the first 8 bytes
of BLAKE2b(seed, node-side row id) (RFC 7693), read as a fraction of 2⁶⁴, fall below the declared
fraction. It depends on no other row, so the same study gives the same split at every round, and the
hub never learns which rows were held out. Frames are cached per node data object for the rounds of a
study, so the gate's once-per-design check sees the same arrays every round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from phds.analyses.glm_design import _cached, level_name
from phds.analyses.tables import TableSpec, analysis_table, id_column, persons_of
from phds.errors import InputError
from phds.privacy.aggregates import Persons

if TYPE_CHECKING:
    from phds.sources import NodeData


def design_columns(numeric: Sequence[str], categorical: dict[str, list[str]]) -> list[str]:
    """The model's input columns, in order: numeric features, then ``var[level]`` indicators."""
    cols = list(numeric)
    for var, levels in categorical.items():
        cols.extend(f"{var}[{lv}]" for lv in levels[1:])
    return cols


def held_out_mask(ids: NDArray[Any], seed: int, fraction: float) -> NDArray[np.bool_]:
    """True for the rows held out for evaluation (module docstring)."""
    cut = int(fraction * 2**64)
    out = np.zeros(ids.shape[0], dtype=bool)
    for i, row_id in enumerate(ids.tolist()):
        digest = hashlib.blake2b(f"{seed}:{row_id}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") < cut
    return out


@dataclass(frozen=True)
class Split:
    """One part (training or held out) of the complete cases: raw numeric inputs, indicators, outcome."""

    numeric: NDArray[np.float64]
    indicators: NDArray[np.float64]
    y: NDArray[np.float64]
    persons: Persons


@dataclass(frozen=True)
class LearningFrame:
    train: Split
    held_out: Split


def load(
    data: NodeData,
    spec: TableSpec,
    outcome: str,
    numeric: Sequence[str],
    categorical: dict[str, list[str]],
    seed: int,
    fraction: float,
) -> LearningFrame:
    variables = list(dict.fromkeys([outcome, *numeric, *categorical]))

    def build() -> LearningFrame:
        table = analysis_table(data, spec, variables, field="analysis.params.features")
        df = table.select(*variables, id_column(spec)).execute().dropna().reset_index(drop=True)
        y = pd.to_numeric(df[outcome], errors="coerce").to_numpy(dtype=float)
        if not np.all((y == 0) | (y == 1)):
            raise InputError("the outcome must be 0 or 1", field="analysis.params.outcome")
        cols = []
        for var in numeric:
            if not pd.api.types.is_numeric_dtype(df[var]):
                raise InputError(
                    f"{var} is not numeric; declare it as categorical with its levels",
                    field="analysis.params.features.numeric",
                )
            cols.append(df[var].to_numpy(dtype=float))
        x_num = np.column_stack(cols) if cols else np.zeros((len(df), 0))
        ind: list[NDArray[np.float64]] = []
        for var, levels in categorical.items():
            names = df[var].map(level_name).astype(str)
            if not set(names) <= set(levels):
                raise InputError(
                    f"{var} has values outside its declared levels",
                    field="analysis.params.features.categorical",
                )
            ind.extend((names == lv).to_numpy(dtype=float) for lv in levels[1:])
        x_ind = np.column_stack(ind) if ind else np.zeros((len(df), 0))
        persons = persons_of(data, spec, df)
        held = held_out_mask(persons.ids, seed, fraction)

        def part(mask: NDArray[np.bool_]) -> Split:
            return Split(
                np.ascontiguousarray(x_num[mask]),
                np.ascontiguousarray(x_ind[mask]),
                y[mask],
                persons.subset(mask),
            )

        return LearningFrame(part(~held), part(held))

    key = (
        "learning",
        spec.model_dump_json(),
        outcome,
        tuple(numeric),
        tuple((k, tuple(v)) for k, v in categorical.items()),
        seed,
        fraction,
    )
    frame: LearningFrame = _cached(data, key, build)
    return frame


@dataclass(frozen=True)
class Inputs:
    """A split's standardised inputs X (n × d) and, for the gate, [1 | X]."""

    x: NDArray[np.float64]
    with_intercept: NDArray[np.float64]


def inputs(split: Split, mean: Sequence[float], sd: Sequence[float]) -> Inputs:
    """*split*'s inputs with the numeric features standardised by *mean* and *sd* (cached per split)."""

    def build() -> Inputs:
        m = np.asarray(mean, dtype=float)
        s = np.asarray(sd, dtype=float)
        x = np.ascontiguousarray(np.hstack([(split.numeric - m) / s, split.indicators]))
        if not np.all(np.isfinite(x)):
            raise InputError(
                "the standardised features are not finite", field="analysis.params.preprocessing"
            )
        return Inputs(x, np.ascontiguousarray(np.hstack([np.ones((x.shape[0], 1)), x])))

    key = ("inputs", tuple(float(v) for v in mean), tuple(float(v) for v in sd))
    found: Inputs = _cached(split, key, build)
    return found


__all__ = ["Inputs", "LearningFrame", "Split", "design_columns", "held_out_mask", "inputs", "load"]
