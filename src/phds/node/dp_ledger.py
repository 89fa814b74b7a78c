"""The node's differential-privacy ledger: what each requester spent on each dataset, and the ceilings.

Privacy loss is spent in ρ (zCDP; losses add under composition, Bun & Steinke 2016). Two ceilings hold
per dataset (a universe such as ``omop:cdm``): one per requesting organisation and one for the whole
network, so organisations that pool their results still share one budget. Both default to the policy's
``[policy.dp]`` budgets; ``phds node budget set`` overrides them per dataset (and organisation) and
``phds node budget reset`` starts an organisation's count again. Each change is audited.

A spend is written in the gate's transaction, with the release and its ``value_released`` entry: a
crash either keeps all three or none, so nothing is released without being spent or spent twice. The
ledger also keeps every DP release by the hash of its evidence and mechanism, so a repeated identical
query gets the identical noisy answer at no new cost — averaging repeats gains nothing.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from phds.analyses.context import DpInForce
from phds.errors import DisclosureRefused, InputError
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.policy import DifferentialPrivacy, DpLoss, TaskRequest
from phds.privacy.dp import PrivacyLoss
from phds.protocol.privacy import DpRequest

NETWORK = "*"
"""The organisation name of the network-wide ceiling."""

_TOLERANCE = 1e-12  # float slack when a spend exactly exhausts a budget

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dp_spend (
    id INTEGER PRIMARY KEY, universe TEXT NOT NULL, requester_org TEXT NOT NULL, study_id TEXT NOT NULL,
    task_id TEXT NOT NULL, rho REAL NOT NULL, at TEXT NOT NULL, reset INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS dp_spend_by ON dp_spend (universe, requester_org);
CREATE TABLE IF NOT EXISTS dp_limits (
    universe TEXT NOT NULL, requester_org TEXT NOT NULL, rho REAL NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (universe, requester_org));
CREATE TABLE IF NOT EXISTS dp_releases (
    key TEXT PRIMARY KEY, universe TEXT NOT NULL, value TEXT NOT NULL, at TEXT NOT NULL)
"""


def loss_rho(loss: DpLoss, delta: float) -> float:
    """A policy loss as ρ (ε converted with δ)."""
    if loss.rho is not None:
        return float(loss.rho)
    assert loss.epsilon is not None
    return PrivacyLoss.from_epsilon(float(loss.epsilon), delta).rho


@dataclass(frozen=True)
class BudgetLine:
    """One ceiling: who (an organisation, or ``*`` for the network), on which dataset, limit and spend."""

    universe: str
    organisation: str
    limit_rho: float
    spent_rho: float
    delta: float
    overridden: bool

    @property
    def remaining_rho(self) -> float:
        return max(0.0, self.limit_rho - self.spent_rho)

    @property
    def remaining_epsilon(self) -> float:
        return PrivacyLoss(self.remaining_rho).epsilon(self.delta) if self.remaining_rho > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "dataset": self.universe,
            "organisation": self.organisation,
            "limit_rho": self.limit_rho,
            "spent_rho": self.spent_rho,
            "remaining_rho": self.remaining_rho,
            "remaining_epsilon": self.remaining_epsilon,
            "delta": self.delta,
            "overridden": self.overridden,
        }


class DpLedger:
    """Spends, ceilings and the cache of DP releases in ``node.db`` (module docstring)."""

    def __init__(self, db: NodeDatabase, settings: DifferentialPrivacy) -> None:
        self.db = db
        self.settings = settings
        db.ensure_schema(_SCHEMA)

    @property
    def con(self) -> sqlite3.Connection:
        return self.db.con

    # -- ceilings and spend -------------------------------------------------------------------------

    def _default_rho(self, organisation: str) -> float:
        loss = self.settings.network_budget if organisation == NETWORK else self.settings.requester_budget
        return loss_rho(loss, self.settings.delta)

    def line(self, universe: str, organisation: str) -> BudgetLine:
        """The ceiling and the spend of *organisation* (``*``: everyone) on *universe*."""
        row = self.con.execute(
            "SELECT rho FROM dp_limits WHERE universe = ? AND requester_org = ?", (universe, organisation)
        ).fetchone()
        if organisation == NETWORK:
            (spent,) = self.con.execute(
                "SELECT COALESCE(SUM(rho), 0) FROM dp_spend WHERE universe = ?", (universe,)
            ).fetchone()
        else:
            (spent,) = self.con.execute(
                "SELECT COALESCE(SUM(rho), 0) FROM dp_spend WHERE universe = ? AND requester_org = ? "
                "AND reset = 0",
                (universe, organisation),
            ).fetchone()
        limit = float(row[0]) if row is not None else self._default_rho(organisation)
        return BudgetLine(universe, organisation, limit, float(spent), self.settings.delta, row is not None)

    def spend(
        self, universe: str, organisation: str, rho: float, *, study_id: str, task_id: str
    ) -> BudgetLine:
        """Record a spend inside the caller's transaction; refuse it when either ceiling would be passed."""
        if rho <= 0:
            return self.line(universe, organisation)
        for who in (organisation, NETWORK):
            line = self.line(universe, who)
            if line.spent_rho + rho > line.limit_rho + _TOLERANCE:
                whose = "the network's" if who == NETWORK else f"{organisation}'s"
                raise DisclosureRefused(
                    f"privacy budget: {whose} budget on this dataset at this hospital is spent "
                    f"(ρ {line.spent_rho:.4g} of {line.limit_rho:.4g} used; this release needs {rho:.4g})"
                )
        self.con.execute(
            "INSERT INTO dp_spend (universe, requester_org, study_id, task_id, rho, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (universe, organisation, study_id, task_id, rho, _now()),
        )
        return self.line(universe, organisation)

    def universes(self) -> list[str]:
        rows = self.con.execute(
            "SELECT universe FROM dp_spend UNION SELECT universe FROM dp_limits ORDER BY 1"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def lines(self, universe: str | None = None) -> list[BudgetLine]:
        """Every ceiling with a spend or an override (the network's first for each dataset)."""
        out: list[BudgetLine] = []
        for u in [universe] if universe else self.universes():
            orgs = self.con.execute(
                "SELECT requester_org FROM dp_spend WHERE universe = ? UNION "
                "SELECT requester_org FROM dp_limits WHERE universe = ? ORDER BY 1",
                (u, u),
            ).fetchall()
            names = [NETWORK] + [str(o[0]) for o in orgs if o[0] != NETWORK]
            out.extend(self.line(u, name) for name in names)
        return out

    # -- the steward's commands (audited) -----------------------------------------------------------

    def set_limit(self, audit: AuditLog, universe: str, organisation: str, loss: DpLoss) -> BudgetLine:
        """Override the ceiling of *organisation* (``*``: the network) on *universe*."""
        _check_name(universe, "dataset")
        rho = loss_rho(loss, self.settings.delta)
        if not (math.isfinite(rho) and rho > 0):
            raise InputError("the budget must be a finite number above 0", field="budget")
        with self.db.transaction() as con:
            con.execute(
                "INSERT INTO dp_limits VALUES (?, ?, ?, ?) ON CONFLICT (universe, requester_org) "
                "DO UPDATE SET rho = excluded.rho, at = excluded.at",
                (universe, organisation, rho, _now()),
            )
            audit.append(
                "dp_budget",
                payload={"action": "set", "dataset": universe, "organisation": organisation, "rho": rho},
            )
        return self.line(universe, organisation)

    def reset(self, audit: AuditLog, universe: str, organisation: str, reason: str) -> BudgetLine:
        """Start *organisation*'s count on *universe* again (its past spends stay in the network's)."""
        _check_name(universe, "dataset")
        if organisation == NETWORK:
            raise InputError(
                "the network's spend is never reset: it is the ceiling colluders share; raise it with "
                "'phds node budget set' if the committee agrees",
                field="organisation",
            )
        if not reason.strip():
            raise InputError("say why the budget is reset", field="reason")
        with self.db.transaction() as con:
            before = self.line(universe, organisation)
            con.execute(
                "UPDATE dp_spend SET reset = 1 WHERE universe = ? AND requester_org = ?",
                (universe, organisation),
            )
            audit.append(
                "dp_budget",
                payload={
                    "action": "reset",
                    "dataset": universe,
                    "organisation": organisation,
                    "spent_rho": before.spent_rho,
                    "reason": reason,
                },
            )
        return self.line(universe, organisation)

    # -- repeated queries ---------------------------------------------------------------------------

    def cached(self, key: str) -> dict[str, Any] | None:
        row = self.con.execute("SELECT value FROM dp_releases WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row is not None else None

    def remember(self, key: str, universe: str, value: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT OR IGNORE INTO dp_releases VALUES (?, ?, ?, ?)",
            (key, universe, json.dumps(value), _now()),
        )


def _check_name(value: str, field: str) -> None:
    if not value or len(value) > 200:
        raise InputError(f"a {field} name of 1 to 200 characters is needed", field=field)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def resolve_dp(
    settings: DifferentialPrivacy, request: TaskRequest, asked: DpRequest | None
) -> DpInForce | None:
    """The DP in force for a task: the stricter (smaller) loss of the study's request and the policy's
    matching ``require`` entry; None when neither asks. The policy's clipping bounds replace a study's."""
    required = settings.requirement(request)
    if required is None and asked is None:
        return None
    delta = settings.delta
    losses: list[float] = []
    if required is not None:
        losses.append(loss_rho(required, delta))
    if asked is not None:
        losses.append(
            float(asked.rho)
            if asked.rho is not None
            else PrivacyLoss.from_epsilon(float(asked.epsilon or 0), delta).rho
        )
    bounds: dict[str, tuple[float, float]] = dict(asked.bounds) if asked is not None else {}
    bounds.update(settings.bounds)
    return DpInForce(
        rho=min(losses),
        delta=delta,
        mechanism=asked.mechanism if asked is not None else settings.mechanism,
        bounds=bounds,
    )


__all__ = ["NETWORK", "BudgetLine", "DpLedger", "loss_rho", "resolve_dp"]
