"""``phds billing invoice|statement|verify``: monthly invoices, hospitals' earnings, and checking both.

The operator issues a finished month's invoices, records payments and cancels unpaid invoices with
credit notes; a requester reads and downloads its own. ``verify`` checks an invoice against the node
signatures behind it, recomputing every line from the signed receipts: it exits 0 when everything
follows from what the nodes signed, and 4 (as ``phds study verify``), listing each problem, otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from phds.cli.billing_common import (
    AsJson,
    Hub,
    Period,
    Token,
    amount,
    console,
    hub_client,
    print_json,
    table,
    when,
)
from phds.documents import read_document
from phds.errors import ConfigError
from phds.protocol.billing import InvoiceView

invoice_app = typer.Typer(help="Invoices and credit notes: issue, list, show, download, pay, credit.")

Number = Annotated[str, typer.Argument(metavar="NUMBER", help="Invoice number.", show_default=False)]
VERIFY_EXIT = 4  # what SignatureInvalid exits with: something the hub relayed is not what the nodes signed


def register(root: typer.Typer) -> None:
    """Add the ``invoice`` group and the ``statement``, ``payout`` and ``verify`` commands."""
    root.add_typer(invoice_app, name="invoice", no_args_is_help=True)
    root.command("statement")(statement)
    root.command("payout")(payout)
    root.command("verify")(verify)


def _invoices_table(title: str, invoices: list[InvoiceView], empty: str) -> None:
    rows = [
        (
            i.number,
            i.kind.replace("_", " ") + (f" of {i.credit_of}" if i.credit_of else ""),
            i.organisation,
            i.period,
            i.state + (" (overdue)" if i.overdue else ""),
            amount(i.net_total),
            amount(i.gross_total, i.currency),
            i.due_date,
        )
        for i in invoices
    ]
    columns = ["number", "kind", "organisation", "period", "state", "net total", "gross total", "due"]
    table(title, columns, rows, empty=empty)


def _print_invoice(invoice: InvoiceView) -> None:
    kind = invoice.kind.replace("_", " ")
    console().print(
        f"[bold]{kind} {invoice.number}[/] · {invoice.organisation} · {invoice.period} · "
        f"[bold]{invoice.state}[/]{' (overdue)' if invoice.overdue else ''} · tariff {invoice.tariff_version}"
    )
    console().print(
        f"issued {when(invoice.issued_at)} · due {invoice.due_date}"
        + (f" · paid {when(invoice.paid_at)}" if invoice.paid_at else "")
        + (f" · credits {invoice.credit_of}" if invoice.credit_of else "")
    )
    rows = [
        (
            line.line_id,
            line.description,
            line.quantity,
            line.unit_price,
            line.net_amount,
            len(line.receipt_ids),
        )
        for line in invoice.lines
    ]
    table(None, ["line", "description", "quantity", "unit price", "net amount", "receipts"], rows, empty="")
    c = invoice.currency
    console().print(
        f"net {amount(invoice.net_total, c)} · VAT {amount(invoice.vat_total, c)} · "
        f"[bold]gross {amount(invoice.gross_total, c)}[/]"
    )


@invoice_app.command("issue")
def invoice_issue(
    period: Period,
    close_early: Annotated[
        bool, typer.Option("--close-early", help="Invoice the running month up to now.")
    ] = False,
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Issue every requester's invoice for a finished month (the operator).

    Invoices issued already are skipped; receipts not invoiced yet carry over to the next month."""
    with hub_client(hub, token) as client:
        issued = client.billing.issue(period, close_early=close_early)
    if as_json:
        print_json(issued)
    else:
        _invoices_table(f"Invoices issued for {period}", issued, f"no invoices to issue for {period}")


@invoice_app.command("list")
def invoice_list(
    period: Annotated[str | None, typer.Option("--period", help="Only this month (YYYY-MM).")] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """List the invoices and credit notes you may see (your organisation's; all for the operator)."""
    with hub_client(hub, token) as client:
        invoices = client.invoices.list(period)
    if as_json:
        print_json(invoices)
    else:
        _invoices_table("Invoices", invoices, "no invoices")


@invoice_app.command("show")
def invoice_show(number: Number, as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """Show an invoice's lines (each with the signed receipts behind it) and totals."""
    with hub_client(hub, token) as client:
        invoice = client.invoices.get(number)
    if as_json:
        print_json(invoice)
    else:
        _print_invoice(invoice)


@invoice_app.command("download")
def invoice_download(
    number: Number,
    format: Annotated[
        Literal["pdf", "html", "xml", "json"],
        typer.Option("--format", help="pdf (PDF/A-3 with Factur-X XML), html, xml (EN 16931) or json."),
    ] = "pdf",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="File or folder to write (default: NUMBER.FORMAT here).", show_default=False
        ),
    ] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Download an invoice's document; print the path written."""
    with hub_client(hub, token) as client:
        written = client.invoices.download(number, out or Path(f"{number}.{format}"), format=format)
    if as_json:
        print_json(
            {"number": number, "format": format, "path": str(written), "bytes": written.stat().st_size}
        )
    else:
        typer.echo(str(written))


@invoice_app.command("pay")
def invoice_pay(
    number: Number,
    reference: Annotated[
        str | None, typer.Option("--reference", help="The payment's reference (e.g. the bank transfer).")
    ] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Record that an issued invoice was paid, now (the operator); its hospitals' shares become payable."""
    with hub_client(hub, token) as client:
        invoice = client.billing.record_payment(number, reference)
    if as_json:
        print_json(invoice)
    else:
        console().print(f"invoice {invoice.number} paid: {amount(invoice.gross_total, invoice.currency)}")


@invoice_app.command("credit")
def invoice_credit(
    number: Number,
    reason: Annotated[
        str, typer.Option("--reason", help="Why the invoice is cancelled.", show_default=False)
    ],
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Cancel an issued, unpaid invoice with a credit note (the operator).

    The month may then be invoiced again."""
    with hub_client(hub, token) as client:
        note = client.billing.credit(number, reason)
    if as_json:
        print_json(note)
    else:
        console().print(f"credit note {note.number} cancels invoice {number}")


def statement(
    hospital: Annotated[str, typer.Argument(metavar="HOSPITAL", help="Hospital name.", show_default=False)],
    period: Period,
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """A hospital's earnings of a month, and what of them is payable.

    Its share of each invoice line of the month; payable are the shares of paid invoices. For the
    operator, or the hospital's steward or node.
    """
    with hub_client(hub, token) as client:
        found = client.billing.statement(hospital, period)
    if as_json:
        print_json(found)
        return
    rows = [
        (
            line.invoice,
            line.invoice_state,
            line.line_id,
            line.description,
            amount(line.amount),
            len(line.receipt_ids),
        )
        for line in found.lines
    ]
    columns = ["invoice", "state", "line", "description", "amount", "receipts"]
    table(f"{found.hospital}: {found.period}", columns, rows, empty=f"no earnings for {hospital} in {period}")
    c = found.currency
    console().print(
        f"total {amount(found.total, c)} · payable {amount(found.payable, c)} · paid out "
        f"{amount(found.paid_out, c)}"
    )


def payout(
    hospital: Annotated[str, typer.Argument(metavar="HOSPITAL", help="Hospital name.", show_default=False)],
    period: Period,
    reference: Annotated[str | None, typer.Option("--reference", help="The transfer's reference.")] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Pay a hospital its shares of a month's paid invoices not paid out yet (the operator)."""
    with hub_client(hub, token) as client:
        paid = client.billing.record_payout(hospital, period, reference)
    if as_json:
        print_json(paid)
    else:
        console().print(f"paid {hospital} {amount(paid.amount)} for {period} from {', '.join(paid.invoices)}")


def _trusted_keys(given: list[str]) -> dict[str, str]:
    """``--trust-keys`` values: a JSON or YAML file of hospital → key, or ``HOSPITAL=KEY``."""
    keys: dict[str, str] = {}
    for value in given:
        if Path(value).is_file():
            data, _ = read_document(value, max_bytes=100_000, what="key file")
            if not isinstance(data, dict) or not all(isinstance(k, str) for k in data.values()):
                raise ConfigError(f"{value}: not a mapping of hospital → node public key")
            keys |= {str(h): k for h, k in data.items()}
        elif "=" in value:
            hospital, _, key = value.partition("=")
            keys[hospital.strip()] = key.strip()
        else:
            raise ConfigError(f"--trust-keys {value!r}: neither a key file nor HOSPITAL=KEY")
    return keys


def verify(
    number: Number,
    trust_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-keys",
            help="Node keys to pin: a JSON/YAML file of hospital → public key, or HOSPITAL=KEY (repeatable). "
            "Default: the keys the hub pinned at enrolment.",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Check an invoice against the node signatures behind it; exit 4, listing each problem, if any.

    Every receipt must verify against its hospital's node key, every application fee must rest on the
    hospitals' signed participation, and every line is recomputed from the verified receipts under the
    invoice's tariff version.
    """
    pinned = _trusted_keys(trust_keys) if trust_keys else None
    with hub_client(hub, token) as client:
        if pinned is None:
            console(stderr=True).print(
                "no --trust-keys: trusting the node keys the hub pinned at enrolment (pin your own with "
                "--trust-keys: that is stronger)"
            )
        check = client.invoices.verify(number, pinned)
    if as_json:
        body = {"number": check.number, "ok": check.ok, "lines": check.lines, "receipts": check.receipts}
        typer.echo(json.dumps(body | {"problems": check.problems}, indent=2))
    elif check.ok:
        console().print(f"ok: {check.lines} lines, {check.receipts} receipts verified against the node keys")
    else:
        n = len(check.problems)
        console().print(f"[bold red]invoice {check.number} does not verify[/]: {n} problem{'s' * (n > 1)}")
        for problem in check.problems:
            console().print(f"- {problem}")
    if not check.ok:
        # SystemExit, not typer.Exit: main() runs click with standalone_mode=False (see omop_profile).
        raise SystemExit(VERIFY_EXIT)
