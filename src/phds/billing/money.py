"""Money as :class:`~decimal.Decimal`: parsing, rounding, currency codes and display.

No float ever carries an amount: binary floating point cannot represent 0.10 exactly, and an invoice
that is off by a cent fails EN 16931's arithmetic rules (BR-CO-10 .. BR-CO-16).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, list_currencies

from phds.errors import InputError

CENT = Decimal("0.01")

# EN 16931-1:2017 allows at most two decimals in every amount it lists (BR-DEC-01 .. BR-DEC-28,
# e.g. BR-DEC-23 for the invoice line net amount BT-131 and BR-DEC-19 for the VAT category tax amount
# BT-117). Commercial rounding (half away from zero; half-up for the non-negative amounts used here)
# is the convention the standard's examples follow.


def round_amount(value: Decimal) -> Decimal:
    """*value* rounded half-up to two decimals."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _parse_decimal(text: str | int | Decimal, field: str) -> Decimal:
    if isinstance(text, bool) or not isinstance(text, str | int | Decimal):
        # A float such as 0.1 is already 0.1000000000000000055511151231257827 before we see it.
        raise InputError(f"an amount must be a decimal string, not {type(text).__name__}", field=field)
    try:
        value = Decimal(text.strip()) if isinstance(text, str) else Decimal(text)
    except InvalidOperation:
        raise InputError(f"{text!r} is not a decimal number", field=field) from None
    if not value.is_finite():
        raise InputError(f"{text!r} is not a finite number", field=field)
    if value < 0:
        raise InputError(f"{text!r} is negative", field=field)
    return value


def parse_amount(text: str | int | Decimal, field: str) -> Decimal:
    """A non-negative amount with at most two decimals, as a Decimal with exactly two.

    Refuses floats, NaN, infinity, negatives and a third significant decimal (BR-DEC rules); trailing
    zeros ("12.500") are accepted since they do not change the value.
    """
    value = _parse_decimal(text, field)
    try:
        rounded = value.quantize(CENT)
    except InvalidOperation:
        raise InputError(f"{text!r} is too large an amount", field=field) from None
    if rounded != value:
        raise InputError(f"{text!r} has more than 2 decimals", field=field)
    return rounded


def check_currency(code: str, field: str) -> str:
    """*code* if it is an ISO 4217 alphabetic currency code that CLDR knows, else InputError."""
    if not isinstance(code, str) or code not in list_currencies():
        raise InputError(f"unknown currency {code!r}", field=field)
    return code


def format_money(amount: Decimal, currency: str, locale: str = "en_IE") -> str:
    """*amount* in *currency* as a person in *locale* writes it, e.g. '€1,234.50' for en_IE."""
    return format_currency(amount, currency, locale=locale)
