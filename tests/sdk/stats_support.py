"""Real statistics results for the SDK's tests: the real analyses run over in-process hospitals (real
gates, real audit logs) on DataSHIELD's CNSIM split and lifelines' rossi, then finished as the hub does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from phds.analyses.characterisation import Characterisation
from phds.analyses.contingency import ContingencyTable
from phds.analyses.cox import CoxPH
from phds.analyses.glm import Glm
from phds.analyses.km import KaplanMeier
from phds.analyses.summary import Summary
from phds.analyses.testing import FederationRun, run_federation
from phds.protocol.studies import StudyView
from phds.sdk.result_registry import result_for
from phds.sdk.results import StudyResult

NOW = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
SITES = ("site1", "site2", "site3")
GLM_FORMULA = "DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS + LAB_HDL"
ANALYSES = {
    "stats.glm": Glm,
    "survival.cox": CoxPH,
    "survival.km": KaplanMeier,
    "stats.summary": Summary,
    "stats.table": ContingencyTable,
    "stats.characterisation": Characterisation,
}


def cnsim_paths(shared_data: Path) -> list[Path]:
    return [shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{i}.csv" for i in (1, 2, 3)]


def pooled_cnsim(shared_data: Path) -> pd.DataFrame:
    frames = [pd.read_csv(p).rename(columns=str.strip) for p in cnsim_paths(shared_data)]
    return pd.concat(frames, ignore_index=True)


def rossi(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "survival" / "lifelines" / "rossi.csv")


def finished_view(
    analysis: str,
    params: dict[str, Any],
    result: dict[str, Any],
    notes: list[str],
    sites: tuple[str, ...] = SITES,
) -> StudyView:
    """The final StudyView the hub returns: the result, its notes and attribution (every site answered)."""
    return StudyView.model_validate(
        {
            "id": f"s-{analysis.replace('.', '-')}",
            "spec": {
                "title": f"{analysis} on real data",
                "purpose": "SDK tests",
                "organisation": "acme-pharma",
                "service_type": "analytical_study",
                "hospitals": list(sites),
                "analysis": {"name": analysis, "params": params},
            },
            "state": "completed",
            "version": 7,
            "round": 2,
            "hospitals": [{"hospital": h, "state": "answered", "updated_at": NOW} for h in sites],
            "result": {
                **result,
                "notes": notes,
                "answered": list(sites),
                "declined": [],
                "refused": [],
                "failed": [],
                "timed_out": [],
            },
            "submitted_at": NOW,
            "finished_at": NOW,
        }
    )


class Sites:
    """Three in-process hospitals, each with CNSIM<i>.csv as ``cnsim`` and a third of rossi as ``rossi``.

    Each statistic runs on fresh node runtimes over the same files: the node's overlap guard remembers
    every person set released from a dataset, so several different analyses on one set of nodes may
    legitimately be refused, and these results are compared with references.
    """

    def __init__(self, folder: Path, shared_data: Path) -> None:
        self.folder = folder
        self.tables: dict[str, dict[str, Path]] = {}
        data = rossi(shared_data)
        for i, (name, path) in enumerate(zip(SITES, cnsim_paths(shared_data), strict=True)):
            part = folder / f"rossi{i}.csv"
            data.iloc[i::3].to_csv(part, index=False)
            self.tables[name] = {"cnsim": path, "rossi": part}
        self.runs = 0

    def result(self, analysis: str, params: dict[str, Any]) -> StudyResult:
        self.runs += 1
        final = finished(analysis, params, self.tables, self.folder / f"run{self.runs}")
        return result_for(finished_view(analysis, params, final.result or {}, final.notes))

    def close(self) -> None:
        """Nothing stays open: each run closes its node runtimes."""


@pytest.fixture(scope="session")
def sites(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Sites]:
    made = Sites(tmp_path_factory.mktemp("sites"), shared_data)
    yield made
    made.close()


PARAMS: dict[str, dict[str, Any]] = {
    "stats.glm": {"table": {"dataset": "cnsim"}, "formula": GLM_FORMULA, "family": "binomial"},
    "survival.cox": {"table": {"dataset": "rossi"}, "duration": "week", "event": "arrest",
                     # not prio: at the first hospital one row's leverage passes the node's bound
                     "covariates": ["fin", "age", "wexp"]},
    "survival.km": {"table": {"dataset": "rossi"}, "duration": "week", "event": "arrest", "time_width": 4},
    "survival.km:group": {"table": {"dataset": "rossi"}, "duration": "week", "event": "arrest",
                          "group": "fin", "time_width": 4},
    "stats.summary": {"table": {"dataset": "cnsim"}, "variable": "LAB_HDL", "quantiles": [0.25, 0.5, 0.75]},
    "stats.table": {"table": {"dataset": "cnsim"}, "rows": "PM_BMI_CATEGORICAL", "columns": "GENDER"},
    "stats.characterisation": {
        "cohorts": [{"label": "girls", "table": {"dataset": "cnsim"}, "where": {"GENDER": 1}},
                    {"label": "boys", "table": {"dataset": "cnsim"}, "where": {"GENDER": 0}}],
        "numeric": ["LAB_HDL"], "categorical": ["PM_BMI_CATEGORICAL", "DIS_DIAB"],
    },
}  # fmt: skip


@pytest.fixture(scope="session")
def results(sites: Sites) -> dict[str, StudyResult]:
    """Every statistic's typed result, computed once per test session."""
    return {key: sites.result(key.split(":")[0], params) for key, params in PARAMS.items()}


def finished(
    analysis: str, params: dict[str, Any], tables: dict[str, dict[str, Path]], folder: Path
) -> FederationRun:
    """Run *analysis* over fresh node runtimes; fail the test if the study does not finish."""
    run = run_federation(ANALYSES[analysis](), params, tables, folder=folder)
    if run.result is None:
        raise AssertionError(f"the study did not finish: {run.error}; refused: {run.refused}")
    return run


def run_rounds_on(
    analysis: str, params: dict[str, Any], files: list[Path], dataset: str, folder: Path
) -> StudyResult:
    """Run *analysis* over an in-process hospital per file (``site1``, ``site2`` …) serving *dataset*."""
    tables = {f"site{i}": {dataset: path} for i, path in enumerate(files, 1)}
    final = finished(analysis, params, tables, folder)
    names = tuple(tables)
    return result_for(finished_view(analysis, params, final.result or {}, final.notes, names))
