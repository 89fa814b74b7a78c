"""In-process hospitals for analysis tests: real data sources, policy, gate and audit log per hospital."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from phds.analyses import Analysis, Final, NextRound
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.gate import Gate, GateContext
from phds.node.policy import Policy
from phds.node.sources import NodeData


@dataclass
class Hospital:
    """One hospital's analysis-relevant parts, without the network."""

    name: str
    data: NodeData
    gate: Gate
    audit: AuditLog
    db: NodeDatabase

    def answer(self, analysis: Analysis[Any], params: Any, round_no: int, state: Mapping[str, Any]) -> Any:
        step = analysis.local(self.data, params, round_no, state)
        ctx = GateContext("study-1", f"{self.name}-r{round_no}", "acme", analysis.name)
        return self.gate.release(ctx, step.aggregates).payload


def run_rounds(analysis: Analysis[Any], raw_params: dict[str, Any], hospitals: list[Hospital]) -> Final:
    """Drive an analysis through its rounds as the hub's runner does, over in-process hospitals."""
    params = analysis.parse_params(raw_params)
    analysis.check_at_hub(params)
    state: Mapping[str, Any] = {}
    answering = hospitals
    for round_no in range(1, 50):
        released = {h.name: h.answer(analysis, params, round_no, state) for h in answering}
        outcome = analysis.combine(params, round_no, state, released)
        if isinstance(outcome, Final):
            return outcome
        assert isinstance(outcome, NextRound)
        state = outcome.state
    raise AssertionError("the analysis did not finish in 50 rounds")


@pytest.fixture
def make_hospital(tmp_path: Path) -> Iterator[Any]:
    """Build hospitals with the network default policy (minimum cell count 5)."""
    made: list[Hospital] = []

    def make(
        name: str,
        *,
        omop: dict[str, str] | None = None,
        tabular: dict[str, Path] | None = None,
        min_cell_count: int = 5,
    ) -> Hospital:
        db = NodeDatabase(tmp_path / name / "node.db")
        audit = AuditLog(db)
        policy = Policy(min_cell_count=min_cell_count)
        data = NodeData(omop or {}, tabular or {}, min_cell_count=min_cell_count)
        hospital = Hospital(name, data, Gate(policy, audit), audit, db)
        made.append(hospital)
        return hospital

    yield make
    for hospital in made:
        hospital.data.close()
        hospital.db.close()
