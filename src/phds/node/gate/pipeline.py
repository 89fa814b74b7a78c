"""The gate as a chain of small release steps, in the manner of Flower's client mods.

A :class:`Release` travels through the steps (``step(release, call_next) -> release``); each step may
refuse (raise :class:`~phds.errors.DisclosureRefused`), add released values and notes, or register the
person sets the overlap guard must check. :meth:`Gate.release` runs the whole chain inside one
transaction of ``node.db`` whose last step appends the ``value_released`` audit entry, so a released
value, the guard's memory of it and its audit entry commit together or not at all. A refusal rolls all
of it back and audits an ``error`` entry. The default chain (:func:`default_steps`):

1. :class:`~phds.node.gate.rules.ValidateStep` — names unique, types known;
2. :class:`~phds.node.gate.dp_step.DpStep` — under differential privacy, OpenDP noise in place of
   the exact rules, spent on the node's ledger;
3. :class:`~phds.node.gate.rules.RulesStep` — each aggregate type's rule (counts, breakdowns, sums,
   models) computes what may leave from the aggregate's evidence (what the DP step did not release);
4. :class:`~phds.node.gate.guard.OverlapStep` — every exactly released person set against everything
   released from the same dataset before, to any requester;
5. :class:`~phds.node.gate.guard.QueryBudgetStep` — the policy's cap on queries per requester and
   dataset, and the lock-out of repeats;
6. :class:`AuditStep` — the ``value_released`` entry holding exactly the payload.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from phds.analyses.context import DpInForce
from phds.errors import DisclosureRefused, InputError
from phds.node.audit import AuditLog
from phds.node.policy import Policy
from phds.privacy.aggregates import Aggregate, Persons
from phds.protocol.privacy import DpBudget
from phds.protocol.releases import GateNote, ReleasePayload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateContext:
    """Which task the values belong to and who receives them."""

    study_id: str
    task_id: str
    requester_org: str
    analysis: str
    requester_category: str | None = None
    analysis_version: str = "1"
    round_no: int = 1
    query_hash: str = ""  # canonical hash of analysis, version and parameters (query budgets, repeats)
    dp: DpInForce | None = None  # differential privacy in force (the DP step); None: exact rules
    dp_rounds: int = 1  # the analysis's most rounds: the study's loss is split over them
    secure_parties: int = 0  # under secure aggregation: the fewest nodes whose noise the sum carries


@dataclass
class Release:
    """What the steps build: released values, notes and the person sets to guard."""

    ctx: GateContext
    aggregates: Sequence[Aggregate]
    policy: Policy
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[GateNote] = field(default_factory=list)
    guarded: list[tuple[str, Persons]] = field(default_factory=list)
    payload: ReleasePayload | None = None
    budget: list[DpBudget] | None = None  # set by the DP step: what remains after this release
    audit_seq: int = 0
    audit_hash: str = ""

    @property
    def k(self) -> int:
        return self.policy.min_cell_count

    def note(self, aggregate: str, action: str, reason: str) -> None:
        self.notes.append(GateNote(aggregate=aggregate, action=action, reason=reason))

    def guard(self, name: str, persons: Persons) -> None:
        """Register an exactly released person set for the overlap guard."""
        self.guarded.append((name, persons))


Next = Callable[[Release], Release]


class ReleaseStep(Protocol):
    """One link of the chain."""

    def __call__(self, release: Release, call_next: Next) -> Release: ...


class AuditStep:
    """The last step: the payload becomes the ``value_released`` audit entry."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def __call__(self, release: Release, call_next: Next) -> Release:
        release.payload = ReleasePayload(
            analysis=release.ctx.analysis,
            min_cell_count=release.k,
            values=release.values,
            notes=release.notes,
            budget=release.budget,
        )
        body = release.payload.model_dump(mode="json")
        entry = self.audit.append(
            "value_released", study_id=release.ctx.study_id, task_id=release.ctx.task_id, payload=body
        )
        release.audit_seq, release.audit_hash = entry.seq, entry.hash
        return call_next(release)


@dataclass(frozen=True)
class GateResult:
    """What may leave (``payload``, identical to the audited entry) and where it is in the audit log."""

    payload: dict[str, Any]
    notes: list[GateNote]
    audit_seq: int
    audit_hash: str


def _chain(steps: Sequence[ReleaseStep]) -> Next:
    def run(i: int, release: Release) -> Release:
        if i == len(steps):
            return release
        return steps[i](release, lambda r: run(i + 1, r))

    return lambda release: run(0, release)


class Gate:
    """Runs the release chain for one node (see the module docstring)."""

    def __init__(self, policy: Policy, audit: AuditLog, steps: Sequence[ReleaseStep] | None = None) -> None:
        from phds.node.dp_ledger import DpLedger
        from phds.node.gate.dp_step import DpStep
        from phds.node.gate.guard import OverlapStep, QueryBudgetStep
        from phds.node.gate.rules import RulesStep, ValidateStep
        from phds.node.overlap_store import OverlapGuard

        self.policy = policy
        self.audit = audit
        self.ledger = DpLedger(audit.db, policy.dp)
        if steps is None:
            steps = [
                ValidateStep(),
                DpStep(self.ledger),
                RulesStep(),
                OverlapStep(OverlapGuard(audit.db)),
                QueryBudgetStep(audit.db),
                AuditStep(audit),
            ]
        self.steps = list(steps)
        self._run = _chain(self.steps)

    @property
    def k(self) -> int:
        return self.policy.min_cell_count

    def release(
        self,
        ctx: GateContext,
        aggregates: Sequence[Aggregate],
        *,
        on_release: Callable[[GateResult], None] | None = None,
    ) -> GateResult:
        """Run the chain in one transaction; *on_release* runs inside it (the node stores its answer
        there, so a crash can never release the same value twice). Refusal audits an ``error``."""
        try:
            with self.audit.db.transaction():
                done = self._run(Release(ctx, aggregates, self.policy))
                if done.payload is None:
                    raise InputError("the gate's chain has no audit step", field="gate")
                result = GateResult(
                    done.payload.model_dump(mode="json"), list(done.notes), done.audit_seq, done.audit_hash
                )
                if on_release is not None:
                    on_release(result)
        except DisclosureRefused as exc:
            self.audit.append(
                "error",
                study_id=ctx.study_id,
                task_id=ctx.task_id,
                payload={"error": "disclosure_refused", "analysis": ctx.analysis, "reason": exc.message},
            )
            log.warning("study %s task %s: refused: %s", ctx.study_id, ctx.task_id, exc.message)
            raise
        except sqlite3.Error as exc:  # pragma: no cover - storage failure
            raise DisclosureRefused(f"nothing released: the node state database failed ({exc})") from exc
        return result


__all__ = ["AuditStep", "Gate", "GateContext", "GateResult", "Next", "Release", "ReleaseStep"]
