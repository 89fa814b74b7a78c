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
import re
from collections.abc import Iterable, Mapping, Sequence

from phds.errors import DisclosureRefused, InputError
from phds.protocol.releases import NetworkTotal, ReleasedBreakdown, ReleasedCount, SuppressionKind

NETWORK_MIN_CELL_COUNT = 5
"""The network default minimum cell count; a hospital policy may raise it, never lower it."""
NETWORK_NFILTER_GLM = 0.33
"""DataSHIELD's default saturation filter: parameters may be at most this share of N."""


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
        return ReleasedCount(
            value=None, suppressed=True, threshold=threshold, lower=floor, upper=threshold - 1, kind="small"
        )
    return ReleasedCount.exact(n, threshold)


# -- breakdowns and complementary suppression --------------------------------------------------------


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
    3. The same while the hidden cells together hold 1..2k−2 persons (with the total released, their sum
       is one derivable cell, and the overlap guard's band reaches 2k − 1).
    4. If no such cell is left, every cell is withheld and only the total leaves.

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
        # With the total released, the hidden cells together are one derivable cell. It must hold at least
        # 2k − 1 persons: the overlap guard blurs its threshold for derived sets over [k, 2k), and a
        # derived cell in that band would be refused at random.
        hidden_sum = total - sum(v for v, kd in zip(values, kinds, strict=True) if kd is None)
        some_released = any(kd is None for kd in kinds)  # with none released, the sum is the total itself
        pinned = pinned or (not total_hidden and some_released and 0 < hidden_sum < 2 * threshold - 1)
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
            out[name] = ReleasedCount.exact(v, threshold)
        else:
            lo, hi = next(it)
            out[name] = ReleasedCount(
                value=None, suppressed=True, threshold=threshold, lower=lo, upper=hi, kind=kind
            )
    if total_iv is not None:
        released_total = ReleasedCount(
            value=None,
            suppressed=True,
            threshold=threshold,
            lower=total_iv[0],
            upper=total_iv[1],
            kind="small",
        )
    else:
        released_total = ReleasedCount.exact(total, threshold)
    return ReleasedBreakdown(total=released_total, cells=out)


# -- level names ----------------------------------------------------------------------------------------

OTHER = "other"
_CODE = re.compile(r"^-?\d{1,9}$")
_MARKERS = frozenset({"NA", "unknown", OTHER})


def protect_level_names(
    labels: Sequence[str], threshold: int, field: str = "analysis.params.levels"
) -> list[str]:
    """Apply the level-name rule to observed labels the requester did not declare.

    A level held by fewer than *threshold* persons merges into ``other``; a larger level keeps its name
    only if it is a short integer code (a codebook value, not a name) or a missing-value marker. Text
    levels must be declared: a rare diagnosis written as a level name would itself be a disclosure.
    """
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    small = {lv for lv, n in counts.items() if n < threshold and lv not in _MARKERS}
    for level in counts.keys() - small:
        if level not in _MARKERS and not _CODE.match(level):
            raise InputError(
                "a variable has text levels that were not declared; list the levels to count (level "
                "names leave a hospital only when declared or in its vocabulary)",
                field=field,
            )
    return [OTHER if lv in small else lv for lv in labels]


# -- network totals ----------------------------------------------------------------------------------


Z_975 = 1.959963984540054
"""The standard normal's 97.5% quantile: a 95% interval is ±1.96 σ."""


def network_total(counts: Iterable[ReleasedCount]) -> NetworkTotal:
    """Add released counts from several hospitals; a ``"<5"`` adds its interval (e.g. 1..4).

    Noisy (DP) counts add their values; the total's 95% half-width is 1.96·√(Σσ²) over Gaussian noise
    (independent at each hospital; a discrete Gaussian's variance is at most σ², Canonne, Kamath &
    Steinke 2020, Prop. 19), and the sum of the half-widths over Laplace noise (a conservative bound).
    Suppressed contributions widen the interval by what a recipient can deduce of them.
    """
    lower = upper = hidden = 0
    noisy = estimate = 0
    variance = laplace = 0.0
    for c in counts:
        hidden += int(c.suppressed)
        if c.dp is None:
            lower += c.lower
            upper += c.upper
            continue
        noisy += 1
        estimate += int(c.value or 0)
        if c.dp.mechanism.endswith("gaussian"):
            variance += c.dp.scale**2
        else:
            laplace += c.dp.ci95
    if not noisy:
        return NetworkTotal(lower=lower, upper=upper, suppressed_contributions=hidden)
    half = Z_975 * math.sqrt(variance) + laplace
    center = estimate + (lower + upper) / 2
    spread = half + (upper - lower) / 2
    return NetworkTotal(
        lower=max(0, math.floor(center - spread)),
        upper=max(0, math.ceil(center + spread)),
        suppressed_contributions=hidden,
        exact=False,
        estimate=estimate + lower if lower == upper else round(center),
        ci95=round(spread, 3),
    )


# -- GLM --------------------------------------------------------------------------------


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


__all__ = [
    "NETWORK_MIN_CELL_COUNT",
    "NETWORK_NFILTER_GLM",
    "OTHER",
    "check_binary_levels",
    "check_glm_saturation",
    "feasible_intervals",
    "is_small",
    "network_total",
    "protect_breakdown",
    "protect_level_names",
    "release_count",
]
