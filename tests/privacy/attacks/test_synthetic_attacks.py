"""Family: synthetic data. A generator's marginals leave a node only with DP noise, spent on the ledger.

Each test names the attack it stops: a requester asking for exact marginals (no ``dp:`` block, or an
analysis that hands the gate marginals outside DP), a 1-row table (a "synthetic" copy of one child),
and secure aggregation as a way round the node's own noise. The gate is the real one over a real node
database; the rows are DataSHIELD's CNSIM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from attack_kit import cnsim_path, load_csv

from phds.analyses import get_analysis
from phds.analyses.base import check_privacy_options
from phds.analyses.context import DpInForce
from phds.analyses.testing import run_federation
from phds.errors import DisclosureRefused, InputError
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.gate import Gate, GateContext
from phds.node.policy import DifferentialPrivacy, Policy, PolicyRule
from phds.privacy.aggregates import MarginalsAggregate, Persons
from phds.privacy.synthetic_dp import ColumnBins
from phds.protocol.releases import ReleasedMarginals

BINS = [ColumnBins("GENDER", categories=("0", "1")), ColumnBins("DIS_DIAB", categories=("0", "1"))]
PARAMS: dict[str, Any] = {
    "table": {"dataset": "cnsim"},
    "columns": [{"name": "GENDER", "categories": [0, 1]}, {"name": "DIS_DIAB", "categories": [0, 1]}],
    "rows": 50,
}


def _gate(tmp_path: Path) -> Gate:
    policy = Policy(rules=[PolicyRule(name="all", analyses=["*"], approval="auto")], dp=DifferentialPrivacy())
    return Gate(policy, AuditLog(NodeDatabase(tmp_path / "node.db")))


def _aggregate(rows: int) -> MarginalsAggregate:
    frame = load_csv(cnsim_path(1)).head(rows)[["GENDER", "DIS_DIAB"]].reset_index(drop=True)
    return MarginalsAggregate("generator", Persons.of("tabular:cnsim", list(range(rows))), frame, BINS)


def _errors(gate: Gate) -> list[str]:
    return [str(e.payload.get("reason")) for e in gate.audit.entries() if e.kind == "error"]


def test_exact_marginals_are_refused_by_the_gate_and_audited(tmp_path: Path) -> None:
    """Attack: an analysis (or a changed one) hands the gate a table's marginals with no DP in force,
    which would publish its cross-tabulations exactly. The marginals rule refuses it, whatever the
    analysis does, and the refusal is an audit entry."""
    gate = _gate(tmp_path)
    ctx = GateContext("s1", "t1", "org", "synthetic.mst", dp=None)
    with pytest.raises(DisclosureRefused, match="only under differential privacy"):
        gate.release(ctx, [_aggregate(200)])
    assert any("only under differential privacy" in e for e in _errors(gate))


def test_a_one_row_table_is_refused_before_any_spend(tmp_path: Path) -> None:
    """Attack: a synthetic dataset of a 1-row table (one child's record, reproduced as "synthetic").
    The gate refuses a generator of fewer than k rows before OpenDP runs, so nothing is spent."""
    gate = _gate(tmp_path)
    ctx = GateContext("s1", "t1", "org", "synthetic.mst", dp=DpInForce(rho=0.5, delta=1e-6))
    with pytest.raises(DisclosureRefused, match="fewer than"):
        gate.release(ctx, [_aggregate(1)])
    assert gate.ledger.line("tabular:cnsim", "org").spent_rho == 0


def test_the_study_without_dp_gets_nothing(tmp_path: Path) -> None:
    """Attack: the requester leaves out the dp: block. Every node refuses; no row, no marginal."""
    run = run_federation("synthetic.mst", PARAMS, {"h1": {"cnsim": cnsim_path(1)}}, folder=tmp_path)
    assert run.result is None and "differential privacy" in run.refused["h1"]
    assert not run.releases.get("h1")


def test_a_synthetic_dataset_bought_as_a_cheaper_service_is_refused(tmp_path: Path) -> None:
    """Billing side door: the same release bought as a free-allowance feasibility query. The node, whose
    signed receipt names the service type, refuses before reading a row."""
    run = run_federation(
        "synthetic.mst",
        PARAMS,
        {"h1": {"cnsim": cnsim_path(1)}},
        folder=tmp_path,
        dp={"epsilon": 1.0},
        service_type="feasibility",
    )
    assert run.result is None and "synthetic_dataset" in run.refused["h1"]


def test_secure_aggregation_is_no_way_round_the_noise() -> None:
    """Attack: ask for the marginals under secure aggregation, hoping for un-noised sums. Refused."""
    with pytest.raises(InputError, match="secure aggregation"):
        check_privacy_options(get_analysis("synthetic.mst"), dp=True, secure_aggregation=True)


def test_the_wire_model_refuses_marginals_without_a_dp_statement() -> None:
    """A recipient (hub, SDK, verifier) never accepts marginals that say nothing of their noise."""
    with pytest.raises(ValueError, match="dp"):
        ReleasedMarginals.model_validate(
            {
                "algorithm": "mst",
                "columns": [{"name": "a", "labels": ["0"]}],
                "marginals": [{"clique": ["a"], "values": [3.0], "stddev": 1.0}],
            }
        )


def test_params_refuse_undeclared_bins() -> None:
    """The domain must not depend on the data: every column declares categories or cuts."""
    bad = {**PARAMS, "columns": [{"name": "GENDER"}, {"name": "DIS_DIAB", "categories": [0, 1]}]}
    with pytest.raises(InputError):
        get_analysis("synthetic.mst").parse_params(bad)
