"""Survival data at a node and the time bins its counts may be released on (shared by Cox and KM).

Time grid: the requester names an origin and a width; grid cell j is ``[origin + j·width, origin +
(j+1)·width)``. A node's *cuts* are grid indices where a bin may start. A node admits a partition only
when, in every bin, the number of events and the number censored are each 0 or at least k (the minimum
cell count, or a larger ``min_risk_set``), overall and within each label of each labelling (KM groups;
for Cox, each level of every two-valued covariate, whose per-bin sums at β = 0 are counts). Consequences:

* every released count is 0 or ≥ k, and so is every count derivable by subtracting released at-risk
  numbers (at-risk at a bin start minus the next = events + censored in the bin);
* every risk set a bin's sums are taken over holds ≥ k persons (it contains a later non-empty bin);
* a cut is a grid point with ≥ k of the node's persons on either side, the condition DESIGN.md sets
  for releasing a quantile, so no raw minimum or maximum leaves.

The rule is closed under merging adjacent bins (sums of counts that are 0 or ≥ k are 0 or ≥ k), so the
hub's common partition, the cuts every hospital admits (:func:`common_cuts`), is admissible at every
node. A node computes its cuts greedily from the left and merges the tail until it is admissible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from phds.analyses.context import LocalContext
from phds.analyses.tables import TableSpec, analysis_table, id_column, persons_of
from phds.errors import DisclosureRefused, InputError
from phds.privacy.aggregates import Persons
from phds.privacy.disclosure import NETWORK_MIN_CELL_COUNT

if TYPE_CHECKING:
    from phds.sources import NodeData


@dataclass(frozen=True)
class SurvivalFrame:
    """Complete cases at a node: durations, events (bool), numeric covariates (n×p), optional group
    labels, and the values of categorical covariates as text."""

    duration: NDArray[np.float64]
    event: NDArray[np.bool_]
    x: NDArray[np.float64]
    group: NDArray[np.str_] | None
    dropped: int
    categories: dict[str, NDArray[np.str_]]
    persons: Persons
    dropped_persons: Persons


def load_survival(
    data: NodeData,
    table: TableSpec,
    duration: str,
    event: str,
    covariates: Sequence[str] = (),
    group: str | None = None,
    categorical: Sequence[str] = (),
) -> SurvivalFrame:
    """Read the named columns at the node; rows with a missing value are dropped and counted.

    *covariates* are numeric; *categorical* ones are read as text (a subset of *covariates* is allowed).
    """
    numeric = [c for c in covariates if c not in categorical]
    names = [duration, event, *covariates, *categorical, *([group] if group else [])]
    selected = [*dict.fromkeys(names), id_column(table)]
    frame = analysis_table(data, table, list(dict.fromkeys(names))).select(*selected).execute()
    complete = frame.dropna()
    everyone = persons_of(data, table, frame)
    kept = frame.index.isin(complete.index)
    try:
        dur = complete[duration].to_numpy(dtype=np.float64)
        ev_raw = complete[event].to_numpy(dtype=np.float64)
        x = complete[numeric].to_numpy(dtype=np.float64).reshape(len(complete), len(numeric))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"duration, event and covariates must be numeric ({exc})", field="analysis.params"
        ) from exc
    if not np.all(np.isin(ev_raw, (0.0, 1.0))):
        raise InputError(f"event variable {event!r} must be 0/1", field="analysis.params.event")
    if np.any(dur < 0) or not np.all(np.isfinite(dur)):
        raise InputError("durations must be finite and non-negative", field="analysis.params.duration")
    labels = _as_text(complete[group]) if group else None
    cats = {c: _as_text(complete[c]) for c in categorical}
    return SurvivalFrame(
        dur,
        ev_raw == 1.0,
        x,
        labels,
        len(frame) - len(complete),
        cats,
        everyone.subset(kept),
        everyone.subset(~kept),
    )


def _as_text(column: Any) -> NDArray[np.str_]:
    """Category labels; whole numbers print alike whether a node reads the column as int or float."""
    if column.dtype.kind in "iuf":
        return np.asarray(
            [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in column], dtype=str
        )
    return np.asarray(column.astype(str).to_numpy(), dtype=str)


def grid_index(duration: NDArray[np.float64], origin: float, width: float) -> NDArray[np.int64]:
    """Grid cell of each duration; one within 1e-9 cells of an edge counts as on it (0.3 / 0.1 is cell 3)."""
    j = np.floor(np.round((duration - origin) / width, 9)).astype(np.int64)
    if np.any(j < 0):
        raise InputError("a duration lies before the time origin", field="analysis.params.time_origin")
    return j


def _ok(counts: NDArray[np.int64], k: int) -> bool:
    return bool(np.all((counts == 0) | (counts >= k)))


def admissible_cuts(
    grid: NDArray[np.int64], event: NDArray[np.bool_], k: int, labellings: Sequence[NDArray[np.int64]] = ()
) -> list[int]:
    """The node's cuts: greedy from the left, then the tail merged until every bin is admissible.

    Every bin must be admissible for all persons together and within each label of each *labelling*
    (labels 0..m−1; e.g. KM groups, or the two levels of a binary covariate).
    """
    cells, inverse = np.unique(grid, return_inverse=True)
    rows = [np.zeros(len(grid), np.int64), *labellings]
    offsets = np.cumsum([0, *(int(r.max(initial=0)) + 1 for r in rows)])
    n_series = int(offsets[-1])
    ev = np.zeros((n_series, len(cells)), dtype=np.int64)
    ce = np.zeros_like(ev)
    for row, off in zip(rows, offsets[:-1], strict=True):
        np.add.at(ev, (row + off, inverse), event.astype(np.int64))
        np.add.at(ce, (row + off, inverse), (~event).astype(np.int64))
    bins: list[tuple[int, NDArray[np.int64], NDArray[np.int64]]] = []  # (start cut, events, censored)
    start, acc_e, acc_c = 0, np.zeros(n_series, np.int64), np.zeros(n_series, np.int64)
    for i in range(len(cells)):
        acc_e, acc_c = acc_e + ev[:, i], acc_c + ce[:, i]
        if i + 1 < len(cells) and _ok(acc_e, k) and _ok(acc_c, k):
            bins.append((start, acc_e, acc_c))
            start, acc_e, acc_c = int(cells[i]) + 1, np.zeros_like(acc_e), np.zeros_like(acc_c)
    bins.append((start, acc_e, acc_c))
    while not (_ok(bins[-1][1], k) and _ok(bins[-1][2], k)):
        if len(bins) == 1:
            raise DisclosureRefused(
                f"a group or a binary covariate level has 1 to {k - 1} events or censored persons here; "
                "no release on any time bins is possible"
            )
        last = bins.pop()
        prev = bins.pop()
        bins.append((prev[0], prev[1] + last[1], prev[2] + last[2]))
    return [b[0] for b in bins[1:]]


def common_cuts(per_hospital: Iterable[Sequence[int]]) -> list[int]:
    """Cuts every hospital admits: the finest partition admissible everywhere."""
    sets = [set(c) for c in per_hospital]
    return sorted(set.intersection(*sets)) if sets else []


def bin_of(grid: NDArray[np.int64], cuts: Sequence[int]) -> NDArray[np.int64]:
    """Bin number (0..len(cuts)) of each grid index for a partition given by its cuts."""
    return np.searchsorted(np.asarray(cuts, dtype=np.int64), grid, side="right").astype(np.int64)


def check_cuts(own: Sequence[int], requested: Sequence[int]) -> None:
    """A node refuses bins that are not a coarsening of its own admissible partition."""
    if not set(requested) <= set(own):
        raise DisclosureRefused("the requested time bins would release counts below the minimum cell count")


def node_k(ctx: LocalContext, min_risk_set: int | None, state: Mapping[str, Any]) -> int:
    """The threshold a node bins with: the largest of the node policy's k, the requester's
    ``min_risk_set`` and the hub's ``k`` (which can only raise it)."""
    return max(ctx.k, min_risk_set or 0, int(state.get("k", 0)))


def check_grid(ctx: LocalContext, universe: str, origin: float, width: float) -> None:
    """The node fixes a requester's time grid on a dataset the first time it releases time bins for it.

    Later grids must be coarsenings of it (a width that is a whole multiple, an origin on its points):
    two grids with shifted origins would otherwise give the events between their edges by subtraction.
    """
    key = f"time_grid:{universe}"
    fixed = ctx.requester_memory.recall(key)
    if fixed is None:
        ctx.requester_memory.remember(key, {"origin": origin, "width": width})
        return
    base_origin, base_width = float(fixed["origin"]), float(fixed["width"])
    ratio, offset = width / base_width, (origin - base_origin) / base_width
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1 or abs(offset - round(offset)) > 1e-9:
        raise InputError(
            f"this hospital fixed your time grid on this dataset at origin {base_origin:g} and width "
            f"{base_width:g}; use a width that is a whole multiple of it and an origin on its points",
            field="analysis.params.time_origin",
        )


def hub_k(released: Mapping[str, Mapping[str, Any]], min_risk_set: int | None) -> int:
    """The threshold for the next round: the largest minimum cell count any gate reported."""
    reported = [int(p.get("min_cell_count", NETWORK_MIN_CELL_COUNT)) for p in released.values()]
    return max([NETWORK_MIN_CELL_COUNT, min_risk_set or 0, *reported])


def bin_labels(
    grid: NDArray[np.int64],
    event: NDArray[np.bool_],
    cuts: Sequence[int],
    labels: NDArray[np.str_] | None = None,
    groups_declared: Sequence[str] | None = None,
) -> tuple[NDArray[Any], list[str]]:
    """Each person's breakdown cell ``[label|]start:event`` / ``…:censored`` on the bins *cuts* define,
    and every cell of the grid in order (the gate counts them). *groups_declared* fixes the groups of the
    grid (under differential privacy the grid may not depend on which groups occur)."""
    per_bin = bin_of(grid, cuts)
    starts = np.asarray([0, *cuts], dtype=np.int64)[per_bin]
    status = np.where(event, "event", "censored")
    prefix = np.full(len(grid), "", dtype=object) if labels is None else np.char.add(labels.astype(str), "|")
    cell = np.asarray([f"{p}{s}:{e}" for p, s, e in zip(prefix, starts.tolist(), status, strict=True)])
    if labels is None:
        groups = [""]
    else:
        present = groups_declared if groups_declared is not None else sorted(set(labels.tolist()))
        groups = [f"{g}|" for g in present]
    levels = [f"{g}{cut}:{kind}" for g in groups for cut in [0, *cuts] for kind in ("event", "censored")]
    return cell, levels


def parse_cells(
    hospital: str, cells: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[tuple[int, int, int]]]:
    """Released bin cells as ``{label: [(start cut, events, censored), …]}`` (label "" without groups)."""
    if any(c["suppressed"] for c in cells.values()):
        raise InputError(
            f"{hospital}: its gate suppressed time-bin counts (its policy may hide zeros); "
            "raise min_risk_set or widen time_width",
            field="analysis",
        )
    out: dict[str, dict[int, list[int]]] = {}
    for name, c in cells.items():
        head, _, status = name.rpartition(":")
        label, _, start = head.rpartition("|")
        out.setdefault(label, {}).setdefault(int(start), [0, 0])[status == "censored"] = int(c["value"])
    return {lab: [(s, v[0], v[1]) for s, v in sorted(rows.items())] for lab, rows in out.items()}


def bin_edges(cuts: Sequence[int], origin: float, width: float) -> list[dict[str, Any]]:
    """Start and end times of the bins of a partition (the last one is open-ended)."""
    starts = [origin, *(origin + c * width for c in cuts)]
    ends: list[float | None] = [*(origin + c * width for c in cuts), None]
    return [{"start": s, "end": e} for s, e in zip(starts, ends, strict=True)]


__all__ = [
    "SurvivalFrame",
    "admissible_cuts",
    "bin_edges",
    "bin_labels",
    "bin_of",
    "check_cuts",
    "check_grid",
    "common_cuts",
    "grid_index",
    "hub_k",
    "load_survival",
    "node_k",
    "parse_cells",
]
