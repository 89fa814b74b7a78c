"""Tariffs: the shipped one loads and cites its sources; bad tariffs are refused naming file, line, field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from phds.billing.service_catalogue import BillableService, PriceUnit
from phds.billing.tariff import TariffBook, default_tariff, default_tariff_text, load_tariff, tariff_from_text
from phds.errors import InputError, NotFound
from phds.protocol.organisations import RequesterCategory as C
from phds.protocol.receipts import ReceiptOutcome


def test_the_default_tariff_prices_every_service_for_every_category_from_cited_sources() -> None:
    tariff = default_tariff()
    assert tariff.currency == "EUR" and set(tariff.services) == set(BillableService)
    assert {"findata", "nhs-dars", "cprd", "dst", "ehds"} <= set(tariff.sources)
    # Findata's permit range, NHS DARS's application fee (GBP 1,431 at 1.17) and Statistics Denmark's hours.
    fee = tariff.price(BillableService.APPLICATION_FEE).prices
    assert fee[C.ACADEMIC] == Decimal("600.00") and fee[C.INDUSTRY] == Decimal("1674.27")
    hours = tariff.price(BillableService.ANALYST_HOURS)
    assert hours.unit is PriceUnit.PER_HOUR and hours.prices[C.PUBLIC] == Decimal("224.39")
    assert round(Decimal(1674) / Decimal("7.46038"), 2) == Decimal("224.39")


def test_reductions_follow_ehds_article_62_and_never_stack() -> None:
    tariff = default_tariff()
    academic = tariff.unit_price(BillableService.RESEARCH, C.ACADEMIC)
    assert (academic.list_price, academic.reduction_percent, academic.net_price) == (
        Decimal("500.00"), Decimal("20"), Decimal("400.00"),
    )  # fmt: skip
    assert "Art. 62" in (academic.basis or "")
    sme = tariff.unit_price(BillableService.RESEARCH, C.SME)
    micro = tariff.unit_price(BillableService.RESEARCH, C.SME, micro_enterprise=True)
    assert sme.net_price == Decimal("2000.00") and micro.net_price == Decimal("1000.00")
    assert tariff.unit_price(BillableService.RESEARCH, C.INDUSTRY).reduction is None


def test_only_answered_work_is_charged_unless_the_tariff_says_so() -> None:
    tariff = default_tariff()
    assert tariff.charges(BillableService.RESEARCH, ReceiptOutcome.ANSWERED)
    for outcome in (ReceiptOutcome.REFUSED, ReceiptOutcome.DECLINED, ReceiptOutcome.FAILED):
        assert not tariff.charges(BillableService.RESEARCH, outcome)
    text = default_tariff_text().replace(
        "  research:\n    unit: per_hospital\n",
        "  research:\n    unit: per_hospital\n    charged_outcomes: [answered, refused]\n",
    )
    assert tariff_from_text(text, "t.yaml").charges(BillableService.RESEARCH, ReceiptOutcome.REFUSED)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('sme: "1300.00"', "sme: 1300.5", "field services.application_fee.prices.sme"),
        ('sme: "1300.00", ', "", "no price for requester category sme"),
        ('academic: "25.00"', 'academic: "-25.00"', "greater than or equal to 0"),
        ("currency: EUR", "currency: EUX", "unknown currency 'EUX'"),
        ("  project_month:\n", "  project_months:\n", "field services.project_months"),
    ],
)
def test_malformed_tariffs_name_the_file_the_line_and_the_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    text = default_tariff_text()
    assert old in text
    path = tmp_path / "tariff.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_tariff(path)
    assert str(path) in caught.value.message and "line" in caught.value.message
    assert expected in caught.value.message


def test_versions_are_chosen_by_date_and_never_overlap() -> None:
    first = default_tariff()
    second = tariff_from_text(
        default_tariff_text().replace('version: "2026.1"', 'version: "2027.1"')
        .replace('effective_from: "2026-01-01"', 'effective_from: "2027-01-01"'),
        "t2.yaml",
    )  # fmt: skip
    book = TariffBook([second, first])
    assert book.in_force(date(2026, 6, 1)).version == "2026.1"
    assert book.in_force(date(2027, 1, 1)).version == "2027.1"
    with pytest.raises(NotFound):
        book.in_force(date(2025, 12, 31))
    same_day = second.model_copy(update={"version": "2027.2"})
    with pytest.raises(InputError, match="effective dates must differ"):
        TariffBook([first, second, same_day])
    with pytest.raises(InputError, match="exists already"):
        TariffBook([first, first])
