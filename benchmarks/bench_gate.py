"""The privacy engine's cost per release: the gate's chain, node signing, and requester verification.

* **Feasibility task**: one count and three breakdowns (sex, age group, year) of a cohort of N persons.
  *Baseline* is the chain without memory (validate, rules, audit: what a gate must do at the least);
  *full* adds the overlap guard (against a history of earlier releases from the dataset) and query
  budgets. Each release uses a fresh cohort (so the guard cannot take its fast path) drawn from the same
  dataset, as successive studies would.
* **GLM round**: one IRLS release of a 12-column design over N rows: *baseline* without design evidence;
  *first round* with a design the gate has not seen (cross-classification, leverage, weights, dominance,
  and the hub β's admissibility); *later rounds* with the same design, which the gate checked once, and a
  new β checked every round.
* **DP release**: the same feasibility release (without the undeclared year breakdown) under exact rules
  and under differential privacy: the DP step's overhead per release.
* **Signatures**: sealing a release in an Ed25519 envelope at the node and opening it (verifying) at the
  requester, for a feasibility payload and for a 12-parameter GLM payload.

Medians of repeated runs; ``python -m benchmarks.run gate`` writes ``benchmarks/results/gate.json``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import median_seconds, write_result
from phds.analyses.context import DpInForce
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.gate import AuditStep, Gate, GateContext
from phds.node.gate.rules import RulesStep, ValidateStep
from phds.node.policy import Policy
from phds.privacy.aggregates import (
    BreakdownAggregate,
    CountAggregate,
    DesignEvidence,
    ModelAggregate,
    Persons,
    PointEvidence,
)
from phds.trust.envelopes import open_envelope, seal
from phds.trust.keys import KeyPair

UNIVERSE = "omop:cdm"
DATASET = 100_000  # persons at the node
COHORT = 15_000  # persons in one feasibility cohort (the benchmark's N = 5 network has ~9,000 a node)
HISTORY = 30  # earlier releases from the dataset the guard compares with
GLM_ROWS, GLM_COLUMNS = 200_000, 12
REPEATS = 7


def _feasibility(rng: np.random.Generator) -> list[Any]:
    ids = rng.choice(DATASET, COHORT, replace=False)
    persons = Persons(UNIVERSE, ids)
    sex = rng.choice(np.array(["female", "male"]), COHORT)
    age = rng.choice(np.array(["infant (28 d-23 m)", "child (2-11 y)", "adolescent (12-17 y)"]), COHORT)
    year = rng.choice(np.array([str(y) for y in range(2015, 2024)]), COHORT)
    return [
        CountAggregate("persons", persons),
        BreakdownAggregate("by_sex", persons, sex, ["female", "male"]),
        BreakdownAggregate("by_age_group", persons, age, sorted(set(age.tolist()))),
        BreakdownAggregate("by_year", persons, year, sorted(set(year.tolist())), declared=False),
    ]


def _gate_per_release(gate: Gate, rng: np.random.Generator, n: int) -> list[float]:
    runs = []
    for i in range(n):
        aggregates = _feasibility(rng)
        ctx = GateContext(f"s{i}", f"t{i}", f"org{i % 3}", "feasibility.count")
        start = time.perf_counter()
        gate.release(ctx, aggregates)
        runs.append(time.perf_counter() - start)
    return runs


def feasibility(folder: Path) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    results: dict[str, Any] = {}
    for label in ("baseline", "full"):
        db = NodeDatabase(folder / label / "node.db")
        audit = AuditLog(db)
        policy = Policy()
        steps = None if label == "full" else [ValidateStep(), RulesStep(), AuditStep(audit)]
        gate = Gate(policy, audit, steps=steps)
        _gate_per_release(gate, rng, HISTORY)  # the history the guard sees
        runs = _gate_per_release(gate, rng, REPEATS)
        results[label] = {"median_ms": statistics.median(runs) * 1e3, "runs_ms": [r * 1e3 for r in runs]}
        db.close()
    results["added_ms"] = results["full"]["median_ms"] - results["baseline"]["median_ms"]
    return results


def dp_release(folder: Path) -> dict[str, Any]:
    """One feasibility release (a count and two declared breakdowns) with exact rules against the same
    release under differential privacy (OpenDP discrete Gaussian, ε = 1 per study): the DP step's
    overhead per release. Each DP release is fresh (a new cohort), so the ledger's cache never answers."""
    rng = np.random.default_rng(3)
    out: dict[str, Any] = {}
    for label in ("exact", "dp"):
        db = NodeDatabase(folder / f"dp-{label}" / "node.db")
        gate = Gate(Policy(), AuditLog(db))
        runs = []
        for i in range(REPEATS + 1):
            aggregates = [a for a in _feasibility(rng) if a.name != "by_year"]
            dp = DpInForce(rho=0.0244, delta=1e-6) if label == "dp" else None
            ctx = GateContext(f"s{i}", f"t{i}", "org", "feasibility.count", dp=dp)
            start = time.perf_counter()
            gate.release(ctx, aggregates)
            runs.append(time.perf_counter() - start)
        runs = runs[1:]  # the first call builds OpenDP's measurements
        out[label] = {"median_ms": statistics.median(runs) * 1e3, "runs_ms": [r * 1e3 for r in runs]}
        db.close()
    out["added_ms"] = out["dp"]["median_ms"] - out["exact"]["median_ms"]
    out["ratio"] = out["dp"]["median_ms"] / out["exact"]["median_ms"]
    return out


def glm_round(folder: Path) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    x = np.column_stack([np.ones(GLM_ROWS), rng.normal(size=(GLM_ROWS, GLM_COLUMNS - 3)),
                         rng.integers(0, 2, (GLM_ROWS, 2)).astype(float)])  # fmt: skip
    y = (rng.random(GLM_ROWS) < 0.3).astype(float)
    eta = x @ (rng.normal(size=GLM_COLUMNS) * 0.1)
    mu = 1 / (1 + np.exp(-eta))
    persons = Persons("tabular:d", np.arange(GLM_ROWS))
    values = {"r": np.triu(rng.normal(size=(GLM_COLUMNS + 1, GLM_COLUMNS + 1))).tolist(), "deviance": 1.0}
    db = NodeDatabase(folder / "glm" / "node.db")
    gate = Gate(Policy(), AuditLog(db))
    out: dict[str, Any] = {}
    columns = [f"c{j}" for j in range(GLM_COLUMNS)]
    point = PointEvidence(eta, mu * (1 - mu))
    same = DesignEvidence(x, columns, y)
    cases = {
        "baseline": lambda: ModelAggregate("glm", persons, GLM_COLUMNS, values),
        # a first round: a design the gate has not seen, checked in full
        "first_round": lambda: ModelAggregate(
            "glm", persons, GLM_COLUMNS, values, DesignEvidence(x.copy(), columns, y.copy()), point
        ),
        # later IRLS rounds: the same design (checked once), a new β checked every round
        "later_round": lambda: ModelAggregate("glm", persons, GLM_COLUMNS, values, same, point),
    }
    ctx = GateContext("glm", "t", "org", "stats.glm")
    for label, make in cases.items():
        gate.release(ctx, [make()])  # warm-up: the later rounds' design is then known
        median, runs = median_seconds(lambda m=make: gate.release(ctx, [m()]), REPEATS)
        out[label] = {"median_ms": median * 1e3, "runs_ms": [r * 1e3 for r in runs]}
    db.close()
    for label in ("first_round", "later_round"):
        out[f"{label}_added_ms"] = out[label]["median_ms"] - out["baseline"]["median_ms"]
    return out


def signatures() -> dict[str, Any]:
    key = KeyPair.generate()
    pinned = {"h": key.public_key_b64}
    feasibility_payload = {"analysis": "feasibility.count", "min_cell_count": 5, "values": {
        f"by_{d}": {"type": "breakdown", "cells": {str(i): {"value": 100 + i} for i in range(12)}}
        for d in ("sex", "age_group", "year")}, "notes": []}  # fmt: skip
    glm_payload = {"analysis": "stats.glm", "values": {"glm": {"r": np.ones((13, 13)).tolist()}}}
    out: dict[str, Any] = {}
    for label, payload in (("feasibility", feasibility_payload), ("glm", glm_payload)):

        def sealed(p: dict[str, Any] = payload) -> Any:
            return seal(p, key=key, study_id="s", task_id="t", hospital="h", round=1, analysis="a",
                        analysis_version="1", audit_seq=1, audit_hash="0" * 64, state={})  # fmt: skip

        env = sealed()
        seal_s, _ = median_seconds(sealed, 50)
        open_s, _ = median_seconds(lambda e=env: open_envelope(e, pinned), 50)
        out[label] = {"seal_ms": seal_s * 1e3, "verify_ms": open_s * 1e3}
    return out


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="phds-bench-gate-") as tmp:
        folder = Path(tmp)
        summary = {
            "feasibility_task": {
                "cohort": COHORT,
                "dataset": DATASET,
                "history": HISTORY,
                **feasibility(folder),
            },
            "dp_release": {"cohort": COHORT, **dp_release(folder)},
            "glm_round": {"rows": GLM_ROWS, "columns": GLM_COLUMNS, **glm_round(folder)},
            "signatures": signatures(),
        }
    write_result("gate", summary)
    return summary


if __name__ == "__main__":
    print(main())
