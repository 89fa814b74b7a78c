"""The money path from the SDK: applications, quotes and invoices (the hub's ``/api/v1/billing``).

    with Client(hub_url, token) as hub:
        app = hub.applications.file("asthma-application.yaml")
        [quote] = hub.quotes.of(app.id)               # once the operator has priced it
        hub.quotes.accept(quote.id)                   # its total is the binding ceiling
        hub.invoices.frame()                          # one row per invoice
        check = hub.invoices.verify("INV-2026-000001")  # against the node keys, trusting nothing else
        hub.invoices.download("INV-2026-000001", "invoice.pdf")

The operator's calls (tariffs, billing profiles, quoting, issuing, payments, credit notes, hospital
statements) are on ``hub.billing``. Amounts are :class:`~decimal.Decimal`, exact, in the typed objects
and in the frames alike (``frame["gross_total"].astype(float)`` to plot them).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pandas as pd
from pydantic import BaseModel

from phds.billing.applications import ApplicationForm, load_application
from phds.billing.tariff import Tariff, load_tariff
from phds.billing.verify import InvoiceCheck, verify_invoice
from phds.documents import load_model, model_from_document
from phds.errors import InputError, NotFound
from phds.protocol.billing import (
    ApplicationView,
    BillingProfile,
    HospitalStatement,
    InvoiceEvidence,
    InvoiceView,
    Payout,
    QuoteView,
    TariffInfo,
)

if TYPE_CHECKING:
    from phds.sdk.client import Client

M = TypeVar("M", bound=BaseModel)

MAX_PROFILE_BYTES = 100_000
DocumentFormat = Literal["pdf", "html", "xml", "json"]
FORMATS: tuple[str, ...] = ("pdf", "html", "xml", "json")

APPLICATION_COLUMNS = ["id", "organisation", "title", "state", "hospitals", "services", "duration_months"]
APPLICATION_COLUMNS += ["participating", "quote_state", "currency", "ceiling", "charged", "created_at"]
QUOTE_COLUMNS = ["id", "application_id", "revision", "state", "tariff_version", "currency", "ceiling"]
QUOTE_COLUMNS += ["lines", "valid_until", "created_at", "decided_at"]
INVOICE_COLUMNS = ["number", "kind", "organisation", "period", "state", "currency", "net_total"]
INVOICE_COLUMNS += ["vat_total", "gross_total", "issued_at", "due_date", "paid_at", "overdue", "credit_of"]
INVOICE_COLUMNS += ["lines"]
LINE_COLUMNS = ["invoice", "line_id", "application_id", "study_id", "service", "description", "quantity"]
LINE_COLUMNS += ["unit_code", "unit_price", "net_amount", "receipts", "pass_through_hospital"]

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def load_profile(path: str | Path) -> BillingProfile:
    """Read a billing profile file (YAML or JSON); errors name the file, line and field."""
    return load_model(BillingProfile, path, max_bytes=MAX_PROFILE_BYTES, what="billing profile")


def _segment(value: str, field: str) -> str:
    """*value* as one path segment of a URL (ids, invoice numbers, organisation names)."""
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise InputError(f"not a valid {field.replace('_', ' ')}: {value!r}", field=field)
    return value


def _period(period: str) -> str:
    if not isinstance(period, str) or not _PERIOD.fullmatch(period):
        raise InputError(f"{period!r} is not a month (YYYY-MM)", field="period")
    return period


def _document(model: type[M], given: M | Mapping[str, Any] | str | Path, read: Any) -> M:
    """*given* as *model*: the model itself, a mapping (validated), or a file read by *read*."""
    if isinstance(given, model):
        return given
    if isinstance(given, Mapping):
        return model_from_document(model, given)
    if isinstance(given, str | Path):
        loaded: M = read(given)
        return loaded
    raise InputError(f"expected a {model.__name__}, a mapping or a file path, not {type(given).__name__}")


class Applications:
    """Data-access applications (``client.applications``): a requester files them, the operator quotes."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def file(self, form: ApplicationForm | Mapping[str, Any] | str | Path) -> ApplicationView:
        """File an application given as an :class:`ApplicationForm`, a mapping, or a YAML/JSON file's path
        (a malformed file is an :class:`~phds.errors.InputError` naming its file, line and field)."""
        body = _document(ApplicationForm, form, load_application)
        return ApplicationView.model_validate(
            self._client._request("POST", "/billing/applications", json=body.model_dump(mode="json"))
        )

    def list(self) -> builtins.list[ApplicationView]:
        """The applications this token may see (its organisation's, its hospital's, or all: the operator)."""
        return [
            ApplicationView.model_validate(a) for a in self._client._request("GET", "/billing/applications")
        ]

    def get(self, application_id: str) -> ApplicationView:
        """One application: its quotes, the hospitals' signed participation, what it has cost so far."""
        path = f"/billing/applications/{_segment(application_id, 'application_id')}"
        return ApplicationView.model_validate(self._client._request("GET", path))

    def frame(self) -> pd.DataFrame:
        """:meth:`list` as a frame, one row per application (its latest quote's state and ceiling)."""
        rows = []
        for app in self.list():
            latest = max(app.quotes, key=lambda q: q.revision) if app.quotes else None
            form = app.form
            rows.append(
                {
                    "id": app.id,
                    "organisation": app.organisation,
                    "title": form.get("title"),
                    "state": app.state,
                    "hospitals": ", ".join(form.get("hospitals", [])),
                    "services": ", ".join(str(s.get("service")) for s in form.get("services", [])),
                    "duration_months": form.get("duration_months"),
                    "participating": ", ".join(sorted(p.hospital for p in app.participations if p.accepted)),
                    "quote_state": latest.state if latest else None,
                    "currency": latest.currency if latest else None,
                    "ceiling": latest.ceiling if latest else None,
                    "charged": app.charged,
                    "created_at": app.created_at,
                }
            )
        return pd.DataFrame(rows, columns=APPLICATION_COLUMNS)


class Quotes:
    """An application's quotes (``client.quotes``): the operator prices, the requester decides."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def of(self, application_id: str) -> builtins.list[QuoteView]:
        """Every revision of the application's quote, oldest first."""
        return sorted(self._client.applications.get(application_id).quotes, key=lambda q: q.revision)

    def accept(self, quote_id: str) -> QuoteView:
        """Accept an offered quote: its total becomes the application's binding ceiling."""
        return self._decide(quote_id, "accept")

    def decline(self, quote_id: str) -> QuoteView:
        """Decline an offered quote."""
        return self._decide(quote_id, "decline")

    def frame(self, application_id: str) -> pd.DataFrame:
        """:meth:`of` as a frame, one row per quote revision."""
        rows = [
            {
                "id": q.id,
                "application_id": q.application_id,
                "revision": q.revision,
                "state": q.state,
                "tariff_version": q.tariff_version,
                "currency": q.currency,
                "ceiling": q.ceiling,
                "lines": len(q.lines),
                "valid_until": q.valid_until,
                "created_at": q.created_at,
                "decided_at": q.decided_at,
            }
            for q in self.of(application_id)
        ]
        return pd.DataFrame(rows, columns=QUOTE_COLUMNS)

    def _decide(self, quote_id: str, decision: str) -> QuoteView:
        path = f"/billing/quotes/{_segment(quote_id, 'quote_id')}/{decision}"
        return QuoteView.model_validate(self._client._request("POST", path))


class Invoices:
    """Invoices and credit notes (``client.invoices``): read them, download them, verify them."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, period: str | None = None) -> builtins.list[InvoiceView]:
        """The invoices this token may see (its organisation's; all: the operator), of *period* if given."""
        params = {"period": _period(period)} if period is not None else {}
        found = self._client._request("GET", "/billing/invoices", params=params)
        return [InvoiceView.model_validate(i) for i in found]

    def get(self, number: str) -> InvoiceView:
        """One invoice or credit note, with its lines and the receipts behind each."""
        path = f"/billing/invoices/{_segment(number, 'number')}"
        return InvoiceView.model_validate(self._client._request("GET", path))

    def frame(self, period: str | None = None) -> pd.DataFrame:
        """:meth:`list` as a frame, one row per invoice (``lines`` counts its lines)."""
        rows = []
        for invoice in self.list(period):
            row = invoice.model_dump(include=set(INVOICE_COLUMNS) - {"lines"})
            rows.append(row | {"lines": len(invoice.lines)})
        return pd.DataFrame(rows, columns=INVOICE_COLUMNS)

    def lines(self, number: str) -> pd.DataFrame:
        """The invoice's lines as a frame (``receipts`` counts the signed receipts behind each line)."""
        invoice = self.get(number)
        rows = [
            line.model_dump(include=set(LINE_COLUMNS))
            | {"invoice": invoice.number, "receipts": len(line.receipt_ids)}
            for line in invoice.lines
        ]
        return pd.DataFrame(rows, columns=LINE_COLUMNS)

    def download(self, number: str, path: str | Path, format: DocumentFormat = "pdf") -> Path:
        """Write the invoice to *path* (a folder: ``<number>.<format>`` in it) and return the file's path.

        ``pdf`` is PDF/A-3 with the Factur-X (EN 16931) XML embedded; ``xml`` that XML alone; ``html``
        for reading; ``json`` the stored document."""
        if format not in FORMATS:
            raise InputError(f"format must be one of {', '.join(FORMATS)}, not {format!r}", field="format")
        target = Path(path)
        if target.is_dir():
            target = target / f"{number}.{format}"
        response = self._client._send(
            "GET", f"/billing/invoices/{_segment(number, 'number')}/document", params={"format": format}
        )
        try:
            target.write_bytes(response.content)
        except OSError as exc:
            raise InputError(f"cannot write the invoice: {exc.strerror or exc}", file=str(target)) from None
        return target

    def evidence(self, number: str) -> InvoiceEvidence:
        """What the invoice rests on: the node-signed receipts and participation, and its tariff version."""
        path = f"/billing/invoices/{_segment(number, 'number')}/evidence"
        return InvoiceEvidence.model_validate(self._client._request("GET", path))

    def verify(self, number: str, pinned: Mapping[str, str] | None = None) -> InvoiceCheck:
        """Check the invoice against the node signatures behind it, trusting nothing else the hub says
        (:func:`~phds.billing.verify.verify_invoice`): every receipt verified with its hospital's key, every
        line recomputed from the verified receipts under the invoice's tariff version. The result's ``ok``
        is false when anything failed, and its ``problems`` say what.

        *pinned* maps hospital → node public key. Without it the keys are the hub's
        (:meth:`Client.node_keys`, pinned at enrolment): that catches receipts altered after signing but
        trusts the hub for the keys themselves. Pinning keys you obtained from the hospitals is stronger."""
        keys = dict(pinned) if pinned is not None else self._client.node_keys()
        return verify_invoice(self.evidence(number), keys)


class BillingClient:
    """The money path on one :class:`~phds.sdk.client.Client` (``client.billing``).

    The requester's side is :attr:`applications`, :attr:`quotes` and :attr:`invoices` (also on the client
    itself); the operator's (an admin token) is the methods below. The hub answers what a token may not
    see with :class:`~phds.errors.NotFound`, what it may not do with :class:`~phds.errors.PermissionDenied`.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self.applications = Applications(client)
        self.quotes = Quotes(client)
        self.invoices = Invoices(client)

    # -- tariffs and profiles ---------------------------------------------------------------------------

    def tariffs(self) -> list[TariffInfo]:
        """Every tariff version, oldest first."""
        return [TariffInfo.model_validate(t) for t in self._client._request("GET", "/billing/tariffs")]

    def tariff(self, version: str) -> TariffInfo:
        """One tariff version (:class:`~phds.errors.NotFound` if there is none)."""
        for info in self.tariffs():
            if info.version == version:
                return info
        raise NotFound(f"no tariff version {version!r}")

    def add_tariff(self, tariff: Tariff | Mapping[str, Any] | str | Path) -> TariffInfo:
        """Add a tariff version (a :class:`Tariff`, a mapping, or a YAML/JSON file's path); versions are never
        edited, so an existing version or effective date is a :class:`~phds.errors.Conflict`."""
        body = _document(Tariff, tariff, load_tariff)
        return TariffInfo.model_validate(
            self._client._request("POST", "/billing/tariffs", json=body.model_dump(mode="json"))
        )

    def set_profile(
        self, organisation: str, profile: BillingProfile | Mapping[str, Any] | str | Path
    ) -> BillingProfile:
        """Set an organisation's invoicing details (a :class:`BillingProfile`, a mapping or a file's path)."""
        body = _document(BillingProfile, profile, load_profile)
        path = f"/billing/profiles/{_segment(organisation, 'organisation')}"
        return BillingProfile.model_validate(
            self._client._request("PUT", path, json=body.model_dump(mode="json"))
        )

    def profile(self, organisation: str) -> BillingProfile:
        """An organisation's billing profile (the operator, or the organisation itself)."""
        path = f"/billing/profiles/{_segment(organisation, 'organisation')}"
        return BillingProfile.model_validate(self._client._request("GET", path))

    # -- quoting, invoicing, payments -----------------------------------------------------------------

    def quote(self, application_id: str, waivers: Mapping[str, str] | None = None) -> QuoteView:
        """Price the application into a new quote revision under the tariff in force (an offered earlier
        revision is superseded); *waivers* maps a service to the recorded reason for waiving its fee."""
        path = f"/billing/applications/{_segment(application_id, 'application_id')}/quotes"
        body = {"waivers": dict(waivers)} if waivers else None
        return QuoteView.model_validate(self._client._request("POST", path, json=body))

    def issue(self, period: str, *, close_early: bool = False) -> list[InvoiceView]:
        """Issue every requester's invoice for the finished month *period* (``YYYY-MM``); those issued
        already are skipped, so the list may be empty. *close_early* invoices the running month up to
        now (later receipts go on the next month's invoice)."""
        params = {"period": _period(period), "close_early": str(close_early).lower()}
        found = self._client._request("POST", "/billing/invoices/issue", params=params)
        return [InvoiceView.model_validate(i) for i in found]

    def record_payment(
        self, number: str, reference: str | None = None, *, paid_at: datetime | None = None
    ) -> InvoiceView:
        """Record that an issued invoice was paid (default: now); its hospitals' shares become payable."""
        body = {"reference": reference, "paid_at": paid_at.isoformat() if paid_at else None}
        path = f"/billing/invoices/{_segment(number, 'number')}/payment"
        return InvoiceView.model_validate(self._client._request("POST", path, json=body))

    def credit(self, number: str, reason: str) -> InvoiceView:
        """Cancel an issued, unpaid invoice with a credit note; the credit note."""
        path = f"/billing/invoices/{_segment(number, 'number')}/credit"
        return InvoiceView.model_validate(self._client._request("POST", path, json={"reason": reason}))

    def record_payout(self, hospital: str, period: str, reference: str | None = None) -> Payout:
        """Pay *hospital* its shares of *period*'s paid invoices not paid out yet (a Conflict when none)."""
        body = {"hospital": hospital, "period": _period(period), "reference": reference}
        return Payout.model_validate(self._client._request("POST", "/billing/payouts", json=body))

    def statement(self, hospital: str, period: str) -> HospitalStatement:
        """A hospital's earnings of a month: its shares of the month's invoices, payable from paid ones."""
        path = f"/billing/statements/{_segment(hospital, 'hospital')}"
        found = self._client._request("GET", path, params={"period": _period(period)})
        return HospitalStatement.model_validate(found)
