"""Check an invoice against the node signatures behind it, trusting nothing the hub says.

:func:`verify_invoice` takes an invoice's evidence (the hub's ``GET /billing/invoices/{n}/evidence``)
and the node keys the verifier pinned. Every receipt must verify against its hospital's key; every
application-fee line must rest on hospitals' signed participation; and the lines are recomputed from
the verified receipts with the tariff version the invoice names. A line that no node signed, a receipt
altered after signing, or an amount that does not follow from the receipts is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from phds.billing.invoicing import ChargeLine, MeteredReceipt, charge_lines
from phds.billing.service_catalogue import BillableService
from phds.billing.tariff import Tariff
from phds.errors import SignatureInvalid
from phds.protocol.billing import InvoiceEvidence, InvoiceLine
from phds.protocol.organisations import RequesterCategory
from phds.protocol.receipts import UsageReceipt
from phds.trust.envelopes import verify_participation, verify_receipt

PARTICIPATION_PREFIX = "p:"  # an application-fee line's evidence: "p:<application>:<hospital>"


@dataclass
class InvoiceCheck:
    """What :func:`verify_invoice` found."""

    number: str
    lines: int = 0
    receipts: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def participation_ref(application_id: str, hospital: str) -> str:
    return f"{PARTICIPATION_PREFIX}{application_id}:{hospital}"


def metered(receipt: UsageReceipt) -> MeteredReceipt:
    return MeteredReceipt(
        receipt.receipt_id,
        receipt.study_id,
        receipt.hospital,
        receipt.service_type,
        receipt.outcome,
        receipt.issued_at,
        receipt.application_id,
        receipt.persons,
    )


def _key(line: ChargeLine | InvoiceLine) -> tuple[object, ...]:
    return (
        line.study_id,
        line.service,
        Decimal(line.quantity),
        Decimal(line.unit_price),
        tuple(sorted(line.receipt_ids)),
        line.pass_through_hospital,
    )


def verify_invoice(evidence: InvoiceEvidence, node_keys: Mapping[str, str]) -> InvoiceCheck:
    """Check *evidence* with the pinned *node_keys* (hospital → Ed25519 public key)."""
    invoice = evidence.invoice
    check = InvoiceCheck(invoice.number, lines=len(invoice.lines))
    verified: dict[str, UsageReceipt] = {}
    for raw in evidence.receipts:
        receipt = UsageReceipt.model_validate(raw)
        key = node_keys.get(receipt.hospital)
        if key is None:
            check.problems.append(f"receipt {receipt.receipt_id}: no pinned key for {receipt.hospital}")
            continue
        try:
            verify_receipt(receipt, key)
        except SignatureInvalid as exc:
            check.problems.append(exc.message)
            continue
        if receipt.requester_org != invoice.organisation:
            check.problems.append(f"receipt {receipt.receipt_id} is for {receipt.requester_org}")
            continue
        verified[receipt.receipt_id] = receipt
    check.receipts = len(verified)
    accepted: set[str] = set()
    signed_costs: dict[tuple[str | None, str], Decimal] = {}  # pass-through as the hospitals signed it
    for statement in evidence.participations:
        key = node_keys.get(statement.hospital)
        try:
            if key is None:
                raise SignatureInvalid(f"participation of {statement.hospital}: no pinned key")
            verify_participation(statement, key)
        except SignatureInvalid as exc:
            check.problems.append(exc.message)
            continue
        if statement.accepted:
            accepted.add(participation_ref(statement.application_id, statement.hospital))
            signed_costs[(statement.application_id, statement.hospital)] = statement.pass_through_per_study
    tariff = Tariff.model_validate(evidence.tariff)
    if tariff.version != invoice.tariff_version:
        check.problems.append(
            f"the evidence's tariff is {tariff.version}, the invoice's {invoice.tariff_version}"
        )
    category = RequesterCategory(evidence.requester_category)
    metered_lines = [line for line in invoice.lines if line.service != BillableService.APPLICATION_FEE.value]
    for line in invoice.lines:
        if not line.receipt_ids:
            check.problems.append(
                f"line {line.line_id} ({line.description}): no node signed anything behind it"
            )
        elif line.service == BillableService.APPLICATION_FEE.value:
            missing = [r for r in line.receipt_ids if r not in accepted]
            if missing:
                check.problems.append(f"line {line.line_id}: no signed participation {missing[0]}")
        else:
            missing = [r for r in line.receipt_ids if r not in verified]
            if missing:
                check.problems.append(
                    f"line {line.line_id}: receipt {missing[0]} is not a verified node receipt"
                )
        if line.net_amount != (line.quantity * line.unit_price).quantize(Decimal("0.01")):
            check.problems.append(f"line {line.line_id}: net amount is not quantity × unit price")
    wanted = {r for line in metered_lines for r in line.receipt_ids}
    receipts = [metered(r) for r in verified.values() if r.receipt_id in wanted]
    for ref, cost in evidence.pass_through.items():
        application, _, hospital = ref.partition("/")
        if signed_costs.get((application or None, hospital)) != cost:
            check.problems.append(f"pass-through of {hospital} in {application}: no hospital signed {cost}")
    pass_through = signed_costs
    waivers: dict[tuple[str | None, str], str] = {}
    for ref, reason in evidence.waivers.items():
        application, _, service = ref.partition("/")
        waivers[(application or None, service)] = reason
    expected = charge_lines(
        receipts,
        tariff,
        category,
        micro_enterprise=evidence.micro_enterprise,
        pass_through=pass_through,
        waivers=waivers,
    )
    expected_keys = sorted(map(_key, expected), key=repr)
    actual_keys = sorted(map(_key, metered_lines), key=repr)
    if expected_keys != actual_keys:
        check.problems.append(
            f"the metered lines do not follow from the signed receipts under tariff {tariff.version}: "
            f"{len(actual_keys)} invoiced, {len(expected_keys)} recomputed"
        )
    return check
