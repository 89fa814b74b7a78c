"""``stats.table``: one- and two-way contingency tables over hospitals, with a Pearson chi-square test.

Each node counts the persons in every cell of ``rows × columns`` (missing values form the level ``NA``)
and releases the whole table as one breakdown, so its gate suppresses small cells and enough others
that none can be recovered by subtraction (:func:`phds.privacy.disclosure.protect_breakdown`). When the
requester lists a variable's ``levels``, every other value is counted as ``other`` and the grid is the
full product of the listed levels, so a node reveals no level the requester did not name. Otherwise
observed levels held by fewer than k persons merge into ``other`` and only integer codes keep their
names; a text variable must have its levels listed. Every released cell's persons are overlap-guarded.

The hub adds the released cells: a pooled cell is exact when no hospital suppressed it, otherwise the
interval :func:`phds.privacy.disclosure.network_total` deduces. The chi-square test of independence
(Pearson, without Yates' correction; ``scipy.stats.chi2_contingency(..., correction=False)``) runs on
the pooled table without ``NA``/``other`` rows and columns only when every one of its cells is exact; a
test on intervals would not be a test, so with suppressed cells it is refused and the reason given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from phds.analyses.base import Analysis, Final, LocalStep, NextRound, released_values
from phds.analyses.context import LocalContext
from phds.analyses.feasibility import _count, _total_json
from phds.analyses.tables import VARIABLE_PATTERN, TableSpec, analysis_table, id_column, persons_of
from phds.errors import InputError
from phds.privacy.aggregates import BreakdownAggregate
from phds.privacy.disclosure import network_total, protect_level_names
from phds.protocol.releases import ReleasedCount

NA, OTHER = "NA", "other"
Variable = str


class TableParams(BaseModel):
    """The table, the row variable, an optional column variable and optional level lists."""

    model_config = ConfigDict(extra="forbid")

    table: TableSpec
    rows: Variable = Field(min_length=1, max_length=100, pattern=VARIABLE_PATTERN)
    columns: Variable | None = Field(default=None, min_length=1, max_length=100, pattern=VARIABLE_PATTERN)
    levels: dict[Variable, list[str]] = Field(default_factory=dict, description="levels to count")
    max_levels: int = Field(30, ge=2, le=200, description="refuse variables with more observed levels")

    @model_validator(mode="after")
    def _known(self) -> TableParams:
        if self.columns == self.rows:
            raise ValueError("rows and columns must be different variables")
        unknown = set(self.levels) - {self.rows, self.columns}
        if unknown:
            raise ValueError(f"levels given for variables not in the table: {sorted(unknown)}")
        return self


def level_label(value: Any) -> str:
    """A value as a level name: missing → ``NA``, whole floats without ``.0`` (1.0 → ``"1"``)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return NA
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def cell_key(row: str, column: str | None) -> str:
    """The breakdown cell name of a (row, column) level pair."""
    return row if column is None else json.dumps([row, column])


def cell_labels(
    frame: pd.DataFrame, variables: list[str], levels: Mapping[str, list[str]], k: int
) -> tuple[np.ndarray, list[str]]:
    """Each row's cell of the grid of *variables*, and the grid's cells in order (node side).

    Declared levels count every other value as ``other``; undeclared ones follow the level-name rule
    (:func:`~phds.privacy.disclosure.protect_level_names`): small levels merge into ``other``, and only
    integer codes keep their names.
    """
    per_variable: list[list[str]] = []
    grids: list[list[str]] = []
    for var in variables:
        labels = frame[var].map(level_label)
        if var in levels:
            listed = [str(x) for x in levels[var]]
            labels = labels.where(labels.isin([*listed, NA]), OTHER)
            grids.append([*listed, OTHER, NA])
            per_variable.append(labels.astype(str).tolist())
        else:
            protected = protect_level_names(labels.astype(str).tolist(), k)
            grids.append(sorted(set(protected), key=_level_order))
            per_variable.append(protected)
    if len(variables) == 1:
        return np.asarray(per_variable[0], dtype=object), grids[0]
    keys = [cell_key(r, c) for r, c in zip(per_variable[0], per_variable[1], strict=True)]
    return np.asarray(keys, dtype=object), [cell_key(r, c) for r in grids[0] for c in grids[1]]


def _level_order(level: str) -> tuple[int, float, str]:
    if level in (OTHER, NA):
        return (2 if level == NA else 1, 0.0, level)
    try:
        return (0, float(level), level)
    except ValueError:
        return (0, float("inf"), level)


class ContingencyTable(Analysis[TableParams]):
    """Counts of one variable or of two crossed variables, by hospital and pooled, with chi-square."""

    name: ClassVar[str] = "stats.table"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Contingency table"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "tabular"
    params_model = TableParams
    dp_support: ClassVar[bool] = True

    def local(self, ctx: LocalContext, params: TableParams) -> LocalStep:
        start = time.perf_counter()
        variables = [params.rows] + ([params.columns] if params.columns else [])
        undeclared = [v for v in variables if v not in params.levels]
        if ctx.dp is not None and undeclared:
            raise InputError(  # a grid taken from the data would reveal which values occur
                f"under differential privacy the levels of {undeclared[0]} must be listed",
                field=f"analysis.params.levels.{undeclared[0]}",
            )
        table = analysis_table(ctx.data, params.table, variables)
        frame = table.select([*variables, id_column(params.table)]).execute()
        for var in variables:
            if var not in params.levels and frame[var].nunique(dropna=True) > params.max_levels:
                raise InputError(
                    f"{var} has more than {params.max_levels} levels; list the levels to count",
                    field="analysis.params.levels",
                )
        labels, grid = cell_labels(frame, variables, params.levels, ctx.k)
        persons = persons_of(ctx.data, params.table, frame)
        cells = BreakdownAggregate("cells", persons, labels, grid)
        return LocalStep([cells], time.perf_counter() - start)

    def combine(
        self, params: TableParams, round_no: int, state: Mapping[str, Any], released: Mapping[str, Any]
    ) -> Final | NextRound:
        return Final(combine_tables(params, {h: released_values(p)["cells"] for h, p in released.items()}))


def combine_tables(params: TableParams, breakdowns: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Pool released breakdowns (hospital → breakdown payload) into the result JSON."""
    two_way = params.columns is not None
    row_levels: set[str] = set()
    col_levels: set[str] = set()
    for bd in breakdowns.values():
        for key in bd["cells"]:
            r, c = json.loads(key) if two_way else (key, None)
            row_levels.add(r)
            if c is not None:
                col_levels.add(c)
    rows = sorted(row_levels, key=_level_order)
    col_names = sorted(col_levels, key=_level_order)
    cols: list[str | None] = [*col_names] if two_way else [None]
    zero = ReleasedCount.exact(0, 0)
    grids = {h: _grid_levels(bd, two_way) for h, bd in breakdowns.items()}
    cells = []
    for r in rows:
        for c in cols:
            key = cell_key(r, c)
            per = {
                h: bd["cells"][key] if key in bd["cells"] else _absent(bd, grids[h], r, c, zero)
                for h, bd in breakdowns.items()
            }
            total = network_total(_count(v) for v in per.values())
            cells.append({"row": r, "column": c, **_total_json(total), "by_hospital": per})
    result: dict[str, Any] = {
        "rows": params.rows,
        "columns": params.columns,
        "row_levels": rows,
        "column_levels": cols if two_way else [],
        "cells": cells,
        "totals_by_hospital": {h: bd["total"] for h, bd in sorted(breakdowns.items())},
        "total": _total_json(network_total(_count(bd["total"]) for bd in breakdowns.values())),
        "chi_square": None,
    }
    if two_way:
        result["chi_square"] = chi_square(cells, rows, col_names)
    return result


def _grid_levels(bd: Mapping[str, Any], two_way: bool) -> tuple[set[str], set[str]]:
    rows: set[str] = set()
    cols: set[str] = set()
    for key in bd["cells"]:
        r, c = json.loads(key) if two_way else (key, None)
        rows.add(r)
        if c is not None:
            cols.add(c)
    return rows, cols


def _absent(
    bd: Mapping[str, Any], grid: tuple[set[str], set[str]], r: str, c: str | None, zero: ReleasedCount
) -> dict[str, Any]:
    """A cell missing from a hospital's grid: 0, unless the level may have merged into its ``other``
    cell (an undeclared level with fewer than k persons there); then it is bounded by that cell."""
    rows, cols = grid
    r2 = r if r in rows else (OTHER if OTHER in rows else None)
    c2 = None if c is None else (c if c in cols else (OTHER if OTHER in cols else None))
    if r2 is None or (c is not None and c2 is None) or (r2, c2) == (r, c):
        return zero.model_dump(mode="json")
    upper = int(bd["cells"][cell_key(r2, c2)]["upper"])
    if upper == 0:
        return zero.model_dump(mode="json")
    bounded = ReleasedCount(value=None, suppressed=True, threshold=int(bd["total"]["threshold"]), lower=0,
                            upper=upper, kind="withheld", display=f"0–{upper}")  # fmt: skip
    return bounded.model_dump(mode="json")


def chi_square(cells: list[dict[str, Any]], rows: list[str], cols: list[str]) -> dict[str, Any]:
    """Pearson's test of independence on the pooled table without NA/other, or why it was refused."""
    keep_r = [r for r in rows if r not in (NA, OTHER)]
    keep_c = [c for c in cols if c not in (NA, OTHER)]
    index = {(c["row"], c["column"]): c for c in cells}
    chosen = [index[(r, c)] for r in keep_r for c in keep_c]
    if any(not c["exact"] for c in chosen):
        return {"refused": "some cells were suppressed at a hospital, so the pooled table is only known "
                "within bounds; the test needs exact counts"}  # fmt: skip
    observed = np.array([[index[(r, c)]["lower"] for c in keep_c] for r in keep_r], dtype=float)
    observed = observed[observed.sum(axis=1) > 0][:, observed.sum(axis=0) > 0]
    if observed.shape[0] < 2 or observed.shape[1] < 2:
        return {"refused": "the test needs at least two non-empty rows and columns"}
    res = stats.chi2_contingency(observed, correction=False)
    expected = np.asarray(res.expected_freq)
    return {
        "method": "Pearson chi-square test of independence (no continuity correction)",
        "statistic": float(res.statistic),
        "df": int(res.dof),
        "p_value": float(res.pvalue),
        "min_expected": float(expected.min()),
        "warning": "some expected counts are below 5" if expected.min() < 5 else None,
    }


def table_frame(result: Mapping[str, Any], hospital: str | None = None) -> pd.DataFrame:
    """The pooled table (or one hospital's) as a DataFrame of display strings (``"<5"``, ``"12–16"``)."""
    two_way = result["columns"] is not None
    frame = pd.DataFrame(
        index=pd.Index(result["row_levels"], name=result["rows"]),
        columns=pd.Index(result["column_levels"] if two_way else ["n"], name=result["columns"]),
        dtype=object,
    )
    for cell in result["cells"]:
        text = cell["display"] if hospital is None else cell["by_hospital"][hospital]["display"]
        frame.loc[cell["row"], cell["column"] if two_way else "n"] = text
    return frame
