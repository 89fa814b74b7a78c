"""Disclosure rules as pure functions over aggregates: small counts, breakdowns, bounds, GLM, quantiles.

Nothing here touches storage or the network; the node's gate (:mod:`phds.node.gate`) applies these rules
with the hospital policy's thresholds, and the hub calls :func:`network_total` on what the gates released.

Sources of the defaults:

* minimum cell count 5 and releasing zeros: OHDSI ``minCellCount``; CohortDiagnostics'
  ``enforceMinCellValue`` censors ``0 < x < minCellCount`` and leaves 0 as it is;
* 11 as a stricter threshold: PCORnet, after the CMS cell-size suppression policy (1–10 never shown);
* ``nfilter.glm`` 0.33 and ``nfilter.tab``: DataSHIELD dsBase ``glmDS1`` (refuse when parameters >
  nfilter.glm × N; refuse a variable with exactly two observed levels when either has < nfilter.tab rows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from phds.errors import DisclosureRefused, InputError

NETWORK_MIN_CELL_COUNT = 5
"""The network default minimum cell count; a hospital policy may raise it, never lower it."""
NETWORK_NFILTER_GLM = 0.33
"""DataSHIELD's default saturation filter: parameters may be at most this share of N."""

SuppressionKind = Literal["small", "complementary", "withheld"]


@dataclass(frozen=True)
class ReleasedCount:
    """A count as it may leave a node: exact, or suppressed with the interval a recipient can deduce.

    ``kind`` says why it is suppressed: ``small`` (primary, below the threshold, rendered ``"<5"``),
    ``complementary`` (hidden so a small cell cannot be recovered by subtraction, rendered ``"≥5"``) or
    ``withheld`` (the whole breakdown hidden, rendered ``"suppressed"``). ``lower``/``upper`` are exactly
    what a recipient can deduce from everything released alongside, so publishing them costs nothing.
    """

    value: int | None
    suppressed: bool
    threshold: int
    lower: int
    upper: int
    kind: SuppressionKind | None = None

    def __str__(self) -> str:
        if not self.suppressed:
            return str(self.value)
        if self.kind == "small":
            return f"<{self.threshold}"
        if self.kind == "complementary":
            return f"≥{self.threshold}"
        return "suppressed"

    def to_json(self) -> dict[str, object]:
        """The wire form: never carries the true value of a suppressed count."""
        return {
            "value": self.value,
            "suppressed": self.suppressed,
            "display": str(self),
            "threshold": self.threshold,
            "lower": self.lower,
            "upper": self.upper,
            "kind": self.kind,
        }


def _check_threshold(threshold: int) -> None:
    if threshold < NETWORK_MIN_CELL_COUNT:
        raise InputError(
            f"minimum cell count {threshold} is below the network floor {NETWORK_MIN_CELL_COUNT}",
            field="threshold",
        )


def is_small(n: int, threshold: int, *, release_zero: bool = True) -> bool:
    """True when *n* may not leave exactly: 1..threshold-1, and also 0 unless zeros are releasable."""
    if n < 0:
        raise InputError(f"a count cannot be negative (got {n})", field="count")
    return (0 if not release_zero else 1) <= n < threshold


def release_count(
    n: int, threshold: int = NETWORK_MIN_CELL_COUNT, *, release_zero: bool = True
) -> ReleasedCount:
    """Release one stand-alone count: exact when ≥ *threshold* (or 0), otherwise ``"<threshold"``."""
    _check_threshold(threshold)
    if is_small(n, threshold, release_zero=release_zero):
        floor = 1 if release_zero else 0
        return ReleasedCount(None, True, threshold, floor, threshold - 1, "small")
    return ReleasedCount(n, False, threshold, n, n)


# -- breakdowns and complementary suppression --------------------------------------------------------


@dataclass(frozen=True)
class ReleasedBreakdown:
    """A protected breakdown: its total and its cells, in the order given."""

    total: ReleasedCount
    cells: dict[str, ReleasedCount]

    def to_json(self) -> dict[str, object]:
        return {"total": self.total.to_json(), "cells": {k: v.to_json() for k, v in self.cells.items()}}


Box = tuple[int, int]


def feasible_intervals(boxes: Sequence[Box], rhs: int, total_box: Box | None) -> tuple[list[Box], Box | None]:
    """What a recipient can deduce about hidden cells from one equation ``Σ hidden cells (− t) = rhs``.

    *boxes* are the cells' a-priori intervals, *rhs* the released total minus the released cells (or
    minus the released cells only when the total *t* is hidden with a-priori interval *total_box*).
    With unit coefficients and integer boxes the projection onto each variable is a whole interval, so
    these are exactly the values a cell can still take.
    """
    variables: list[tuple[int, Box]] = [(1, b) for b in boxes]
    if total_box is not None:
        variables.append((-1, total_box))
    lo_sum = sum(b[0] if c > 0 else -b[1] for c, b in variables)
    hi_sum = sum(b[1] if c > 0 else -b[0] for c, b in variables)
    out: list[Box] = []
    for c, (lo, hi) in variables:
        own_lo, own_hi = (lo, hi) if c > 0 else (-hi, -lo)
        others_lo, others_hi = lo_sum - own_lo, hi_sum - own_hi
        vlo, vhi = rhs - others_hi, rhs - others_lo  # bounds on c * x
        if c < 0:
            vlo, vhi = -vhi, -vlo
        out.append((max(lo, vlo), min(hi, vhi)))
    return (out[:-1], out[-1]) if total_box is not None else (out, None)


def protect_breakdown(
    cells: Mapping[str, int], threshold: int = NETWORK_MIN_CELL_COUNT, *, release_zero: bool = True
) -> ReleasedBreakdown:
    """Suppress small cells of a partition and enough others that none can be recovered by subtraction.

    1. *Primary*: each small cell (see :func:`is_small`) and a small total leave as ``"<k"``.
    2. *Complementary*: while some hidden value is pinned to one integer by the released ones (e.g. the
       total is released and exactly one cell is hidden), hide the smallest released cell ≥ k. It is
       published as ``"≥k"``; as it is the smallest, a recipient who knows this algorithm also knows it
       is ≤ every cell still released, and the check assumes that recipient.
    3. If no such cell is left, every cell is withheld and only the total leaves.

    The cells must partition the cohort (the total is their sum); include an ``unknown`` cell if needed.
    Linked tables (two breakdowns of one cohort) are out of scope; the differencing guard covers cohorts.
    """
    _check_threshold(threshold)
    floor = 1 if release_zero else 0
    names = list(cells)
    values = [int(cells[n]) for n in names]
    if any(v < 0 for v in values):
        raise InputError("breakdown cells cannot be negative", field="cells")
    total = sum(values)
    kinds: list[SuppressionKind | None] = [
        "small" if is_small(v, threshold, release_zero=release_zero) else None for v in values
    ]
    total_hidden = is_small(total, threshold, release_zero=release_zero)
    small_box: Box = (floor, threshold - 1)

    def analyse() -> tuple[list[Box], Box | None]:
        hidden = [i for i, k in enumerate(kinds) if k is not None]
        released_big = [values[i] for i, k in enumerate(kinds) if k is None and values[i] >= threshold]
        cap = min(released_big) if released_big else total
        boxes: list[Box] = []
        for i in hidden:
            kind = kinds[i]
            if kind == "small":
                boxes.append(small_box)
            elif kind == "complementary":
                boxes.append((threshold, max(threshold, cap)))
            else:
                boxes.append((0, total if not total_hidden else threshold - 1))
        released_sum = sum(values[i] for i, k in enumerate(kinds) if k is None)
        if total_hidden:
            return feasible_intervals(boxes, -released_sum, small_box)
        return feasible_intervals(boxes, total - released_sum, None)

    while True:
        cell_iv, total_iv = analyse()
        pinned = any(lo == hi for lo, hi in cell_iv) or (total_iv is not None and total_iv[0] == total_iv[1])
        if not pinned:
            break
        candidates = [i for i, k in enumerate(kinds) if k is None and values[i] >= threshold]
        if candidates:
            kinds[min(candidates, key=lambda i: (values[i], i))] = "complementary"
            continue
        if all(k == "withheld" for k in kinds):  # pragma: no cover - impossible, see the property test
            raise DisclosureRefused("breakdown cannot be protected by suppression")
        kinds = ["withheld"] * len(kinds)

    cell_iv, total_iv = analyse()
    it = iter(cell_iv)
    out: dict[str, ReleasedCount] = {}
    for name, v, kind in zip(names, values, kinds, strict=True):
        if kind is None:
            out[name] = ReleasedCount(v, False, threshold, v, v)
        else:
            lo, hi = next(it)
            out[name] = ReleasedCount(None, True, threshold, lo, hi, kind)
    if total_iv is not None:
        released_total = ReleasedCount(None, True, threshold, total_iv[0], total_iv[1], "small")
    else:
        released_total = ReleasedCount(total, False, threshold, total, total)
    return ReleasedBreakdown(released_total, out)


# -- network totals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkTotal:
    """A sum over hospitals: exact when no contribution was suppressed, otherwise a closed interval."""

    lower: int
    upper: int
    suppressed_contributions: int

    @property
    def exact(self) -> bool:
        return self.suppressed_contributions == 0

    def __str__(self) -> str:
        return str(self.lower) if self.exact else f"{self.lower}–{self.upper}"


def network_total(counts: Iterable[ReleasedCount]) -> NetworkTotal:
    """Add released counts from several hospitals; a ``"<5"`` adds its interval (e.g. 1..4)."""
    lower = upper = hidden = 0
    for c in counts:
        lower += c.lower
        upper += c.upper
        hidden += int(c.suppressed)
    return NetworkTotal(lower, upper, hidden)


# -- GLM and quantiles --------------------------------------------------------------------------------


def check_glm_saturation(n_params: int, n_obs: int, nfilter_glm: float = NETWORK_NFILTER_GLM) -> None:
    """Refuse a model with more than ``nfilter_glm × N`` parameters (DataSHIELD nfilter.glm)."""
    if n_params > nfilter_glm * n_obs:
        raise DisclosureRefused(  # N is not named: it may be a small count
            f"model has {n_params} parameters, more than nfilter.glm {nfilter_glm} × N allows; "
            "simplify the model"
        )


def check_binary_levels(variable: str, level_counts: Mapping[str, int], nfilter_tab: int) -> None:
    """Refuse a variable with exactly two observed levels when either has fewer than *nfilter_tab* rows.

    Levels with no rows are ignored, as in DataSHIELD ``glmDS1``: a one-level variable is constant.
    """
    observed = {k: v for k, v in level_counts.items() if v >= 1}
    if len(observed) == 2 and min(observed.values()) < nfilter_tab:
        raise DisclosureRefused(
            f"binary variable {variable!r} has a level with fewer than nfilter.tab = {nfilter_tab} patients"
        )


@dataclass(frozen=True)
class ReleasedQuantile:
    """A quantile released only when at least k patients lie strictly on each side of it."""

    q: float
    value: float | None
    reason: str | None = None


def release_quantile(q: float, value: float, n_below: int, n_above: int, threshold: int) -> ReleasedQuantile:
    """Release *value* as quantile *q* only if ≥ *threshold* patients lie strictly below and above it.

    This also forbids raw minima and maxima: nobody lies below a minimum. Reasons (which leave the
    node) never state a count.
    """
    if not 0.0 <= q <= 1.0 or not math.isfinite(value):
        raise InputError(f"quantile {q} with value {value} is not a valid quantile", field="quantile")
    if n_below < threshold or n_above < threshold:  # the reason leaves: it must not say how many
        return ReleasedQuantile(q, None, f"fewer than {threshold} patients below or above it")
    return ReleasedQuantile(q, value)


def quantiles_from_values(
    values: Sequence[float], qs: Sequence[float], threshold: int
) -> list[ReleasedQuantile]:
    """Compute quantiles (lower order statistic, no interpolation) at the node and apply the rule."""
    data = sorted(values)
    out = []
    for q in qs:
        if not data:
            out.append(ReleasedQuantile(q, None, "no values"))
            continue
        v = data[min(len(data) - 1, math.floor(q * (len(data) - 1)))]
        below = sum(1 for x in data if x < v)
        above = sum(1 for x in data if x > v)
        out.append(release_quantile(q, v, below, above, threshold))
    return out


__all__ = [
    "NETWORK_MIN_CELL_COUNT",
    "NETWORK_NFILTER_GLM",
    "NetworkTotal",
    "ReleasedBreakdown",
    "ReleasedCount",
    "ReleasedQuantile",
    "SuppressionKind",
    "check_binary_levels",
    "check_glm_saturation",
    "feasible_intervals",
    "is_small",
    "network_total",
    "protect_breakdown",
    "quantiles_from_values",
    "release_count",
    "release_quantile",
]
