"""Typed study results: the hub's result JSON as objects and pandas DataFrames.

:func:`~phds.sdk.result_registry.result_for` picks the class by the study's analysis name:
``feasibility.count`` → :class:`FeasibilityResult`, ``stats.mean_variance`` →
:class:`MeanVarianceResult`, anything else → :class:`GenericResult`. Every result keeps the raw JSON
(``.raw``), the study it belongs to (``.study``) and the runner's attribution (``.attribution``): which
hospitals answered, declined, refused, failed or timed out. Counts are shown as the gates released them:
a suppressed count is ``"<5"`` and a network total that includes one is an interval."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from phds.protocol.privacy import DpBudget
from phds.protocol.releases import NetworkTotal
from phds.protocol.studies import StudyView

ATTRIBUTION = ("answered", "declined", "refused", "failed", "timed_out")
NETWORK_ROW = "network total"


@dataclass(frozen=True)
class Attribution:
    """Which target hospitals answered, and which did not and how."""

    answered: tuple[str, ...] = ()
    declined: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    timed_out: tuple[str, ...] = ()

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Attribution:
        source = result.get("attribution") if isinstance(result.get("attribution"), Mapping) else result
        assert isinstance(source, Mapping)
        return cls(**{k: tuple(str(h) for h in source.get(k) or ()) for k in ATTRIBUTION})

    def __str__(self) -> str:
        parts = [f"{k.replace('_', ' ')}: {', '.join(v)}" for k in ATTRIBUTION if (v := getattr(self, k))]
        return "; ".join(parts) or "no hospital answered"


@dataclass(frozen=True)
class Total:
    """A network count: exact, or the interval ``[lower, upper]`` when a hospital's count was suppressed."""

    lower: int
    upper: int
    exact: bool
    display: str
    estimate: int | None = None  # under differential privacy: the noisy total; lower..upper its 95% CI
    ci95: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Total:
        """Parse a network total with its one wire model, :class:`~phds.protocol.releases.NetworkTotal`."""
        total = NetworkTotal.model_validate(dict(data))
        return cls(total.lower, total.upper, total.exact, total.display, total.estimate, total.ci95)

    def __str__(self) -> str:
        return self.display


class StudyResult:
    """Base of the typed results: the study, its raw result and the attribution."""

    analysis: ClassVar[str] = ""

    def __init__(self, study: StudyView) -> None:
        if study.result is None:
            raise ValueError(f"study {study.id} has no result")
        self.study = study
        self.raw: dict[str, Any] = study.result
        self.attribution = Attribution.from_result(study.result)
        self.dp_budget: dict[str, list[DpBudget]] = {
            h: [DpBudget.model_validate(b) for b in lines]
            for h, lines in (self.raw.get("dp_budget") or {}).items()
        }

    @property
    def study_id(self) -> str:
        return self.study.id

    def to_dict(self) -> dict[str, Any]:
        """The result as the hub sent it."""
        return dict(self.raw)

    def _header(self) -> str:
        spec = self.study.spec
        header = (
            f"{spec.title}\nstudy {self.study.id} · {spec.analysis.name} · {self.study.state.value}\n"
            f"{self.attribution}"
        )
        if self.dp_budget:
            header += f"\n{self.dp_summary()}"
        return header

    def dp_summary(self) -> str:
        """One line on differential privacy: values are noisy, and the budget each hospital has left."""
        if not self.dp_budget:
            return "exact answers (no differential privacy)"
        left = "; ".join(
            f"{h} {b.dataset} ε {b.remaining_epsilon:.2f}"
            for h, lines in self.dp_budget.items()
            for b in lines
        )
        return f"differential privacy: values are noisy, shown ± their 95% interval; budget left: {left}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} study={self.study.id!r} state={self.study.state.value!r}>"


class FeasibilityResult(StudyResult):
    """Persons matching the cohort at each hospital and in the network, with breakdowns."""

    analysis = "feasibility.count"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        self.total = Total.from_json(self.raw["total"])
        self.hospitals: dict[str, Any] = dict(self.raw.get("hospitals") or {})
        self.breakdowns: dict[str, dict[str, Total]] = {
            dim: {cell: Total.from_json(t) for cell, t in cells.items()}
            for dim, cells in (self.raw.get("breakdowns") or {}).items()
        }

    def _cell_columns(self) -> list[tuple[str, str]]:
        columns = [(dim, cell) for dim, cells in self.breakdowns.items() for cell in cells]
        for entry in self.hospitals.values():  # cells a hospital released that the network lacks
            for dim, table in (entry.get("breakdowns") or {}).items():
                columns += [(dim, c) for c in table if (dim, c) not in columns]
        return columns

    def to_frame(self) -> pd.DataFrame:
        """One row per target hospital and a ``network total`` row.

        Columns: ``hospital``, ``state``, ``persons`` (as released: ``"42"``, ``"<5"``), ``persons_lower``,
        ``persons_upper`` and one column per breakdown cell (``sex:female``, ``age_group:child`` …)
        holding the released display. Hospitals that did not answer have empty counts.
        """
        states = {h.hospital: h.state.value for h in self.study.hospitals}
        order = list(self.study.spec.hospitals) + sorted(set(self.hospitals) - set(self.study.spec.hospitals))
        cells = self._cell_columns()
        rows: list[dict[str, Any]] = []
        for hospital in order:
            row: dict[str, Any] = {"hospital": hospital, "state": states.get(hospital, "")}
            entry = self.hospitals.get(hospital)
            persons = entry.get("persons") if entry else None
            row["persons"] = str(persons.get("display")) if persons else None
            row["persons_lower"] = persons.get("lower") if persons else None
            row["persons_upper"] = persons.get("upper") if persons else None
            tables = (entry.get("breakdowns") or {}) if entry else {}
            for dim, cell in cells:
                released = tables.get(dim, {}).get(cell)
                row[f"{dim}:{cell}"] = str(released.get("display")) if released else None
            rows.append(row)
        total: dict[str, Any] = {
            "hospital": NETWORK_ROW,
            "state": self.study.state.value,
            "persons": self.total.display,
            "persons_lower": self.total.lower,
            "persons_upper": self.total.upper,
        }
        for dim, cell in cells:
            network = self.breakdowns.get(dim, {}).get(cell)
            total[f"{dim}:{cell}"] = network.display if network else None
        rows.append(total)
        frame = pd.DataFrame(rows)
        for column in ("persons_lower", "persons_upper"):
            frame[column] = frame[column].astype("Int64")
        return frame

    def breakdown(self, dimension: str) -> pd.DataFrame:
        """The network's cells of one breakdown: ``cell``, ``display``, ``lower``, ``upper``, ``exact``."""
        if dimension not in self.breakdowns:
            known = ", ".join(self.breakdowns) or "none"
            raise KeyError(f"no breakdown {dimension!r} in this result (breakdowns: {known})")
        return pd.DataFrame(
            [
                {"cell": c, "display": t.display, "lower": t.lower, "upper": t.upper, "exact": t.exact}
                for c, t in self.breakdowns[dimension].items()
            ]
        )

    def __str__(self) -> str:
        frame = self.to_frame().astype(object)
        frame = frame.where(frame.notna(), "")
        return f"{self._header()}\nnetwork total: {self.total}\n\n{frame.to_string(index=False)}"


class MeanVarianceResult(StudyResult):
    """The pooled mean, sample variance and standard deviation of one variable."""

    analysis = "stats.mean_variance"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        self.n = int(self.raw["n"])
        self.mean = float(self.raw["mean"])
        self.variance: float | None = _maybe_float(self.raw.get("variance"))
        self.sd: float | None = _maybe_float(self.raw.get("sd"))
        by_hospital = self.raw.get("n_by_hospital") or {}
        self.n_by_hospital: dict[str, int] = {h: int(n) for h, n in by_hospital.items()}
        self.variable: str | None = self.raw.get("variable")
        self.dataset: str | None = self.raw.get("dataset")

    def to_frame(self) -> pd.DataFrame:
        """One row per hospital that contributed (``hospital``, ``n``) and a ``network total`` row."""
        rows: list[dict[str, Any]] = [{"hospital": h, "n": n} for h, n in self.n_by_hospital.items()]
        rows.append({"hospital": NETWORK_ROW, "n": self.n})
        return pd.DataFrame(rows)

    def __str__(self) -> str:
        what = f"{self.dataset}.{self.variable}" if self.variable else "variable"
        sd = "n/a" if self.sd is None else f"{self.sd:.6g}"
        variance = "n/a" if self.variance is None else f"{self.variance:.6g}"
        by = ", ".join(f"{h}: {n}" for h, n in self.n_by_hospital.items())
        return (
            f"{self._header()}\n{what}: n={self.n} mean={self.mean:.6g} variance={variance} sd={sd}\n"
            f"n by hospital: {by}"
        )


class GenericResult(StudyResult):
    """Any other analysis: the raw result dictionary, shown as JSON."""

    def __str__(self) -> str:
        import json

        body = {k: v for k, v in self.raw.items() if k not in ATTRIBUTION}
        return f"{self._header()}\n{json.dumps(body, indent=2, sort_keys=True, default=str)}"


def _maybe_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number
