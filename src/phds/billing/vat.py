"""VAT for the network's services: which treatment a line gets, VAT ids, and the EN 16931 breakdown.

Sources: Council Directive 2006/112/EC (the VAT Directive), EN 16931-1:2017 (the European e-invoicing
semantic model, its business terms BT-n and business rules BR-n), the UNTDID 5305 VAT category codes
and the CEF VATEX exemption reason code list that EN 16931 uses for BT-121.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError

from phds.errors import InputError

from .money import round_amount

# The 27 member states (ISO 3166-1 alpha-2) since 1 February 2020 (the UK's withdrawal).
EU_MEMBER_STATES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip

# VAT id prefixes that are not the ISO country code: Greece uses 'EL' (VAT Directive Art. 215 lets
# each state pick its prefix; ISO 3166 says GR), and 'XI' is Northern Ireland's prefix for goods.
_PREFIX_COUNTRY = {"EL": "GR", "XI": "GB"}

_COUNTRY_CODE = re.compile(r"[A-Z]{2}")


class VatCategory(StrEnum):
    """VAT category codes of UNTDID 5305, as EN 16931 uses them (BT-118, BT-151)."""

    STANDARD = "S"
    REVERSE_CHARGE = "AE"
    EXEMPT = "E"
    OUT_OF_SCOPE = "O"


@dataclass(frozen=True)
class VatTreatment:
    """How VAT applies to one line: category, rate (a percentage) and, for 0 % categories, why."""

    category: VatCategory
    rate: Decimal
    exemption_reason: str | None
    exemption_code: str | None

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Decimal) or not self.rate.is_finite() or not 0 <= self.rate < 100:
            raise InputError(f"VAT rate {self.rate!r} is not a percentage from 0 to 100", field="vat.rate")
        if self.category is VatCategory.STANDARD:
            # BR-S-05: a standard-rated line has a rate above zero; no exemption reason (BR-S-10).
            if self.rate == 0 or self.exemption_reason or self.exemption_code:
                raise InputError("a standard-rated line needs a rate above 0 and no exemption", field="vat")
        else:
            # BR-AE-05, BR-E-05: rate 0; BR-AE-10, BR-E-10, BR-O-10: an exemption reason text or code.
            if self.rate != 0:
                raise InputError(f"VAT category {self.category.value} has rate 0", field="vat.rate")
            if not (self.exemption_reason or self.exemption_code):
                raise InputError(f"VAT category {self.category.value} needs an exemption reason", field="vat")


# VATEX codes (CEF VATEX code list, version 5): VATEX-EU-AE reverse charge, VATEX-EU-O not subject to
# VAT, VATEX-EU-132 exempt under Art. 132 (activities in the public interest, e.g. 132(1)(b) hospital
# and medical care by bodies governed by public law).
REVERSE_CHARGE = VatTreatment(
    VatCategory.REVERSE_CHARGE,
    Decimal("0"),
    "Reverse charge: VAT Directive 2006/112/EC Art. 196",
    "VATEX-EU-AE",
)
PUBLIC_AUTHORITY = VatTreatment(
    VatCategory.OUT_OF_SCOPE,
    Decimal("0"),
    "Not subject to VAT: a body governed by public law acting as a public authority "
    "(VAT Directive 2006/112/EC Art. 13(1))",
    "VATEX-EU-O",
)
OUTSIDE_EU = VatTreatment(
    VatCategory.OUT_OF_SCOPE,
    Decimal("0"),
    "Not subject to EU VAT: place of supply at the customer's establishment outside the EU "
    "(VAT Directive 2006/112/EC Art. 44)",
    "VATEX-EU-O",
)
EXEMPT_PUBLIC_INTEREST = VatTreatment(
    VatCategory.EXEMPT,
    Decimal("0"),
    "Exempt: VAT Directive 2006/112/EC Art. 132 (activities in the public interest)",
    "VATEX-EU-132",
)


def validate_vat_id(vat_id: str, field: str = "vat_id") -> str:
    """*vat_id* in compact form ('NL 0044.95.445 B01' → 'NL004495445B01') if its check digits hold.

    Only the format and check digits are verified (python-stdnum); whether the number is registered is
    a VIES question, which this pure layer does not ask.
    """
    if not isinstance(vat_id, str):
        raise InputError("a VAT id must be text", field=field)
    try:
        compact: str = eu_vat.validate(vat_id)
    except ValidationError:
        raise InputError(f"{vat_id!r} is not a valid EU VAT id", field=field) from None
    return compact


def vat_country(vat_id: str) -> str:
    """The ISO 3166-1 country of a valid VAT id ('EL094259216' → 'GR'); InputError if it is not valid."""
    prefix = validate_vat_id(vat_id)[:2]
    return _PREFIX_COUNTRY.get(prefix, prefix)


def _check_country(code: str, field: str) -> str:
    if not isinstance(code, str) or not _COUNTRY_CODE.fullmatch(code):
        raise InputError(f"{code!r} is not an ISO 3166-1 alpha-2 country code", field=field)
    return code


def vat_treatment(
    *,
    seller_country: str,
    standard_rate: Decimal,
    buyer_country: str,
    buyer_vat_id: str | None,
    buyer_is_business: bool,
    public_law_fee: bool = False,
) -> VatTreatment:
    """The VAT treatment of a service an EU seller supplies to a buyer.

    In order: a public-law fee is out of scope (Art. 13); an EU business in another member state with a
    valid VAT id of that state is reverse-charged (Art. 44 + Art. 196); a business outside the EU is out
    of scope of EU VAT (Art. 44); everything else is standard-rated at the seller's *standard_rate*
    (Art. 45 for consumers; an EU business without a VAT id is treated as a consumer, Implementing
    Regulation (EU) No 282/2011 Art. 18(2)).
    """
    _check_country(seller_country, "seller_country")
    _check_country(buyer_country, "buyer_country")
    if seller_country not in EU_MEMBER_STATES:
        raise InputError(f"seller country {seller_country} is not an EU member state", field="seller_country")
    if buyer_vat_id is not None:
        buyer_vat_id = validate_vat_id(buyer_vat_id, "buyer_vat_id")
        if vat_country(buyer_vat_id) != buyer_country:
            raise InputError(
                f"VAT id {buyer_vat_id} is not of the buyer's country {buyer_country}", field="buyer_vat_id"
            )
    if public_law_fee:
        return PUBLIC_AUTHORITY
    if buyer_is_business and buyer_country in EU_MEMBER_STATES:
        if buyer_country != seller_country and buyer_vat_id is not None:
            return REVERSE_CHARGE
    elif buyer_is_business:
        return OUTSIDE_EU
    return VatTreatment(VatCategory.STANDARD, standard_rate, None, None)


class TaxableLine(Protocol):
    """What the breakdown needs of a line: its net amount and its VAT treatment."""

    @property
    def net_amount(self) -> Decimal: ...

    @property
    def vat(self) -> VatTreatment: ...


@dataclass(frozen=True)
class VatBreakdown:
    """One VAT breakdown group of EN 16931 (BG-23): BT-118 .. BT-121 and the amounts BT-116, BT-117."""

    category: VatCategory
    rate: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal
    exemption_reason: str | None
    exemption_code: str | None


def vat_breakdown(lines: Iterable[TaxableLine]) -> tuple[list[VatBreakdown], Decimal, Decimal, Decimal]:
    """The VAT breakdown groups (in order of first appearance), net total, VAT total and gross total.

    EN 16931: one group per VAT category and rate; its taxable amount is the sum of its line net amounts
    (BR-S-08, BR-AE-08, BR-E-08, BR-O-08), its tax amount that sum × rate / 100 rounded to 2 decimals
    (BR-S-09); the net total is the sum of line net amounts (BR-CO-10, no allowances or charges here),
    the VAT total the sum of the group tax amounts (BR-CO-14), the gross total net + VAT (BR-CO-15).
    """
    groups: dict[tuple[VatCategory, Decimal], list[Decimal]] = {}
    treatments: dict[tuple[VatCategory, Decimal], VatTreatment] = {}
    for line in lines:
        key = (line.vat.category, line.vat.rate)
        first = treatments.setdefault(key, line.vat)
        if first != line.vat:
            # One group carries one exemption reason (BT-120/BT-121); two reasons cannot share it.
            raise InputError(
                f"lines in VAT category {key[0].value} give different exemption reasons", field="lines"
            )
        groups.setdefault(key, []).append(round_amount(line.net_amount))
    breakdown = []
    for key, amounts in groups.items():
        taxable = round_amount(sum(amounts, Decimal("0")))
        treatment = treatments[key]
        breakdown.append(
            VatBreakdown(
                category=treatment.category,
                rate=treatment.rate,
                taxable_amount=taxable,
                tax_amount=round_amount(taxable * treatment.rate / 100),
                exemption_reason=treatment.exemption_reason,
                exemption_code=treatment.exemption_code,
            )
        )
    net_total = round_amount(sum((group.taxable_amount for group in breakdown), Decimal("0")))
    vat_total = round_amount(sum((group.tax_amount for group in breakdown), Decimal("0")))
    return breakdown, net_total, vat_total, net_total + vat_total
