"""A released value and the node's stored answer commit together, so a crash never releases twice."""

from __future__ import annotations

import pytest

from phds.node.audit import AuditLog
from phds.node.gate import Gate, GateContext, GateResult
from phds.node.policy import Policy
from phds.privacy.aggregates import CountAggregate, Persons


class Crash(Exception):
    """Stands for the process dying after the release was computed but before it was stored."""


def test_a_failure_while_storing_the_answer_rolls_the_release_back(audit: AuditLog) -> None:
    gate = Gate(Policy(), audit)
    ctx = GateContext("study-1", "task-1", "acme", "feasibility.count")

    def store_then_crash(result: GateResult) -> None:
        assert result.payload["values"]["persons"]["value"] == 42
        raise Crash

    with pytest.raises(Crash):
        gate.release(
            ctx, [CountAggregate("persons", Persons.of("omop:cdm", range(42)))], on_release=store_then_crash
        )
    assert [e.kind for e in audit.entries()] == []
    assert audit.verify().ok

    stored: list[GateResult] = []
    result = gate.release(
        ctx, [CountAggregate("persons", Persons.of("omop:cdm", range(42)))], on_release=stored.append
    )
    assert stored == [result]
    assert [e.kind for e in audit.entries()] == ["value_released"]
    assert audit.entries()[0].hash == result.audit_hash
