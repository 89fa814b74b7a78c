"""What a node measures on its real rows in a synthetic dataset's evaluation round (``synthetic.mst``).

Every measurement leaves as a breakdown on a fixed grid in which one real row is in at most one cell,
so under the gate's differential privacy each is one Gaussian or Laplace release of sensitivity 1 (the
gate splits the round's ρ over them):

* ``pair:<a>|<b>`` — the real two-way table of every pair of declared columns, from which the hub
  computes sdmetrics' quality score and the pMSE (:mod:`phds.analyses.synthetic_quality`);
* ``tstr`` and ``trtr`` — cases and non-cases per bin of predicted risk on the node's *control* rows
  (held out of the generator), of a logistic model trained on the synthetic rows (by the hub) and of
  one trained here on the generator's own rows: the train-on-synthetic / train-on-real comparison;
* ``inference:*`` and ``linkability:*`` — hit or miss of anonymeter's attacks per attacked row
  (:mod:`phds.analyses.synthetic_risks`).

The control rows are chosen by :func:`~phds.analyses.learning_frame.held_out_mask` on the row ids and
the study's seed, so round 1 (which fits the generator on the other rows) and round 2 agree.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from phds.analyses.learning_eval import DEFAULT_BINS, bin_labels, bin_levels
from phds.privacy.aggregates import Aggregate, BreakdownAggregate, Persons

MIN_MODEL_ROWS = 20
"""Fewest training or control rows (and cases, non-cases) for the utility models to be fitted."""


@dataclass(frozen=True)
class RealRows:
    """A node's real rows as domain codes, split into the generator's rows and the control rows."""

    codes: NDArray[np.int64]
    persons: Persons
    control: NDArray[np.bool_]

    @property
    def train(self) -> tuple[NDArray[np.int64], Persons]:
        return self.codes[~self.control], self.persons.subset(~self.control)

    @property
    def held(self) -> tuple[NDArray[np.int64], Persons]:
        return self.codes[self.control], self.persons.subset(self.control)


def pair_names(columns: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(len(columns)), 2))


def pair_tables(rows: RealRows, columns: Sequence[Mapping[str, Any]]) -> list[Aggregate]:
    """Every pair's real two-way table over all the node's rows (cells ``"<i>:<j>"`` of the codes)."""
    out: list[Aggregate] = []
    for a, b in pair_names(columns):
        sa, sb = len(columns[a]["labels"]), len(columns[b]["labels"])
        levels = [f"{i}:{j}" for i in range(sa) for j in range(sb)]
        labels = np.char.add(np.char.add(rows.codes[:, a].astype(str), ":"), rows.codes[:, b].astype(str))
        name = f"pair:{columns[a]['name']}|{columns[b]['name']}"
        out.append(BreakdownAggregate(name, rows.persons, labels.astype(object), levels))
    return out


def one_hot(codes: NDArray[np.int64], sizes: Sequence[int], keep: Sequence[int]) -> NDArray[np.float64]:
    """Indicators of each kept column's codes 1.. (code 0 is the reference level)."""
    parts = [(codes[:, j][:, None] == np.arange(1, sizes[j])[None, :]).astype(float) for j in keep]
    return np.hstack(parts) if parts else np.zeros((codes.shape[0], 0))


def fit_logistic(x: NDArray[np.float64], y: NDArray[np.float64]) -> dict[str, Any] | None:
    """scikit-learn's L2 logistic regression (its default C = 1), or None when a class is too rare."""
    from sklearn.linear_model import LogisticRegression

    cases = int(y.sum())
    if y.size < MIN_MODEL_ROWS or min(cases, y.size - cases) < MIN_MODEL_ROWS // 4:
        return None
    model = LogisticRegression(max_iter=1000).fit(x, y)
    return {"coef": model.coef_.ravel().tolist(), "intercept": float(model.intercept_[0])}


def predict(model: Mapping[str, Any], x: NDArray[np.float64]) -> NDArray[np.float64]:
    eta = x @ np.asarray(model["coef"], dtype=float) + float(model["intercept"])
    return np.asarray(1.0 / (1.0 + np.exp(-eta)))


@dataclass(frozen=True)
class TargetCodes:
    """The utility target: its column index, the code of the positive level and the predictors."""

    column: int
    positive: int
    predictors: list[int]
    sizes: list[int]

    def design(self, codes: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return one_hot(codes, self.sizes, self.predictors), (codes[:, self.column] == self.positive) * 1.0


def utility_models(rows: RealRows, target: TargetCodes, tstr: Mapping[str, Any] | None) -> list[Aggregate]:
    """``tstr`` and ``trtr``: the two models' risk bins on the control rows (module docstring)."""
    test, test_persons = rows.held
    if test.shape[0] < MIN_MODEL_ROWS:
        return []
    x_test, y_test = target.design(test)
    out: list[Aggregate] = []
    if tstr is not None:
        p = predict(tstr, x_test)
        out.append(
            BreakdownAggregate(
                "tstr", test_persons, bin_labels(y_test, p, DEFAULT_BINS), bin_levels(DEFAULT_BINS)
            )
        )
    train, _ = rows.train
    real = fit_logistic(*target.design(train))
    if real is not None:
        p = predict(real, x_test)
        out.append(
            BreakdownAggregate(
                "trtr", test_persons, bin_labels(y_test, p, DEFAULT_BINS), bin_levels(DEFAULT_BINS)
            )
        )
    return out


__all__ = [
    "RealRows",
    "TargetCodes",
    "fit_logistic",
    "one_hot",
    "pair_names",
    "pair_tables",
    "predict",
    "utility_models",
]
