"""Gate steps that remember what was released before: the overlap guard and query budgets.

* :class:`OverlapStep` checks every person set the rules released exactly against everything already
  released from the same dataset, to any requester (:mod:`phds.node.overlap_store`), so differences,
  partitions and other combinations of releases cannot describe 1 to k − 1 persons.
* :class:`QueryBudgetStep` enforces the policy's ``query_budget``: at most ``max_queries`` studies per
  requesting organisation and dataset in ``period_days``, and at most ``max_repeats`` studies asking the
  identical query (analysis, version and parameters). SHRINE caps and locks out repeated queries the
  same way (Weber et al. 2009, JAMIA 16:624–630; its adapters lock out users who repeat a query too
  often); PHDS counts studies, so the rounds of one iterative analysis are one query.

Both keep their memory in ``node.db`` and write it in the gate's transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from phds.errors import DisclosureRefused
from phds.node.audit import NodeDatabase
from phds.node.gate.pipeline import Next, Release
from phds.node.overlap_store import OverlapGuard

log = logging.getLogger(__name__)


class OverlapStep:
    """Guard the release's person sets, one call per dataset (universe)."""

    def __init__(self, guard: OverlapGuard) -> None:
        self.guard = guard

    def __call__(self, release: Release, call_next: Next) -> Release:
        if release.policy.differencing_guard and release.guarded:
            by_universe: dict[str, list[tuple[str, Any]]] = defaultdict(list)
            for name, persons in release.guarded:
                by_universe[persons.universe].append((name, persons.ids))
            for universe, sets in sorted(by_universe.items()):
                self.guard.guard(
                    universe, sets, release.k, study_id=release.ctx.study_id, task_id=release.ctx.task_id
                )
        return call_next(release)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS query_log (
    requester_org TEXT NOT NULL, universe TEXT NOT NULL, study_id TEXT NOT NULL, query_hash TEXT NOT NULL,
    first_at TEXT NOT NULL, PRIMARY KEY (requester_org, universe, study_id));
CREATE INDEX IF NOT EXISTS query_log_when ON query_log (requester_org, universe, first_at)
"""


class QueryBudgetStep:
    """Cap studies per requester and dataset per period, and lock out repeated identical queries."""

    def __init__(self, db: NodeDatabase) -> None:
        self.db = db
        db.ensure_schema(_SCHEMA)

    def __call__(self, release: Release, call_next: Next) -> Release:
        budget = release.policy.query_budget
        universes = sorted({p.universe for _, p in release.guarded})
        if not universes or (budget.max_queries is None and budget.max_repeats is None):
            return call_next(release)
        ctx, con = release.ctx, self.db.con
        now = datetime.now(UTC)
        since = (now - timedelta(days=budget.period_days)).isoformat()
        for universe in universes:
            key = (ctx.requester_org, universe, ctx.study_id)
            if con.execute(
                "SELECT 1 FROM query_log WHERE requester_org = ? AND universe = ? AND study_id = ?", key
            ).fetchone():
                continue  # a later round or task of a study already counted
            if budget.max_queries is not None:
                (used,) = con.execute(
                    "SELECT COUNT(*) FROM query_log WHERE requester_org = ? AND universe = ? "
                    "AND first_at >= ?",
                    (ctx.requester_org, universe, since),
                ).fetchone()
                if used >= budget.max_queries:
                    raise DisclosureRefused(
                        f"query budget: {ctx.requester_org} has used its {budget.max_queries} queries on "
                        f"this dataset in the last {budget.period_days:g} days"
                    )
            if budget.max_repeats is not None and ctx.query_hash:
                (repeats,) = con.execute(
                    "SELECT COUNT(*) FROM query_log WHERE requester_org = ? AND universe = ? "
                    "AND query_hash = ?",
                    (ctx.requester_org, universe, ctx.query_hash),
                ).fetchone()
                if repeats >= budget.max_repeats:
                    raise DisclosureRefused(
                        f"repeat lock-out: this exact query was already run {budget.max_repeats} time(s)"
                    )
            con.execute(
                "INSERT INTO query_log VALUES (?, ?, ?, ?, ?)", (*key, ctx.query_hash, now.isoformat())
            )
        return call_next(release)


__all__ = ["OverlapStep", "QueryBudgetStep"]
