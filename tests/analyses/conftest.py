"""In-process hospitals for analysis tests: real node runtimes (policy, gate, overlap guard, audit log).

Studies run through :class:`phds.analyses.testing.Federation`, the same round loop analysis authors use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from phds.analyses import Analysis
from phds.analyses.context import DictMemory, LocalContext, RequesterInfo, Thresholds
from phds.analyses.testing import Federation, FederationRun, everything_auto, node_runtime
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.executor import NodeRuntime
from phds.node.gate import Gate, GateContext
from phds.node.policy import Policy
from phds.sources import NodeData


@dataclass
class Hospital:
    """One hospital: a real node runtime without an agent."""

    name: str
    runtime: NodeRuntime
    memories: dict[str, DictMemory] = field(default_factory=dict)

    @property
    def data(self) -> NodeData:
        return self.runtime.data

    @property
    def gate(self) -> Gate:
        return self.runtime.gate

    @property
    def audit(self) -> AuditLog:
        return self.runtime.audit

    @property
    def db(self) -> NodeDatabase:
        return self.runtime.db

    def answer(
        self,
        analysis: Analysis[Any],
        params: Any,
        round_no: int,
        state: Mapping[str, Any],
        *,
        study_id: str = "study-1",
        requester: str = "acme",
    ) -> dict[str, Any]:
        """One round of *analysis* at this hospital: its local step, then the real gate (overlap guard
        and audit log included), without the executor's round bookkeeping, so a test may hand it any
        round and state. The gate's refusal propagates as :class:`~phds.errors.DisclosureRefused`."""
        policy = self.runtime.policy
        ctx = LocalContext(
            data=self.data,
            round_no=round_no,
            state=state,
            thresholds=Thresholds(
                policy.min_cell_count,
                policy.nfilter_glm,
                policy.effective_nfilter_tab,
                policy.release_zero_counts,
            ),
            requester=RequesterInfo(requester, "academic"),
            study_id=study_id,
            memory=self.memories.setdefault(f"study:{study_id}", DictMemory()),
            requester_memory=self.memories.setdefault(f"requester:{requester}", DictMemory()),
        )
        step = analysis.local(ctx, params)
        task_id = f"{study_id}-{self.name}-r{round_no}"
        gate_ctx = GateContext(
            study_id, task_id, requester, analysis.name, "academic", analysis.version, round_no
        )
        return self.gate.release(gate_ctx, step.aggregates).payload


def run_rounds(
    analysis: Analysis[Any], raw_params: dict[str, Any], hospitals: list[Hospital]
) -> FederationRun:
    """Drive an analysis through its rounds as the hub's runner does; fail the test if it does not finish."""
    run = Federation(runtimes={h.name: h.runtime for h in hospitals}).run(analysis, raw_params)
    if run.result is None:
        raise AssertionError(f"the study did not finish: {run.error}; refused: {run.refused}")
    return run


def run_until_refused(
    analysis: Analysis[Any], raw_params: dict[str, Any], hospitals: list[Hospital]
) -> FederationRun:
    """Drive an analysis through its rounds without asserting: for tests that expect refusals
    (``run.refused`` names each refusing hospital with its reason; ``run.result`` may be None)."""
    return Federation(runtimes={h.name: h.runtime for h in hospitals}).run(analysis, raw_params)


@pytest.fixture
def make_hospital(tmp_path: Path) -> Iterator[Any]:
    """Build hospitals with the network default policy (minimum cell count 5) and auto-approval."""
    made: list[Hospital] = []

    def make(
        name: str,
        *,
        omop: dict[str, str] | None = None,
        tabular: dict[str, Path] | None = None,
        min_cell_count: int = 5,
        policy: Policy | None = None,
    ) -> Hospital:
        chosen = policy or everything_auto().model_copy(update={"min_cell_count": min_cell_count})
        runtime = node_runtime(name, tmp_path / name, tabular=tabular, omop=omop, policy=chosen)
        hospital = Hospital(name, runtime)
        made.append(hospital)
        return hospital

    yield make
    for hospital in made:
        hospital.runtime.close()
