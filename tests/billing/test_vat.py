"""VAT: real EU VAT ids, the four treatments of the network's services, the EN 16931 breakdown."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.eu import vat as eu_vat

from phds.billing.money import round_amount
from phds.billing.vat import (
    EU_MEMBER_STATES,
    EXEMPT_PUBLIC_INTEREST,
    OUTSIDE_EU,
    PUBLIC_AUTHORITY,
    REVERSE_CHARGE,
    VatCategory,
    VatTreatment,
    validate_vat_id,
    vat_breakdown,
    vat_country,
    vat_treatment,
)
from phds.errors import InputError

# Real VAT ids with valid check digits, from python-stdnum's own test data and documentation.
VALID_VAT_IDS = [
    "NL004495445B01",
    "DE136695976",
    "BE0411905847",
    "FR40303265045",
    "EL094259216",
    "IE6388047V",
]
STANDARD_21 = VatTreatment(VatCategory.STANDARD, Decimal("21"), None, None)  # NL and BE standard rate


@dataclass(frozen=True)
class Line:
    net_amount: Decimal
    vat: VatTreatment


@pytest.mark.parametrize("vat_id", VALID_VAT_IDS)
def test_real_vat_ids_validate(vat_id: str) -> None:
    assert eu_vat.is_valid(vat_id)
    assert validate_vat_id(vat_id) == vat_id


def test_vat_ids_are_normalised() -> None:
    assert validate_vat_id("nl 0044.95.445.b01") == "NL004495445B01"
    assert validate_vat_id("BE 0411.905.847", "buyer.vat_id") == "BE0411905847"


@pytest.mark.parametrize("vat_id", ["DE136695977", "NL004495446B01", "XX123", ""])
def test_invalid_vat_id_is_refused_naming_the_field(vat_id: str) -> None:
    with pytest.raises(InputError, match="not a valid EU VAT id") as caught:
        validate_vat_id(vat_id, "buyer_vat_id")
    assert caught.value.field == "buyer_vat_id"


def test_vat_country_maps_greece() -> None:
    assert vat_country("EL094259216") == "GR"
    assert vat_country("DE136695976") == "DE"
    assert "GR" in EU_MEMBER_STATES and "EL" not in EU_MEMBER_STATES
    assert len(EU_MEMBER_STATES) == 27


def _treat(**overrides: object) -> VatTreatment:
    arguments: dict[str, object] = {
        "seller_country": "NL",
        "standard_rate": Decimal("21"),
        "buyer_country": "NL",
        "buyer_vat_id": None,
        "buyer_is_business": True,
    }
    arguments.update(overrides)
    return vat_treatment(**arguments)  # type: ignore[arg-type]


def test_domestic_business_pays_the_standard_rate() -> None:
    assert _treat(buyer_vat_id="NL004495445B01") == STANDARD_21


def test_eu_cross_border_business_with_vat_id_is_reverse_charged() -> None:
    treatment = _treat(buyer_country="DE", buyer_vat_id="DE 136 695 976")
    assert treatment == REVERSE_CHARGE
    assert treatment.category is VatCategory.REVERSE_CHARGE
    assert treatment.rate == 0
    assert treatment.exemption_code == "VATEX-EU-AE"
    assert "Art. 196" in (treatment.exemption_reason or "")


def test_eu_cross_border_without_vat_id_or_to_a_consumer_pays_the_standard_rate() -> None:
    assert _treat(buyer_country="DE") == STANDARD_21
    assert _treat(buyer_country="DE", buyer_is_business=False) == STANDARD_21


def test_business_outside_the_eu_is_out_of_scope() -> None:
    treatment = _treat(buyer_country="US")
    assert treatment == OUTSIDE_EU
    assert (treatment.category, treatment.rate, treatment.exemption_code) == (
        VatCategory.OUT_OF_SCOPE,
        Decimal("0"),
        "VATEX-EU-O",
    )
    assert "Art. 44" in (treatment.exemption_reason or "")


def test_public_law_fee_is_out_of_scope_whoever_pays() -> None:
    for buyer_country, vat_id in [("NL", None), ("DE", "DE136695976"), ("US", None)]:
        treatment = _treat(buyer_country=buyer_country, buyer_vat_id=vat_id, public_law_fee=True)
        assert treatment == PUBLIC_AUTHORITY
        assert "Art. 13" in (treatment.exemption_reason or "")


def test_vat_treatment_refuses_bad_input() -> None:
    with pytest.raises(InputError, match="not of the buyer's country") as mismatch:
        _treat(buyer_country="FR", buyer_vat_id="DE136695976")
    assert mismatch.value.field == "buyer_vat_id"
    with pytest.raises(InputError, match="not a valid EU VAT id"):
        _treat(buyer_country="DE", buyer_vat_id="DE136695977")
    with pytest.raises(InputError, match="not an EU member state"):
        _treat(seller_country="CH")
    with pytest.raises(InputError, match="alpha-2"):
        _treat(buyer_country="Germany")
    with pytest.raises(InputError, match="rate above 0"):
        _treat(standard_rate=Decimal("0"))


def test_breakdown_groups_by_category_and_rounds_per_group() -> None:
    # Three lines of 0.10 at 25 % (the Danish and Swedish standard rate): rounding each line would give
    # 3 × 0.03 = 0.09; EN 16931 rounds the group, 0.30 × 25 % = 0.075 → 0.08.
    standard_25 = VatTreatment(VatCategory.STANDARD, Decimal("25"), None, None)
    lines = [Line(Decimal("0.10"), standard_25)] * 3 + [Line(Decimal("100.00"), REVERSE_CHARGE)]
    groups, net_total, vat_total, gross_total = vat_breakdown(lines)
    assert [(g.category, g.taxable_amount, g.tax_amount) for g in groups] == [
        (VatCategory.STANDARD, Decimal("0.30"), Decimal("0.08")),
        (VatCategory.REVERSE_CHARGE, Decimal("100.00"), Decimal("0.00")),
    ]
    assert groups[1].exemption_code == "VATEX-EU-AE"
    assert (net_total, vat_total, gross_total) == (Decimal("100.30"), Decimal("0.08"), Decimal("100.38"))


def test_breakdown_refuses_two_exemption_reasons_in_one_group() -> None:
    lines = [Line(Decimal("1.00"), PUBLIC_AUTHORITY), Line(Decimal("1.00"), OUTSIDE_EU)]
    with pytest.raises(InputError, match="different exemption reasons"):
        vat_breakdown(lines)


def test_empty_breakdown_is_zero() -> None:
    assert vat_breakdown([]) == ([], Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))


TREATMENTS = [
    STANDARD_21,
    VatTreatment(VatCategory.STANDARD, Decimal("9"), None, None),  # the Dutch reduced rate
    VatTreatment(VatCategory.STANDARD, Decimal("19"), None, None),  # the German standard rate
    REVERSE_CHARGE,
    EXEMPT_PUBLIC_INTEREST,
]
lines_strategy = st.lists(
    st.builds(
        Line,
        net_amount=st.integers(min_value=0, max_value=10**9).map(lambda cents: Decimal(cents) / 100),
        vat=st.sampled_from(TREATMENTS),
    ),
    max_size=30,
)


@given(lines_strategy)
def test_breakdown_totals_add_up(lines: list[Line]) -> None:
    groups, net_total, vat_total, gross_total = vat_breakdown(lines)
    assert gross_total == net_total + vat_total
    assert sum((g.taxable_amount for g in groups), Decimal("0")) == net_total
    assert net_total == sum((line.net_amount for line in lines), Decimal("0"))
    assert vat_total == sum((g.tax_amount for g in groups), Decimal("0"))
    assert len({(g.category, g.rate) for g in groups}) == len(groups)
    for group in groups:
        assert group.tax_amount == round_amount(group.taxable_amount * group.rate / 100)
