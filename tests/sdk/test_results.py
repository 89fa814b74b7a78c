"""Typed results from realistic result JSON: real gates release, the real analyses combine."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from phds.analyses.base import Final, NextRound
from phds.analyses.feasibility import FeasibilityCount, FeasibilityParams
from phds.analyses.mean_variance import MeanVariance, MeanVarianceParams
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.gate import Gate, GateContext
from phds.node.policy import Policy
from phds.privacy.aggregates import Aggregate, BreakdownAggregate, CountAggregate, Persons, SumAggregate
from phds.protocol.studies import StudyView
from phds.sdk import FeasibilityResult, GenericResult, MeanVarianceResult
from phds.sdk.result_registry import result_for

COHORT = (Path(__file__).parent / "data" / "asthma-salbutamol.yaml").read_text()
NOW = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)


class Node:
    """One hospital's real gate on its own state database."""

    def __init__(self, folder: Path, name: str, **policy: Any) -> None:
        self.name = name
        self.gate = Gate(Policy(**policy), AuditLog(NodeDatabase(folder / name / "node.db")))

    def release(self, aggregates: list[Aggregate], round_no: int = 1) -> dict[str, Any]:
        ctx = GateContext("s-1", f"t-{self.name}-{round_no}", "acme-pharma", "analysis@1")
        return self.gate.release(ctx, aggregates).payload

    def close(self) -> None:
        self.gate.audit.db.close()


def _persons(n: int, sex: dict[str, int]) -> list[Aggregate]:
    """A cohort of *n* persons of the OMOP dataset ``cdm``, labelled by sex as *sex* counts them."""
    persons = Persons.of("omop:cdm", np.arange(n))
    labels = np.array([level for level, count in sex.items() for _ in range(count)])
    return [CountAggregate("persons", persons), BreakdownAggregate("by_sex", persons, labels, list(sex))]


def _values(universe: str, values: list[float]) -> tuple[Persons, np.ndarray]:
    return Persons.of(universe, np.arange(len(values))), np.asarray(values, dtype=float)


def _view(analysis: str, params: dict[str, Any], result: dict[str, Any], states: dict[str, str]) -> StudyView:
    finished = all(s == "answered" for s in states.values())
    return StudyView.model_validate(
        {
            "id": "s-1",
            "spec": {
                "title": "Asthma and salbutamol in children 2-11",
                "purpose": "Feasibility",
                "organisation": "acme-pharma",
                "service_type": "feasibility",
                "hospitals": list(states),
                "analysis": {"name": analysis, "params": params},
            },
            "state": "completed" if finished else "partially_completed",
            "round": 1,
            "version": 7,
            "hospitals": [
                {
                    "hospital": h,
                    "state": s,
                    "reason": None if s == "answered" else "policy",
                    "updated_at": NOW,
                }
                for h, s in states.items()
            ],
            "submitted_at": NOW,
            "finished_at": NOW,
            "result": result,
        }
    )


@pytest.fixture
def feasibility(tmp_path: Path) -> FeasibilityResult:
    """Three hospitals answer (one with a small count), one declines."""
    nodes = [Node(tmp_path, h) for h in ("north-general", "central-tertiary", "west-respiratory")]
    counts = {
        "north-general": (42, {"female": 20, "male": 22}),
        "central-tertiary": (3, {"female": 1, "male": 2}),
        "west-respiratory": (17, {"female": 9, "male": 8}),
    }
    released = {node.name: node.release(_persons(*counts[node.name])) for node in nodes}
    for node in nodes:
        node.close()
    params = {"cohort": COHORT, "breakdowns": ["sex"]}
    final = FeasibilityCount().combine(FeasibilityParams.model_validate(params), 1, {}, released)
    assert isinstance(final, Final)
    result = {**final.result, "attribution": {"answered": sorted(released), "declined": ["east-children"]}}
    states = dict.fromkeys(released, "answered") | {"east-children": "declined"}
    typed = result_for(_view("feasibility.count", params, result, states))
    assert isinstance(typed, FeasibilityResult)
    return typed


def test_network_total_is_an_interval_when_a_count_was_suppressed(feasibility: FeasibilityResult) -> None:
    assert (feasibility.total.lower, feasibility.total.upper, feasibility.total.exact) == (60, 63, False)
    assert feasibility.attribution.declined == ("east-children",)
    assert len(feasibility.attribution.answered) == 3


def test_frame_has_a_row_per_hospital_and_a_network_total(feasibility: FeasibilityResult) -> None:
    frame = feasibility.to_frame().set_index("hospital")
    assert list(frame.index) == [
        "north-general",
        "central-tertiary",
        "west-respiratory",
        "east-children",
        "network total",
    ]
    assert frame.loc["north-general", "persons"] == "42"
    assert frame.loc["central-tertiary", "persons"] == "<5"
    assert (
        frame.loc["central-tertiary", "persons_lower"],
        frame.loc["central-tertiary", "persons_upper"],
    ) == (
        1,
        4,
    )
    assert frame.loc["east-children", "state"] == "declined"
    assert pd.isna(frame.loc["east-children", "persons_lower"])
    assert frame.loc["network total", "persons_lower"] == 60
    assert frame.loc["network total", "persons_upper"] == 63
    # cells: the small hospital's sex cells never appear exactly
    assert {"sex:female", "sex:male"} <= set(frame.columns)
    assert frame.loc["north-general", "sex:female"] == "20"
    assert not str(frame.loc["central-tertiary", "sex:female"]).isdigit()
    assert frame.loc["network total", "sex:female"] == feasibility.breakdowns["sex"]["female"].display


def test_breakdown_frame_and_unknown_dimension(feasibility: FeasibilityResult) -> None:
    sex = feasibility.breakdown("sex").set_index("cell")
    assert set(sex.index) == {"female", "male"}
    assert not sex["exact"].any()  # every network cell includes a suppressed contribution
    # 20 + 9 exact, plus central-tertiary's hidden cell: 0..4, as its total is at most 4 and, in a table
    # with a small cell, zeros are suppressed too (so neither hidden cell is known to be ≥ 1)
    assert (sex.loc["female", "lower"], sex.loc["female", "upper"]) == (29, 33)
    with pytest.raises(KeyError, match="no breakdown 'age_group'"):
        feasibility.breakdown("age_group")


def test_feasibility_str_is_readable(feasibility: FeasibilityResult) -> None:
    text = str(feasibility)
    assert "Asthma and salbutamol in children 2-11" in text
    assert "declined: east-children" in text
    assert "network total" in text and "<5" in text


def _mean_variance(tmp_path: Path, data: dict[str, list[float]]) -> MeanVarianceResult:
    nodes = {h: Node(tmp_path, h) for h in data}
    params = MeanVarianceParams(dataset="registry", variable="fev1")
    analysis = MeanVariance()
    columns = {h: _values("tabular:registry", x) for h, x in data.items()}
    first = {
        h: node.release([SumAggregate("moments", persons, {"sum": x}, variable=x),
                         CountAggregate("missing", Persons.of("tabular:registry", []))])
        for h, node in nodes.items()
        for persons, x in [columns[h]]
    }  # fmt: skip
    step = analysis.combine(params, 1, {}, first)
    assert isinstance(step, NextRound)
    mean = float(step.state["mean"])
    second = {
        h: node.release([SumAggregate("moments", persons, {"ssd": (x - mean) ** 2}, variable=x)], 2)
        for h, node in nodes.items()
        for persons, x in [columns[h]]
    }
    final = analysis.combine(params, 2, step.state, second)
    assert isinstance(final, Final)
    for node in nodes.values():
        node.close()
    result = {**final.result, "attribution": {"answered": sorted(data)}}
    states = dict.fromkeys(data, "answered")
    typed = result_for(_view("stats.mean_variance", params.model_dump(), result, states))
    assert isinstance(typed, MeanVarianceResult)
    return typed


def test_mean_variance_matches_the_pooled_statistics(tmp_path: Path) -> None:
    # more distinct values than the policy's discrete_max_levels (10): a few-valued variable is gated
    # as the count it is, and each of its values would need k rows
    data = {
        "north-general": [1.2, 1.5, 1.9, 2.2, 1.1, 1.7, 1.35, 2.05, 1.62, 1.88, 2.31, 1.44],
        "central-tertiary": [2.5, 2.1, 1.8, 2.9, 2.4, 2.25, 1.95, 2.62, 2.77, 2.18, 2.43],
    }
    result = _mean_variance(tmp_path, data)
    pooled = data["north-general"] + data["central-tertiary"]
    assert result.n == 23
    assert result.mean == pytest.approx(statistics.fmean(pooled))
    assert result.variance == pytest.approx(statistics.variance(pooled))
    assert result.sd == pytest.approx(statistics.stdev(pooled))
    assert result.n_by_hospital == {"north-general": 12, "central-tertiary": 11}
    frame = result.to_frame().set_index("hospital")
    assert frame.loc["network total", "n"] == 23
    text = str(result)
    assert "registry.fev1: n=23" in text and "central-tertiary: 11" in text


def test_unknown_analyses_fall_back_to_the_generic_result() -> None:
    view = _view("system.noop", {}, {"answered": ["north-general"]}, {"north-general": "answered"})
    result = result_for(view)
    assert isinstance(result, GenericResult)
    assert result.attribution.answered == ("north-general",)
    assert result.to_dict() == {"answered": ["north-general"]}
    assert "system.noop" in str(result)


def test_a_study_without_a_result_has_no_typed_result() -> None:
    view = _view("system.noop", {}, {}, {"north-general": "answered"}).model_copy(update={"result": None})
    with pytest.raises(ValueError, match="has no result"):
        result_for(view)
