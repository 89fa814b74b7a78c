"""Money: exact decimal amounts in one currency, rounded as EN 16931 requires."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, list_currencies

from phds.errors import InputError

#: EN 16931 amounts have at most two decimals (BR-DEC-01 and the other BR-DEC rules).
CENT = Decimal("0.01")


def round_amount(value: Decimal) -> Decimal:
    """*value* rounded half-up to the cent."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_amount(text: str | int | Decimal, field: str) -> Decimal:
    """A non-negative amount of at most two decimals; floats are refused (0.1 has no exact value)."""
    if isinstance(text, float | bool):
        raise InputError("write amounts as decimal strings, not floats", field=field)
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise InputError(f"{text!r} is not an amount", field=field) from None
    if not value.is_finite():
        raise InputError(f"{text!r} is not a finite amount", field=field)
    if value < 0:
        raise InputError(f"an amount may not be negative ({value})", field=field)
    if value != value.quantize(CENT):
        raise InputError(f"an amount has at most two decimals ({value})", field=field)
    return value.quantize(CENT)


def check_currency(code: str, field: str) -> str:
    """An ISO 4217 currency code known to CLDR (through babel)."""
    if code not in list_currencies():
        raise InputError(f"unknown currency {code!r}", field=field)
    return code


def format_money(amount: Decimal, currency: str, locale: str = "en_IE") -> str:
    return str(format_currency(amount, currency, locale=locale))
