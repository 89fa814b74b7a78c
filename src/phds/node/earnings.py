"""A hospital's monthly statement checked against its node's own audit log (``phds node earnings verify``).

The hub's :class:`~phds.protocol.billing.HospitalStatement` lists, for each invoice line the hospital has
a share of, the receipts behind the line and which of them the hub metered for this hospital
(``hospital_receipt_ids``). The node can reproduce its part of that from what it signed itself:

- every usage receipt the hub attributes to this hospital must be one this node issued: a
  ``usage_receipt`` audit entry with that ``receipt_id`` (and, on a study's line, of that study);
- every participation reference (``p:<application>:<hospital>``, an application fee's evidence) must be
  an application the node's steward accepted: a ``participation`` audit entry accepting it;
- a line claiming an amount for this hospital must list at least one of this node's receipts;
- no receipt of this node is billed on two invoices, and the lines add up to the total and payable;
- the audit chain itself verifies, or nothing in it can be relied on.

The node cannot tell another hospital's receipts from invented ones on a shared line (it never sees
them); the requester's ``phds billing verify`` checks every receipt's signature against the node keys.
What the node *can* account for is the sum of the lines that pass every check.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from phds.billing.verify import PARTICIPATION_PREFIX, participation_ref
from phds.errors import InputError
from phds.node.audit import AuditEntry, AuditKind, AuditLog, VerifyReport
from phds.protocol.billing import HospitalStatement, StatementLine

ZERO = Decimal("0.00")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def statement_period(period: str | None, *, field: str = "--period") -> str:
    """The month of a statement, ``YYYY-MM``: *period* checked, or last month when it is None."""
    if period is None:
        today = datetime.now(UTC).date()
        year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
        return f"{year:04d}-{month:02d}"
    if not _MONTH.match(period):
        raise InputError(f"{period!r} is not a month such as 2026-11", field=field)
    return period


@dataclass(frozen=True)
class EarningsCheck:
    """What :func:`check_statement` found: ``ok``, or the problems; and the total the node accounts for."""

    hospital: str
    period: str
    currency: str
    total: Decimal
    payable: Decimal
    accounted: Decimal
    lines: int
    found: int  # distinct receipts and participation references of this node found in the audit log
    audit_entries: int
    chain_verified: bool
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: ``ok: …`` or how many problems, with the total the node can account for."""
        chain = f"{self.audit_entries} audit entries, chain verified" if self.chain_verified else (
            f"{self.audit_entries} audit entries, chain NOT verified"
        )  # fmt: skip
        accounts = f"the node accounts for {self.accounted} of {self.total} {self.currency}"
        if self.ok:
            return (
                f"ok: {self.hospital} {self.period}: {self.lines} line(s); its {self.found} receipt(s) and "
                f"acceptance(s) found in the node's audit log ({chain}); {accounts} ({self.payable} payable)"
            )
        return f"{len(self.problems)} problem(s) in {self.hospital}'s statement for {self.period}; {accounts}"

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "hospital": self.hospital,
            "period": self.period,
            "currency": self.currency,
            "total": str(self.total),
            "payable": str(self.payable),
            "accounted": str(self.accounted),
            "lines": self.lines,
            "found": self.found,
            "audit_entries": self.audit_entries,
            "chain_verified": self.chain_verified,
            "problems": list(self.problems),
        }


def issued_receipts(entries: Iterable[AuditEntry], hospital: str) -> dict[str, AuditEntry]:
    """This node's usage receipts for *hospital*, by receipt id, from its ``usage_receipt`` entries."""
    return {
        str(e.payload["receipt_id"]): e
        for e in entries
        if e.kind == AuditKind.USAGE_RECEIPT and "receipt_id" in e.payload
        and e.payload.get("hospital") == hospital
    }  # fmt: skip


def accepted_participations(entries: Iterable[AuditEntry], hospital: str) -> dict[str, AuditEntry]:
    """The participation references (``p:<application>:<hospital>``) of applications the steward
    accepted at this node (the newest accepting entry of each)."""
    return {
        participation_ref(str(e.payload["application_id"]), hospital): e
        for e in entries
        if e.kind == AuditKind.PARTICIPATION and e.payload.get("accepted") is True
        and e.payload.get("hospital") == hospital and "application_id" in e.payload
    }  # fmt: skip


def _where(line: StatementLine) -> str:
    return f"invoice {line.invoice} line {line.line_id} ({line.description})"


def _check_line(
    line: StatementLine, hospital: str, receipts: dict[str, AuditEntry], accepted: dict[str, AuditEntry]
) -> tuple[list[str], list[str]]:
    """The line's problems, and which of its receipts are this node's."""
    where, problems = _where(line), []
    mine = [r for r in line.receipt_ids if r in receipts or r in accepted]
    for ref in line.hospital_receipt_ids:
        if ref not in line.receipt_ids:
            problems.append(
                f"{where}: {ref} is attributed to {hospital} but is not among the line's receipts"
            )
        elif ref.startswith(PARTICIPATION_PREFIX) and ref not in accepted:
            app = ref.removeprefix(PARTICIPATION_PREFIX).rsplit(":", 1)[0]
            problems.append(f"{where}: this node never accepted application {app} ({ref})")
        elif not ref.startswith(PARTICIPATION_PREFIX) and ref not in receipts:
            problems.append(
                f"{where}: receipt {ref} is attributed to {hospital} but this node never issued it"
            )
    for ref in mine:
        if line.hospital_receipt_ids and ref not in line.hospital_receipt_ids:
            problems.append(
                f"{where}: receipt {ref} is this node's but the hub attributes it to another hospital"
            )
        entry = receipts.get(ref)
        if entry is not None and line.study_id is not None and entry.study_id != line.study_id:
            problems.append(
                f"{where}: receipt {ref} is of study {entry.study_id} (audit entry {entry.seq}), "
                f"not of the line's study {line.study_id}"
            )
    if line.amount > 0 and not mine:
        problems.append(f"{where} claims {line.amount} for {hospital} but lists none of this node's receipts")
    return problems, mine


def check_statement(
    statement: HospitalStatement,
    entries: Iterable[AuditEntry],
    *,
    chain: VerifyReport | None = None,
    hospital: str | None = None,
) -> EarningsCheck:
    """Check *statement* against the node's audit *entries* (and the chain's *chain* report, when given);
    *hospital*, when given, is the node's own and must be the statement's."""
    entries = list(entries)
    problems: list[str] = []
    if hospital is not None and statement.hospital != hospital:
        problems.append(f"the statement is {statement.hospital}'s, but this node serves {hospital}")
    chain_ok = chain is not None and chain.ok
    if chain is not None and not chain.ok:
        problems.append(
            f"the node's audit log does not verify (BROKEN at seq {chain.first_broken_seq}: "
            f"{chain.problem}); none of its receipts can be relied on"
        )
    receipts = issued_receipts(entries, statement.hospital)
    accepted = accepted_participations(entries, statement.hospital)
    accounted, found = ZERO, set()
    invoices_of: dict[str, set[str]] = defaultdict(set)
    for line in statement.lines:
        line_problems, mine = _check_line(line, statement.hospital, receipts, accepted)
        problems += line_problems
        found.update(mine)
        for ref in mine:
            if not ref.startswith(PARTICIPATION_PREFIX):
                invoices_of[ref].add(line.invoice)
        if not line_problems:
            accounted += line.amount
    for ref, numbers in sorted(invoices_of.items()):
        if len(numbers) > 1:
            problems.append(
                f"receipt {ref} is billed on {len(numbers)} invoices: {', '.join(sorted(numbers))}"
            )
    lines_total = sum((line.amount for line in statement.lines), ZERO)
    if lines_total != statement.total:
        problems.append(f"the lines add up to {lines_total}, not the stated total {statement.total}")
    paid = sum((line.amount for line in statement.lines if line.invoice_state == "paid"), ZERO)
    if paid != statement.payable:
        problems.append(
            f"the lines of paid invoices add up to {paid}, not the stated payable {statement.payable}"
        )
    if chain is not None and not chain.ok:
        accounted = ZERO
    return EarningsCheck(
        hospital=statement.hospital,
        period=statement.period,
        currency=statement.currency,
        total=statement.total,
        payable=statement.payable,
        accounted=accounted,
        lines=len(statement.lines),
        found=len(found),
        audit_entries=len(entries),
        chain_verified=chain_ok,
        problems=tuple(problems),
    )


def check_against_audit(statement: HospitalStatement, audit: AuditLog, hospital: str) -> EarningsCheck:
    """:func:`check_statement` against the whole audit log of this node, after verifying its chain."""
    return check_statement(statement, audit.entries(), chain=audit.verify(), hospital=hospital)


__all__ = [
    "EarningsCheck",
    "accepted_participations",
    "check_against_audit",
    "check_statement",
    "issued_receipts",
    "statement_period",
]
