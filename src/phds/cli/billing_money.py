"""``phds billing tariff|profile|application|quote``: prices, invoicing details, applications and quotes.

The operator (an admin token) adds tariff versions, sets billing profiles and quotes applications; a
requester files applications and accepts or declines their quotes. Files are YAML or JSON, and a
malformed one is refused before anything is sent, naming its file, line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phds.billing.applications import load_application
from phds.billing.tariff import load_tariff
from phds.cli.billing_common import AsJson, Hub, Token, amount, console, hub_client, print_json, table, when
from phds.errors import InputError
from phds.protocol.billing import ApplicationView, BillingProfile, QuoteView
from phds.sdk.billing import load_profile

tariff_app = typer.Typer(help="Tariff versions: the price of each service per requester category.")
profile_app = typer.Typer(help="Organisations' billing profiles: who invoices are addressed to.")
application_app = typer.Typer(help="Data-access applications: filed by requesters, quoted by the operator.")
quote_app = typer.Typer(help="Quotes: the operator prices an application, the requester decides.")

File = Annotated[
    Path, typer.Argument(metavar="FILE", help="A YAML or JSON file.", show_default=False, dir_okay=False)
]
AppId = Annotated[str, typer.Argument(metavar="APP_ID", help="Application id.", show_default=False)]
QuoteId = Annotated[str, typer.Argument(metavar="QUOTE_ID", help="Quote id.", show_default=False)]
Org = Annotated[str, typer.Argument(metavar="ORG", help="Organisation name.", show_default=False)]


def register(root: typer.Typer) -> None:
    """Add the ``tariff``, ``profile``, ``application`` and ``quote`` groups to ``phds billing``."""
    root.add_typer(tariff_app, name="tariff", no_args_is_help=True)
    root.add_typer(profile_app, name="profile", no_args_is_help=True)
    root.add_typer(application_app, name="application", no_args_is_help=True)
    root.add_typer(quote_app, name="quote", no_args_is_help=True)


# -- tariffs ------------------------------------------------------------------------------------------


@tariff_app.command("list")
def tariff_list(as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """List the tariff versions, oldest first."""
    with hub_client(hub, token) as client:
        tariffs = client.billing.tariffs()
    if as_json:
        print_json(tariffs)
        return
    rows = [
        (t.version, t.effective_from.isoformat(), t.currency, len(t.document["services"])) for t in tariffs
    ]
    table("Tariffs", ["version", "effective from", "currency", "services"], rows, empty="no tariffs")


@tariff_app.command("add")
def tariff_add(file: File, as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """Add a tariff version from a file (the operator).

    Versions are never edited: a changed tariff is a new version with a later effective date."""
    tariff = load_tariff(file)
    with hub_client(hub, token) as client:
        info = client.billing.add_tariff(tariff)
    if as_json:
        print_json(info)
    else:
        console().print(f"tariff {info.version} added, effective from {info.effective_from}")


@tariff_app.command("show")
def tariff_show(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="Tariff version.", show_default=False)],
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Show one tariff version's prices per service and requester category."""
    with hub_client(hub, token) as client:
        info = client.billing.tariff(version)
    if as_json:
        print_json(info)
        return
    document = info.document
    console().print(
        f"[bold]tariff {info.version}[/] · effective from {info.effective_from} · {info.currency}"
    )
    categories = sorted({c for s in document["services"].values() for c in s["prices"]})
    rows = [
        (name, service["unit"], *(service["prices"].get(c, "") for c in categories))
        for name, service in document["services"].items()
    ]
    table(None, ["service", "unit", *categories], rows, empty="no services")
    for reduction in document.get("reductions", []):
        console().print(f"reduction {reduction['name']}: {reduction['percent']}% ({reduction['basis']})")


# -- billing profiles ---------------------------------------------------------------------------------


@profile_app.command("set")
def profile_set(org: Org, file: File, as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """Set an organisation's billing profile from a file (the operator, once it verified the details)."""
    profile = load_profile(file)
    with hub_client(hub, token) as client:
        stored = client.billing.set_profile(org, profile)
    if as_json:
        print_json(stored)
    else:
        console().print(
            f"billing profile of {org} set: {stored.legal_name}, {stored.city} ({stored.country})"
        )


@profile_app.command("show")
def profile_show(org: Org, as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """Show an organisation's billing profile (the operator, or the organisation itself)."""
    with hub_client(hub, token) as client:
        profile = client.billing.profile(org)
    if as_json:
        print_json(profile)
    else:
        _print_profile(org, profile)


def _print_profile(org: str, profile: BillingProfile) -> None:
    console().print(f"[bold]{profile.legal_name}[/] ({org})")
    for line in [*profile.address_lines, f"{profile.postcode} {profile.city}", profile.country]:
        console().print(f"  {line}")
    for label, value in (
        ("VAT id", profile.vat_id),
        ("legal id", profile.legal_id),
        ("email", profile.email),
        ("IBAN", profile.iban),
    ):
        if value:
            console().print(f"{label}: {value}")
    if profile.micro_enterprise:
        console().print("micro-enterprise (EHDS Art. 62 reduction)")


# -- applications -------------------------------------------------------------------------------------


@application_app.command("file")
def application_file(file: File, as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """File an application for your organisation (a requester); print its id (alone on stdout)."""
    form = load_application(file)
    with hub_client(hub, token) as client:
        view = client.applications.file(form)
    if as_json:
        print_json(view)
    else:
        typer.echo(view.id)


@application_app.command("list")
def application_list(as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """List the applications you may see, with each one's latest quote and what it has cost so far."""
    with hub_client(hub, token) as client:
        views = client.applications.list()
    if as_json:
        print_json(views)
        return
    rows = []
    for v in views:
        latest = max(v.quotes, key=lambda q: q.revision) if v.quotes else None
        rows.append(
            (
                v.id,
                v.organisation,
                v.form.get("title", ""),
                v.state,
                ", ".join(v.form.get("hospitals", [])),
                latest.state if latest else "",
                amount(latest.ceiling, latest.currency) if latest else "",
                amount(v.charged),
            )
        )
    columns = ["id", "organisation", "title", "state", "hospitals", "quote", "ceiling", "charged"]
    table("Applications", columns, rows, empty="no applications")


@application_app.command("show")
def application_show(
    application_id: AppId, as_json: AsJson = False, hub: Hub = None, token: Token = None
) -> None:
    """Show an application: its form, the hospitals' participation and its quotes."""
    with hub_client(hub, token) as client:
        view = client.applications.get(application_id)
    if as_json:
        print_json(view)
    else:
        _print_application(view)


def _print_application(view: ApplicationView) -> None:
    form = view.form
    console().print(f"[bold]{form.get('title', view.id)}[/]")
    console().print(
        f"application {view.id} · {view.organisation} · [bold]{view.state}[/] · filed {when(view.created_at)}"
    )
    console().print(f"purpose: {form.get('purpose', '')}")
    console().print(
        f"legal basis: {form.get('legal_basis', '')} · ethics: {form.get('ethics_reference', '')}"
    )
    console().print(
        f"duration: {form.get('duration_months')} months · charged so far: {amount(view.charged)}"
    )
    services = [
        (s.get("service"), s.get("quantity", 1), s.get("hospitals") or "") for s in form.get("services", [])
    ]
    table("Services", ["service", "quantity", "hospitals per study"], services, empty="no services")
    statements = {p.hospital: p for p in view.participations}
    participation = []
    for hospital in form.get("hospitals", []):
        p = statements.get(hospital)
        if p is None:
            participation.append((hospital, "not answered", "", ""))
        else:
            decision = "accepted" if p.accepted else "declined"
            participation.append((hospital, decision, amount(p.pass_through_per_study), p.reason or p.detail))
    columns = ["hospital", "participation", "pass-through per study", "detail"]
    table("Hospitals", columns, participation, empty="no hospitals")
    _quotes_table(view.quotes)


# -- quotes -------------------------------------------------------------------------------------------


def _quotes_table(quotes: list[QuoteView]) -> None:
    rows = [
        (
            q.id,
            q.revision,
            q.state,
            q.tariff_version,
            amount(q.ceiling, q.currency),
            q.valid_until,
            when(q.decided_at),
        )
        for q in sorted(quotes, key=lambda q: q.revision)
    ]
    columns = ["id", "revision", "state", "tariff", "ceiling", "valid until", "decided"]
    table("Quotes", columns, rows, empty="no quotes yet")


def _print_quote(quote: QuoteView) -> None:
    console().print(
        f"quote {quote.id} · application {quote.application_id} · revision {quote.revision} · "
        f"[bold]{quote.state}[/] · tariff {quote.tariff_version} · valid until {quote.valid_until}"
    )
    rows = [
        (
            line.get("description", line.get("service")),
            line.get("quantity"),
            line.get("unit_price"),
            f"{line['reduction_percent']}%" if line.get("reduction_basis") else "",
            line.get("amount"),
        )
        for line in quote.lines
    ]
    table(None, ["service", "quantity", "unit price", "reduction", "amount"], rows, empty="no lines")
    console().print(f"ceiling: [bold]{amount(quote.ceiling, quote.currency)}[/] (binding once accepted)")


@quote_app.command("create")
def quote_create(
    application_id: AppId,
    waive: Annotated[
        list[str] | None,
        typer.Option("--waive", help="SERVICE=REASON: waive that service's fee, recording why (repeatable)."),
    ] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    token: Token = None,
) -> None:
    """Price an application into a new quote revision under the tariff in force (the operator)."""
    waivers: dict[str, str] = {}
    for item in waive or []:
        service, sep, reason = item.partition("=")
        if not sep or not service.strip() or not reason.strip():
            raise InputError(f"{item!r} is not SERVICE=REASON", field="--waive")
        waivers[service.strip()] = reason.strip()
    with hub_client(hub, token) as client:
        quote = client.billing.quote(application_id, waivers)
    if as_json:
        print_json(quote)
    else:
        _print_quote(quote)


@quote_app.command("list")
def quote_list(application_id: AppId, as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """List an application's quote revisions, oldest first."""
    with hub_client(hub, token) as client:
        quotes = client.quotes.of(application_id)
    if as_json:
        print_json(quotes)
    else:
        _quotes_table(quotes)


@quote_app.command("accept")
def quote_accept(quote_id: QuoteId, as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """Accept an offered quote (the requester): its total becomes the application's binding ceiling."""
    with hub_client(hub, token) as client:
        quote = client.quotes.accept(quote_id)
    if as_json:
        print_json(quote)
    else:
        console().print(f"quote {quote.id} accepted: ceiling {amount(quote.ceiling, quote.currency)}")


@quote_app.command("decline")
def quote_decline(quote_id: QuoteId, as_json: AsJson = False, hub: Hub = None, token: Token = None) -> None:
    """Decline an offered quote (the requester)."""
    with hub_client(hub, token) as client:
        quote = client.quotes.decline(quote_id)
    if as_json:
        print_json(quote)
    else:
        console().print(f"quote {quote.id} declined")
