"""Render a ``stats.characterisation`` result as a paper's "Table 1": DataFrame, CSV, Markdown, HTML.

Rows: ``N``, then per numeric variable ``mean (SD)`` and ``median [IQR]`` (pooled only: quantiles are
computed for the pooled data), then per categorical variable a header row and one ``n (%)`` row per
level. Columns: for each cohort its hospitals and ``Pooled``; then ``SMD`` when two cohorts are compared.
Suppressed counts show as the gate rendered them (``<5``, ``≥5``); pooled counts that include a
suppressed one show their interval (``12–16``) and no percentage.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

POOLED = "Pooled"
INDENT = "    "


def _num(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _mean_sd(cell: Mapping[str, Any] | None, digits: int) -> str:
    if not cell or cell.get("mean") is None:
        return "–"
    return f"{_num(cell['mean'], digits)} ({_num(cell.get('sd'), digits)})"


def _median_iqr(cell: Mapping[str, Any], digits: int) -> str:
    if cell.get("median") is None:
        return "–"
    return f"{_num(cell['median'], digits)} [{_num(cell.get('q1'), digits)}, {_num(cell.get('q3'), digits)}]"


def _n_pct(count: Mapping[str, Any], percent: float | None) -> str:
    text = str(count["display"])
    return text if percent is None else f"{text} ({percent:.1f})"


def table_one(result: Mapping[str, Any], *, hospitals: bool = True, digits: int = 2) -> pd.DataFrame:
    """The Table 1 DataFrame of display strings.

    Index: (variable, statistic or level); ``frame.attrs["labels"]`` holds the one-column labels a
    paper prints (``LAB_TSC, mean (SD)``, ``GENDER, n (%)``, then indented levels). Columns: (cohort, site).
    """
    sites = [*(result["hospitals"] if hospitals else []), POOLED]
    columns = [(c, s) for c in result["cohorts"] for s in sites]
    with_smd = result.get("compare") is not None
    if with_smd:
        columns.append(("", "SMD"))
    rows: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
    labels: list[str] = []

    def put(key: tuple[str, str], label: str, values: Mapping[tuple[str, str], str]) -> None:
        rows[key] = {col: values.get(col, "") for col in columns}
        labels.append(label)

    put(
        ("N", ""),
        "N",
        {(c, s): _site(result["n"][c], s)["display"] for c in result["cohorts"] for s in sites},
    )
    for var in result["variables"]:
        name, smd = var["variable"], var["smd"]
        if var["kind"] == "numeric":
            cells = {}
            for c in result["cohorts"]:
                for s in sites:
                    block = var["by_cohort"][c]
                    cell = block["pooled"] if s == POOLED else block["by_hospital"].get(s)
                    cells[(c, s)] = _mean_sd(cell, digits)
            if with_smd:
                cells[("", "SMD")] = _num(abs(smd) if smd is not None else None, 3)
            put((name, "mean (SD)"), f"{name}, mean (SD)", cells)
            if any(var["by_cohort"][c]["pooled"].get("median") is not None for c in result["cohorts"]):
                medians = {
                    (c, POOLED): _median_iqr(var["by_cohort"][c]["pooled"], digits) for c in result["cohorts"]
                }
                put((name, "median [IQR]"), f"{name}, median [IQR]", medians)
            continue
        put((name, "n (%)"), f"{name}, n (%)", {})
        for level in var["levels"]:
            cells = {}
            for c in result["cohorts"]:
                block = var["by_cohort"][c]
                for s in sites:
                    cell = block["pooled"][level] if s == POOLED else block["by_hospital"][s][level]
                    cells[(c, s)] = _n_pct(cell, cell.get("percent"))
            if with_smd and smd is not None:
                cells[("", "SMD")] = _num(abs(smd[level]) if smd[level] is not None else None, 3)
            put((name, f"= {level}"), f"{INDENT}{level}", cells)
    frame = pd.DataFrame([list(r.values()) for r in rows.values()], dtype=object)
    frame.index = pd.MultiIndex.from_tuples(list(rows), names=["Variable", "Row"])
    frame.columns = pd.MultiIndex.from_tuples(columns, names=["Cohort", "Site"])
    frame.attrs["labels"] = labels
    return frame


def _site(block: Mapping[str, Any], site: str) -> Mapping[str, Any]:
    out: Mapping[str, Any] = block["pooled"] if site == POOLED else block["by_hospital"][site]
    return out


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """One header row (``cohort: site``) and one label column (``Characteristic``)."""
    flat = frame.copy()
    flat.columns = [str(c[1]) if not c[0] else f"{c[0]}: {c[1]}" for c in frame.columns]
    labels = frame.attrs.get("labels") or [" ".join(map(str, k)).strip() for k in frame.index]
    flat.index = pd.Index(labels, name="Characteristic")
    return flat


def to_csv(frame: pd.DataFrame) -> str:
    """CSV with one header row and the paper's row labels."""
    return _flat(frame).to_csv(lineterminator="\n")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; the characteristic column is left-aligned, values right."""

    def esc(text: object) -> str:
        return str(text).replace("|", "\\|")

    flat = _flat(frame)
    header = ["Characteristic", *flat.columns]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("| " + " | ".join([":--", *["--:"] * (len(header) - 1)]) + " |")
    for label, row in flat.iterrows():
        text = str(label).replace(INDENT, "&nbsp;&nbsp;")
        lines.append("| " + " | ".join([esc(text), *(esc(v) for v in row)]) + " |")
    return "\n".join(lines) + "\n"


def to_html(frame: pd.DataFrame, caption: str = "Table 1. Characteristics of the cohorts") -> str:
    """An HTML table with a two-level header (cohort, site), the paper's row labels and a caption."""
    flat = _flat(frame)
    flat.columns = frame.columns
    body = flat.to_html(escape=True, na_rep="", border=0, classes="phds-table-one")
    return body.replace(">\n  <thead>", f">\n  <caption>{html.escape(caption)}</caption>\n  <thead>", 1)
