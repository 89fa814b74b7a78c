"""Typed results of the descriptive statistics: ``stats.summary`` → :class:`SummaryResult`, ``stats.table``
→ :class:`TableResult`, ``stats.characterisation`` → :class:`CharacterisationResult`.

Counts are shown as the gates released them (``"<5"``, and intervals for pooled cells that include a
suppressed count); numeric columns hold the lower and upper bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from phds.protocol.studies import StudyView
from phds.sdk.results import NETWORK_ROW
from phds.sdk.results_stats import _num, _p_text, _Plottable


def _display(count: Mapping[str, Any] | None) -> str | None:
    return None if not count else str(count.get("display"))


class SummaryResult(_Plottable):
    """n, missing, mean, variance, SD and quantiles of one numeric variable, pooled and per hospital."""

    analysis = "stats.summary"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        raw = self.raw
        self.variable: str | None = raw.get("variable")
        self.n = int(raw.get("n") or 0)
        self.mean = _num(raw.get("mean"))
        self.variance = _num(raw.get("variance"))
        self.sd = _num(raw.get("sd"))
        self.by_hospital: dict[str, dict[str, Any]] = dict(raw.get("by_hospital") or {})
        self.missing_by_hospital: dict[str, dict[str, Any]] = dict(raw.get("missing_by_hospital") or {})

    def quantiles(self) -> pd.DataFrame:
        """One row per quantile: ``q``, ``value`` (the midpoint), ``lower``, ``upper``, ``max_error``,
        ``withheld``."""
        rows = [
            {
                "q": float(e["q"]),
                "value": _num(e.get("value")),
                "lower": _num(e.get("lower")),
                "upper": _num(e.get("upper")),
                "max_error": _num(e.get("max_error")),
                "withheld": e.get("withheld"),
            }
            for e in self.raw.get("quantiles") or []
        ]
        return pd.DataFrame(rows, columns=["q", "value", "lower", "upper", "max_error", "withheld"])

    def to_frame(self) -> pd.DataFrame:
        """One row per hospital and a ``network total`` row: ``n``, ``missing`` (as released), ``mean``,
        ``sd``."""
        rows = [
            {
                "hospital": h,
                "n": int(s["n"]),
                "missing": _display(self.missing_by_hospital.get(h)),
                "mean": _num(s.get("mean")),
                "sd": _num(s.get("sd")),
            }
            for h, s in self.by_hospital.items()
        ]
        missing = [m.get("value") for m in self.missing_by_hospital.values()]
        known = [int(m) for m in missing if m is not None]
        total = str(sum(known)) if missing and len(known) == len(missing) else None
        rows.append(
            {"hospital": NETWORK_ROW, "n": self.n, "missing": total, "mean": self.mean, "sd": self.sd}
        )
        return pd.DataFrame(rows, columns=["hospital", "n", "missing", "mean", "sd"])

    def summary(self) -> str:
        """The pooled statistics, the quantiles with their guaranteed bounds, and each hospital's."""
        lines = [
            self._header(),
            "",
            f"{self.variable}: n = {self.n}, mean = {self.mean:.6g}, SD = {self.sd:.6g},"
            f" variance = {self.variance:.6g}",
        ]
        for q in self.quantiles().to_dict("records"):
            if q["withheld"]:
                lines.append(f"  Q({q['q']:g}): withheld ({q['withheld']})")
            else:
                lines.append(
                    f"  Q({q['q']:g}) = {q['value']:.6g}   (lies in ({q['lower']:.6g}, {q['upper']:.6g}])"
                )
        lines += ["", self.to_frame().to_string(index=False)]
        lines += [f"Note: {note}" for note in self.raw.get("notes") or []]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class TableResult(_Plottable):
    """A one- or two-way contingency table, pooled and per hospital, with a Pearson chi-square test."""

    analysis = "stats.table"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        raw = self.raw
        self.rows: str = str(raw.get("rows"))
        self.columns: str | None = raw.get("columns")
        self.row_levels: list[str] = [str(v) for v in raw.get("row_levels") or []]
        self.column_levels: list[str] = [str(v) for v in raw.get("column_levels") or []]
        self.cells: list[dict[str, Any]] = list(raw.get("cells") or [])
        self.chi_square: dict[str, Any] | None = raw.get("chi_square")
        self.hospitals: list[str] = sorted({h for c in self.cells for h in c.get("by_hospital") or {}})

    def _grid(self, value: str, hospital: str | None) -> pd.DataFrame:
        columns = self.column_levels or ["n"]
        grid = pd.DataFrame(index=pd.Index(self.row_levels, name=self.rows), columns=columns, dtype=object)
        for cell in self.cells:
            source = cell if hospital is None else (cell.get("by_hospital") or {}).get(hospital)
            column = str(cell.get("column", "n")) if self.columns else "n"
            if source is not None:
                grid.loc[str(cell["row"]), column] = source.get(value)
        grid.columns.name = self.columns
        return grid

    def to_frame(self, hospital: str | None = None) -> pd.DataFrame:
        """The pooled table (or *hospital*'s) as released: ``"42"``, ``"<5"``, or ``"40–44"`` intervals."""
        return self._grid("display", hospital)

    def counts(self, hospital: str | None = None, bound: str = "lower") -> pd.DataFrame:
        """The table's numbers: the ``lower`` or ``upper`` bound of every cell (exact cells: the count)."""
        if bound not in ("lower", "upper"):
            raise ValueError("bound is 'lower' or 'upper'")
        return self._grid(bound, hospital).astype("Int64")

    def summary(self) -> str:
        """The pooled table, each hospital's, and the chi-square test (or why it was refused)."""
        what = f"{self.rows} × {self.columns}" if self.columns else self.rows
        lines = [self._header(), "", f"{what}, all hospitals:", self.to_frame().to_string(), ""]
        for hospital in self.hospitals:
            lines += [f"{hospital}:", self.to_frame(hospital).to_string(), ""]
        chi = self.chi_square
        if chi and chi.get("statistic") is not None:
            lines.append(
                f"Pearson's chi-squared = {_num(chi['statistic']):.6g}, df = {chi.get('df')},"
                f" p-value = {_p_text(_num(chi.get('p_value')))}"
            )
            if chi.get("warning"):
                lines.append(f"  warning: {chi['warning']}")
        elif chi:
            why = chi.get("refused") or chi.get("reason") or chi.get("warning") or "not computed"
            lines.append(f"No chi-square test: {why}")
        lines += [f"Note: {note}" for note in self.raw.get("notes") or []]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class CharacterisationResult(_Plottable):
    """A "Table 1" of one or more cohorts, per hospital and pooled, with SMDs when two are compared.

    Rendered by :mod:`phds.analyses.characterisation_render` (the analysis's own renderer), so the SDK,
    the CLI and the analysis's documentation show the same table."""

    analysis = "stats.characterisation"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        raw = self.raw
        self.cohorts: list[str] = [str(c) for c in raw.get("cohorts") or []]
        self.hospitals: list[str] = [str(h) for h in raw.get("hospitals") or []]
        self.compare: list[str] | None = raw.get("compare")
        self.n: dict[str, dict[str, Any]] = dict(raw.get("n") or {})
        self.variables: list[dict[str, Any]] = list(raw.get("variables") or [])

    def to_frame(self, hospitals: bool = True, digits: int = 2) -> pd.DataFrame:
        """Table 1 as display strings: index (variable, statistic or level); columns (cohort, site), the
        sites being each hospital (with *hospitals*) and ``Pooled``; then ``SMD`` when two are compared."""
        from phds.analyses.characterisation_render import table_one

        return table_one(self.raw, hospitals=hospitals, digits=digits)

    def to_markdown(self, hospitals: bool = True) -> str:
        """Table 1 as a GitHub-flavoured Markdown table."""
        from phds.analyses.characterisation_render import to_markdown

        return to_markdown(self.to_frame(hospitals))

    def to_csv(self, path: str | Path | None = None, hospitals: bool = True) -> str:
        """Table 1 as CSV text with the paper's row labels; also written to *path* when given."""
        from phds.analyses.characterisation_render import to_csv

        text = to_csv(self.to_frame(hospitals))
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_html(self, hospitals: bool = True) -> str:
        """Table 1 as an HTML table with a two-level header and a caption."""
        from phds.analyses.characterisation_render import to_html

        return to_html(self.to_frame(hospitals))

    def summary(self) -> str:
        """The pooled Table 1 as text (``to_frame()`` has the hospitals' columns too)."""
        from phds.analyses.characterisation_render import _flat

        notes = [f"Note: {note}" for note in self.raw.get("notes") or []]
        table = _flat(self.to_frame(hospitals=False)).to_string()
        return "\n".join([self._header(), "", table, *notes])

    def __str__(self) -> str:
        return self.summary()
