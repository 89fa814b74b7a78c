"""Quotes from applications, invoice lines from receipts, and revenue shares that reconcile to the cent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phds.billing.applications import ApplicationForm, PassThrough, load_application, price_application
from phds.billing.invoicing import OPERATOR, ChargeLine, MeteredReceipt, charge_lines, split_line
from phds.billing.tariff import RevenueShareRule, default_tariff
from phds.errors import InputError
from phds.protocol.organisations import RequesterCategory as C
from phds.protocol.receipts import ReceiptOutcome as O

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def form(**fields: object) -> ApplicationForm:
    base: dict[str, object] = {
        "title": "Asthma in under-fives",
        "purpose": "Incidence of asthma across the network",
        "legal_basis": "GDPR Art. 6(1)(e), 9(2)(j)",
        "ethics_reference": "CEIm-2026-014",
        "hospitals": ["alpha", "beta", "gamma"],
        "duration_months": 12,
        "services": [
            {"service": "application_fee"},
            {"service": "research", "quantity": 2},
            {"service": "feasibility", "quantity": 30},
        ],
    }
    return ApplicationForm.model_validate(base | fields)


def test_a_quote_prices_the_application_from_the_tariff_and_each_hospitals_pass_through() -> None:
    costs = [PassThrough("alpha", Decimal("230.00"), "extraction and 2 h of steward time at EUR 115")]
    quote = price_application(
        form(), default_tariff(), C.ACADEMIC, pass_through=costs, today=date(2026, 3, 1)
    )
    amounts = {line.service: line.amount for line in quote.lines}
    # application fee 600 - 20%; research 2 studies x 3 hospitals x (500 - 20%); 30 queries x (25 - 20%)
    assert amounts == {
        "application_fee": Decimal("480.00"),
        "research": Decimal("2400.00"),
        "feasibility": Decimal("600.00"),
        "pass_through": Decimal("460.00"),
    }
    assert quote.ceiling == sum(amounts.values()) and quote.valid_until == date(2026, 3, 31)
    assert quote.tariff_version == "2026.1"
    assert all(
        line.reduction_basis and "Art. 62" in line.reduction_basis
        for line in quote.lines
        if line.service != "pass_through"
    )


def test_an_application_file_with_mistakes_names_the_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "application.yaml"
    path.write_text(
        "title: T\npurpose: P\nlegal_basis: L\nethics_reference: E\nhospitals: [alpha]\n"
        "duration_months: 6\nservices:\n  - service: research\n    quantity: 0\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as caught:
        load_application(path)
    assert str(path) in caught.value.message and "line 9" in caught.value.message
    assert "services.0.quantity" in caught.value.message


def receipt(
    study: str,
    hospital: str,
    minutes: int = 0,
    outcome: O = O.ANSWERED,
    service: str = "research",
    persons: int | None = 40,
) -> MeteredReceipt:
    return MeteredReceipt(
        f"r-{study}-{hospital}-{minutes}",
        study,
        hospital,
        service,
        outcome,
        T0 + timedelta(minutes=minutes),
        "APP-1",
        persons,
    )


def test_lines_charge_each_answering_hospital_once_and_never_refused_work() -> None:
    receipts = [
        receipt("s1", "alpha", 0),
        receipt("s1", "alpha", 5),
        receipt("s1", "beta", 1),  # two rounds at alpha
        receipt("s1", "gamma", 2, O.REFUSED),
        receipt("s2", "beta", 9, O.FAILED),
    ]
    lines = charge_lines(
        receipts, default_tariff(), C.INDUSTRY, pass_through={("APP-1", "beta"): Decimal("99.00")}
    )
    [study, passed] = lines
    assert (study.service, study.quantity, study.unit_price) == ("research", Decimal(2), Decimal("4000.00"))
    assert set(study.receipt_ids) == {"r-s1-alpha-0", "r-s1-alpha-5", "r-s1-beta-1"}
    assert passed.pass_through_hospital == "beta" and passed.receipt_ids == ("r-s1-beta-1",)
    assert passed.net_amount == Decimal("99.00")


def test_the_months_first_feasibility_queries_are_free() -> None:
    receipts = [receipt(f"q{i}", "alpha", i, service="feasibility") for i in range(7)]
    lines = charge_lines(receipts, default_tariff(), C.SME)  # SMEs have 5 free queries a month
    paid = [line for line in lines if line.unit_price > 0]
    [free] = [line for line in lines if line.unit_price == 0]
    assert [line.study_id for line in paid] == ["q5", "q6"], "the earliest five are the free ones"
    assert free.quantity == 5 and len(free.receipt_ids) == 5


def test_the_default_revenue_share_is_the_greater_plains_rule() -> None:
    line = ChargeLine(
        "APP-1",
        "s1",
        "research",
        "research: s1",
        Decimal(2),
        "C62",
        Decimal("1000.00"),
        ("r1", "r2"),
        {"alpha": 300, "beta": 100},
    )
    shares = split_line(line, RevenueShareRule())
    # 2,000: operator 25% = 500; pool 1,500: half equally (375 each), half by persons 3:1 (562.50, 187.50)
    assert shares == {OPERATOR: Decimal("500.00"), "alpha": Decimal("937.50"), "beta": Decimal("562.50")}
    passed = ChargeLine(
        "APP-1",
        "s1",
        "pass_through",
        "x",
        Decimal(1),
        "C62",
        Decimal("99.00"),
        ("r1",),
        {"alpha": 300},
        pass_through_hospital="alpha",
    )
    assert split_line(passed, RevenueShareRule()) == {"alpha": Decimal("99.00")}


@settings(max_examples=200, deadline=None)
@given(
    cents=st.integers(min_value=0, max_value=10**9),
    persons=st.lists(st.one_of(st.none(), st.integers(0, 10**6)), min_size=1, max_size=7),
    operator=st.integers(0, 100),
    equal=st.integers(0, 100),
)
def test_shares_always_reconcile_to_the_cent(
    cents: int, persons: list[int | None], operator: int, equal: int
) -> None:
    answered = {f"h{i}": p for i, p in enumerate(persons)}
    line = ChargeLine(None, "s", "research", "d", Decimal(1), "C62", Decimal(cents) / 100, ("r",), answered)
    rule = RevenueShareRule(operator_percent=Decimal(operator), pool_equal_percent=Decimal(equal))
    shares = split_line(line, rule)
    assert sum(shares.values()) == line.net_amount
    assert all(v >= 0 and v == v.quantize(Decimal("0.01")) for v in shares.values())


def test_a_waiver_needs_a_reason_and_carries_from_the_quote_to_the_invoice_lines() -> None:
    tariff = default_tariff()
    quote = price_application(
        form(),
        tariff,
        C.INDUSTRY,
        pass_through=[],
        today=date(2026, 3, 1),
        waivers={"research": "PHEMS consortium pilot, board decision 2026-02"},
    )
    [research] = [line for line in quote.lines if line.service == "research"]
    assert (research.unit_price, research.amount, research.reduction_percent) == (
        Decimal("0.00"),
        Decimal("0.00"),
        100,
    )
    assert research.waiver and "board decision" in (research.reduction_basis or "")
    with pytest.raises(InputError, match=r"waivers\.synthetic_dataset"):
        price_application(
            form(),
            tariff,
            C.INDUSTRY,
            pass_through=[],
            today=date(2026, 3, 1),
            waivers={"synthetic_dataset": "not asked for"},
        )
    with pytest.raises(InputError, match="needs its reason"):
        price_application(
            form(), tariff, C.INDUSTRY, pass_through=[], today=date(2026, 3, 1), waivers={"research": "  "}
        )
    [line] = charge_lines(
        [receipt("s1", "alpha")], tariff, C.INDUSTRY, waivers={("APP-1", "research"): "consortium pilot"}
    )
    assert line.net_amount == 0 and "waived: consortium pilot" in line.description
