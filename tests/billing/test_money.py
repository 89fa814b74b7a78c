"""Money: half-up rounding to cents, strict parsing that names the field, ISO 4217 codes, display."""

from __future__ import annotations

from decimal import Decimal

import pytest

from phds.billing.money import CENT, check_currency, format_money, parse_amount, round_amount
from phds.errors import InputError


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        ("0.125", "0.13"),
        ("2.675", "2.68"),  # the float 2.675 is 2.67499999..., which is why no float carries money
        ("0.124999", "0.12"),
        ("10", "10.00"),
        ("0.005", "0.01"),
    ],
)
def test_round_amount_is_half_up_to_cents(value: str, rounded: str) -> None:
    result = round_amount(Decimal(value))
    assert result == Decimal(rounded)
    assert result.as_tuple().exponent == CENT.as_tuple().exponent


@pytest.mark.parametrize(
    ("text", "amount"),
    [("12.5", "12.50"), (" 7 ", "7.00"), (7, "7.00"), (Decimal("0.10"), "0.10"), ("12.500", "12.50")],
)
def test_parse_amount_accepts_decimal_text_and_gives_two_decimals(
    text: str | int | Decimal, amount: str
) -> None:
    parsed = parse_amount(text, "unit_price")
    assert parsed == Decimal(amount)
    assert str(parsed) == amount


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (0.1, "not float"),
        (True, "not bool"),
        ("-1.00", "is negative"),
        ("1.005", "more than 2 decimals"),
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("twelve", "not a decimal number"),
    ],
)
def test_parse_amount_refuses_and_names_the_field(text: object, reason: str) -> None:
    with pytest.raises(InputError, match=reason) as caught:
        parse_amount(text, "unit_price")  # type: ignore[arg-type]
    assert caught.value.field == "unit_price"
    assert "field unit_price" in str(caught.value)


def test_check_currency_knows_iso_4217() -> None:
    assert check_currency("EUR", "currency") == "EUR"
    assert check_currency("CHF", "currency") == "CHF"
    with pytest.raises(InputError) as caught:
        check_currency("EUX", "currency")
    assert str(caught.value) == "field currency: unknown currency 'EUX'"
    with pytest.raises(InputError, match="unknown currency 'eur'"):
        check_currency("eur", "invoice.currency")


def test_format_money_follows_the_locale() -> None:
    assert format_money(Decimal("1234.5"), "EUR") == "€1,234.50"
    assert format_money(Decimal("1234.5"), "EUR", "de_DE") == "1.234,50\xa0€"
