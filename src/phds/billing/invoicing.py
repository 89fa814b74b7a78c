"""Invoice lines from metered, node-signed receipts, and each line's revenue share.

Rules (docs/howto/billing.md):
- a study's receipts charge only when the tariff charges their outcome (answered work by default;
  declined, refused and failed work is free);
- ``per_hospital`` services charge each hospital that answered the study once, whatever its rounds;
  ``per_study`` and ``per_query`` services charge the study once;
- each requester organisation's first ``free_per_month`` feasibility queries of a month are free (the
  earliest studies of the month, by their first receipt); they appear as one line at price 0;
- a hospital's pass-through cost per study is a line of its own, at cost, for each study it answered
  (feasibility queries carry none);
- every line lists the receipts behind it; a line without receipts cannot be built.

Revenue share (:func:`split_line`, the Greater Plains Collaborative's rule by default): pass-through to
its hospital; of the rest the operator's percentage, and the pool split among the answering hospitals,
part equally and part in proportion to the persons each released (noisy or rounded as released, never
exact small numbers). Shares are cut to the cent and the remainder goes to the rule's named party, so
they sum to the line exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from phds.billing.money import CENT, round_amount
from phds.billing.service_catalogue import UNECE_UNIT_CODES, PriceUnit, service_for
from phds.billing.tariff import RevenueShareRule, Tariff
from phds.errors import InputError
from phds.protocol.organisations import RequesterCategory
from phds.protocol.receipts import ReceiptOutcome

OPERATOR = "operator"
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class MeteredReceipt:
    """What invoicing needs of a metered receipt."""

    receipt_id: str
    study_id: str
    hospital: str
    service_type: str
    outcome: ReceiptOutcome
    issued_at: datetime
    application_id: str | None = None
    persons: int | None = None


@dataclass(frozen=True)
class ChargeLine:
    """One invoice line, with the receipts behind it and who answered (for the revenue share)."""

    application_id: str | None
    study_id: str | None
    service: str
    description: str
    quantity: Decimal
    unit_code: str
    unit_price: Decimal
    receipt_ids: tuple[str, ...]
    answered: Mapping[str, int | None] = field(default_factory=dict)  # hospital → persons released
    pass_through_hospital: str | None = None

    @property
    def net_amount(self) -> Decimal:
        return round_amount(self.quantity * self.unit_price)


def charge_lines(
    receipts: Iterable[MeteredReceipt],
    tariff: Tariff,
    category: RequesterCategory,
    *,
    micro_enterprise: bool = False,
    study_titles: Mapping[str, str] | None = None,
    pass_through: Mapping[tuple[str | None, str], Decimal] | None = None,
    waivers: Mapping[tuple[str | None, str], str] | None = None,
) -> list[ChargeLine]:
    """The month's lines for one requester from its metered *receipts* (see the module docstring).

    *pass_through* maps (application id, hospital) to the hospital's cost per study; *waivers* maps
    (application id, service) to the reason its accepted quote waived the service's fee."""
    titles = study_titles or {}
    waived = waivers or {}
    costs = pass_through or {}
    by_study: dict[str, list[MeteredReceipt]] = defaultdict(list)
    for receipt in receipts:
        service = service_for(receipt.service_type)
        if tariff.charges(service, receipt.outcome):
            by_study[receipt.study_id].append(receipt)
    lines: list[ChargeLine] = []
    free_queries: list[tuple[datetime, str, list[MeteredReceipt]]] = []
    for study_id, mine in sorted(by_study.items(), key=lambda kv: min(r.issued_at for r in kv[1])):
        first = min(mine, key=lambda r: r.issued_at)
        service = service_for(first.service_type)
        price = tariff.price(service)
        unit = tariff.unit_price(service, category, micro_enterprise=micro_enterprise)
        answered: dict[str, int | None] = {}
        for r in mine:
            known = answered.get(r.hospital)
            answered[r.hospital] = max(known or 0, r.persons) if r.persons is not None else known
        title = titles.get(study_id, study_id)
        application = first.application_id
        reason = waived.get((application, service.value))
        unit_price = ZERO if reason is not None else unit.net_price
        if reason is not None:
            title = f"{title} (fee waived: {reason})"
        ids = tuple(sorted(r.receipt_id for r in mine))
        if price.unit is PriceUnit.PER_QUERY:
            free_queries.append((first.issued_at, study_id, mine))
        quantity = Decimal(len(answered)) if price.unit is PriceUnit.PER_HOSPITAL else Decimal(1)
        lines.append(
            ChargeLine(
                application,
                study_id,
                service.value,
                f"{service.value.replace('_', ' ')}: {title}",
                quantity,
                UNECE_UNIT_CODES[PriceUnit.PER_STUDY],
                unit_price,
                ids,
                answered,
            )
        )
        for hospital in sorted(answered) if price.unit is not PriceUnit.PER_QUERY else ():
            cost = costs.get((application, hospital))
            if cost is not None and cost > 0:
                theirs = tuple(sorted(r.receipt_id for r in mine if r.hospital == hospital))
                lines.append(
                    ChargeLine(
                        application,
                        study_id,
                        "pass_through",
                        f"{hospital}: costs of {title} (passed through at cost)",
                        Decimal(1),
                        "C62",
                        cost,
                        theirs,
                        {hospital: answered[hospital]},
                        pass_through_hospital=hospital,
                    )
                )
    return _apply_free_allowance(lines, free_queries, tariff, category)


def _apply_free_allowance(
    lines: list[ChargeLine],
    queries: list[tuple[datetime, str, list[MeteredReceipt]]],
    tariff: Tariff,
    category: RequesterCategory,
) -> list[ChargeLine]:
    if not queries:
        return lines
    service = service_for(queries[0][2][0].service_type)
    free = tariff.free_queries(service, category)
    free_ids = {study_id for _, study_id, _ in sorted(queries)[:free]}
    if not free_ids:
        return lines
    kept = [line for line in lines if not (line.study_id in free_ids and line.pass_through_hospital is None)]
    receipts = tuple(sorted(r.receipt_id for _, s, mine in queries if s in free_ids for r in mine))
    kept.append(
        ChargeLine(
            None,
            None,
            service.value,
            f"{service.value} queries within the free monthly allowance ({len(free_ids)} of {free})",
            Decimal(len(free_ids)),
            "C62",
            ZERO,
            receipts,
        )
    )
    return kept


def split_line(line: ChargeLine, rule: RevenueShareRule) -> dict[str, Decimal]:
    """Who receives what of *line*'s net amount; the shares sum to it exactly."""
    total = line.net_amount
    if line.pass_through_hospital is not None:
        return {line.pass_through_hospital: total}
    if total == 0 or not line.answered:
        return {OPERATOR: total}
    shares: dict[str, Decimal] = defaultdict(lambda: ZERO)
    operator = _cut(total * rule.operator_percent / 100)
    shares[OPERATOR] += operator
    pool = total - operator
    equal = _cut(pool * rule.pool_equal_percent / 100)
    by_persons = pool - equal
    hospitals = sorted(line.answered)
    persons = {h: Decimal(line.answered[h] or 0) for h in hospitals}
    weight_total = sum(persons.values(), Decimal(0))
    for hospital in hospitals:
        shares[hospital] += _cut(equal / len(hospitals))
        if weight_total > 0:
            shares[hospital] += _cut(by_persons * persons[hospital] / weight_total)
        else:  # nobody released a cohort size (e.g. secure aggregation): the persons half goes equally too
            shares[hospital] += _cut(by_persons / len(hospitals))
    remainder = total - sum(shares.values(), ZERO)
    if remainder < 0:
        raise InputError(f"revenue share of {line.description} exceeds the line", field="revenue_share")
    shares[rule.remainder_to] += remainder
    return dict(shares)


def split_lines(lines: Iterable[ChargeLine], rule: RevenueShareRule) -> dict[str, Decimal]:
    """The parties' totals over *lines*."""
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for line in lines:
        for party, amount in split_line(line, rule).items():
            totals[party] += amount
    return dict(totals)


def _cut(value: Decimal) -> Decimal:
    """*value* cut down to the cent, so the parts never exceed the whole."""
    return value.quantize(CENT, rounding=ROUND_DOWN)
