"""The demo's money path: two requesters' applications, quotes, signed participation, billed studies,
the month's invoices verified against the node keys, hospital statements and a simulator run.

Everything goes through the hub's API and the nodes' own CLI, as the operator, the requesters and the
hospitals' stewards would use them; nothing writes to the hub's database directly.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from phds.billing.tariff import default_tariff
from phds.demo.network import REQUESTER_ORG, LocalNetwork, phds_command
from phds.errors import PhdsError
from phds.sdk import Client
from phds.trust import KeyPair, NetworkTrust

ACADEMIC_ORG = "uni-research"
OPERATOR_PROFILE = {
    "legal_name": "PHDS Network AISBL",
    "address_lines": ["Rue de la Loi 42"],
    "postcode": "1040",
    "city": "Brussels",
    "country": "BE",
    "vat_id": "BE0411905847",
    "iban": "BE71096123456769",
    "email": "billing@phds.example",
}
PROFILES = {
    ACADEMIC_ORG: {
        "legal_name": "Universitat de Recerca Pediàtrica",
        "address_lines": ["Carrer Major 1"],
        "postcode": "08001",
        "city": "Barcelona",
        "country": "ES",
    },
    REQUESTER_ORG: {
        "legal_name": "Acme Paediatric Pharma GmbH",
        "address_lines": ["Lindwurmstraße 4"],
        "postcode": "80337",
        "city": "München",
        "country": "DE",
        "vat_id": "DE136695976",
    },
}
#: The first hospital passes through its own costs per study (EUR 115 an hour of steward time: Findata's).
PASS_THROUGH = "230.00"


@dataclass
class MoneyPath:
    """What the money path produced, for the demo's text and its ``--json``."""

    applications: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    verifications: dict[str, str] = field(default_factory=dict)
    statements: list[dict[str, Any]] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    simulation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "applications": self.applications,
            "invoices": self.invoices,
            "verifications": self.verifications,
            "statements": self.statements,
            "documents": self.documents,
            "simulation": self.simulation,
        }


def _api(network: LocalNetwork, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{network.hub_url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=120
    )


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise PhdsError(f"{response.request.method} {response.request.url.path}: {response.text}")
    return response.json() if response.content else None


def academic_requester(network: LocalNetwork, folder: Path) -> Client:
    """An academic requester organisation with a person, a token, a key and an attestation."""
    with _api(network, network.admin_token) as admin:
        _ok(
            admin.post(
                "/organisations",
                json={
                    "name": ACADEMIC_ORG,
                    "display_name": "Uni Research",
                    "kind": "requester",
                    "category": "academic",
                },
            )
        )
        user = _ok(
            admin.post(
                "/users",
                json={
                    "email": "epi@uni-research.example",
                    "display_name": "An Epidemiologist",
                    "role": "requester",
                    "organisation": ACADEMIC_ORG,
                },
            )
        )
        token = _ok(admin.post("/tokens", json={"user_id": user["id"], "name": "demo"}))["token"]
    key = KeyPair.generate()
    key_path = folder / "uni-research.key"
    key.save(key_path, overwrite=True)
    attestation = NetworkTrust.load(network.trust_dir).sign_organisation(
        ACADEMIC_ORG, "academic", key.public_key_b64
    )
    attestation_path = folder / "uni-research.attestation.json"
    attestation_path.write_text(attestation.model_dump_json(indent=2), encoding="utf-8")
    return Client(network.hub_url, str(token), key=key_path, attestation=attestation_path)


def application_form(network: LocalNetwork, title: str, services: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "title": title,
        "purpose": f"PHDS demo: {title.lower()}",
        "legal_basis": "GDPR Art. 6(1)(e) and 9(2)(j)",
        "ethics_reference": "CEIm-DEMO-2026",
        "hospitals": [h.name for h in network.hospitals],
        "duration_months": 12,
        "services": services,
    }


def accept_at_nodes(network: LocalNetwork, application_id: str) -> None:
    """Each hospital's steward accepts participation at its node (signed by the node key)."""
    for i, hospital in enumerate(network.hospitals):
        node = network.nodes[hospital.name]
        cost = PASS_THROUGH if i == 0 else "0.00"
        done = subprocess.run(
            phds_command(
                "node",
                "participation",
                "accept",
                application_id,
                "--config",
                str(node.config),
                "--pass-through",
                cost,
                "--detail",
                "data extraction and 2 h of steward time",
            ),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise PhdsError(
                f"{hospital.name} could not accept {application_id}: {done.stderr.decode().strip()}"
            )


def billed_study(
    network: LocalNetwork, client: Client, organisation: str, application_id: str, service: str
) -> str:
    """Run a feasibility count of the demo's cohort under *application_id*, billed as *service*; the
    stewards who approve by hand approve it at their nodes. The study's id."""
    from phds.demo.scenario import approve_as_steward, default_cohort, demo_spec

    analysis = {"name": "feasibility.count", "params": {"cohort": default_cohort(), "breakdowns": ["sex"]}}
    spec = demo_spec(analysis, network, f"Asthma and salbutamol ({service.replace('_', ' ')})", service)
    spec |= {"organisation": organisation, "application_id": application_id}
    approved: set[str] = set()

    def progress(view: Any) -> None:
        for status in view.hospitals:
            if status.state.value == "awaiting_approval" and status.hospital not in approved:
                approve_as_steward(network, status.hospital, view.id)
                approved.add(status.hospital)

    study = client.submit(spec)
    client.results(study.id, wait=True, progress=progress)
    return study.id


def run_money_path(network: LocalNetwork, folder: Path, say: Any) -> MoneyPath:
    """Applications → quotes → participation → billed studies → invoices → statements (see the module)."""
    out = MoneyPath()
    academic = academic_requester(network, folder)
    operator = Client(network.hub_url, network.admin_token)
    with operator, academic, network.client() as industry:
        operator.billing.add_tariff(default_tariff())
        operator.billing.set_profile("operator", OPERATOR_PROFILE)
        for org, profile in PROFILES.items():
            operator.billing.set_profile(org, profile)
        say(f"   tariff {default_tariff().version}, from the fees of Findata, NHS DARS, CPRD and DST")
        plans = {
            ACADEMIC_ORG: (academic, "Asthma admissions in children", "research"),
            REQUESTER_ORG: (industry, "Trial site feasibility", "feasibility"),
        }
        for org, (client, title, service) in plans.items():
            services: list[dict[str, Any]] = [
                {"service": "application_fee"},
                {"service": service, "quantity": 3},
            ]
            app = client.applications.file(application_form(network, title, services))
            accept_at_nodes(network, app.id)
            quote = operator.billing.quote(app.id)
            client.quotes.accept(quote.id)
            out.applications.append(
                {
                    "organisation": org,
                    "application": app.id,
                    "quote": quote.id,
                    "ceiling": str(quote.ceiling),
                    "currency": quote.currency,
                }
            )
            say(
                f"   {org}: application {app.id}, accepted by each hospital's steward at its node (signed by "
                f"the node key); quote {quote.id} accepted, ceiling €{quote.ceiling}"
            )
            study_id = billed_study(network, client, org, app.id, service)
            say(f"   {org}: {service} study {study_id} ran under {app.id}")
        _wait_metered(operator)
        period = datetime.now(UTC).strftime("%Y-%m")
        keys = node_keys(network)
        for invoice in operator.billing.issue(period, close_early=True):
            check = operator.invoices.verify(invoice.number, pinned=keys)
            out.invoices.append(invoice.model_dump(mode="json"))
            out.verifications[invoice.number] = "ok" if check.ok else "; ".join(check.problems)
            pdf = operator.invoices.download(invoice.number, folder / f"{invoice.number}.pdf")
            out.documents.append(str(pdf))
            say(
                f"   invoice {invoice.number} to {invoice.organisation}: {len(invoice.lines)} lines, net "
                f"€{invoice.net_total}, VAT €{invoice.vat_total}, total €{invoice.gross_total}"
            )
            say(
                f"     verified against the node keys: {out.verifications[invoice.number]} "
                f"({check.lines} lines, {check.receipts} receipts); PDF/A-3 with Factur-X: {pdf}"
            )
            operator.billing.record_payment(invoice.number, "demo transfer")
        for hospital in network.hospitals:
            statement = operator.billing.statement(hospital.name, period)
            out.statements.append(statement.model_dump(mode="json"))
            say(
                f"   {hospital.name}'s statement for {period}: €{statement.total} from "
                f"{len(statement.lines)} lines, €{statement.payable} payable from paid invoices"
            )
    out.simulation = _simulate(folder, say)
    return out


def node_keys(network: LocalNetwork) -> dict[str, str]:
    """Each hospital's node public key, read from the node's own key file (as a requester pins them out
    of band), not from the hub."""
    from phds.node.config import load_node_config

    return {
        name: KeyPair.load(load_node_config(node.config).node_key_path).public_key_b64
        for name, node in network.nodes.items()
    }


def _wait_metered(operator: Client, timeout: float = 60.0) -> None:
    """The hub meters receipts on its runner's tick: wait until both applications show charges."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(a.charged > _fixed_fees(a.model_dump(mode="json")) for a in operator.applications.list()):
            return
        time.sleep(0.5)
    raise PhdsError(f"the hub metered no receipts within {timeout:.0f} s")


def _fixed_fees(application: dict[str, Any]) -> Decimal:
    accepted = [q for q in application["quotes"] if q["state"] == "accepted"]
    lines = accepted[-1]["lines"] if accepted else []
    return sum(
        (Decimal(line["amount"]) for line in lines if line["service"] == "application_fee"), Decimal(0)
    )


def _simulate(folder: Path, say: Any) -> dict[str, Any]:
    from phds.billing.scenario import load_scenario
    from phds.billing.simulator import result_json, simulate
    from phds.billing.simulator_plots import write_plots

    result = simulate(load_scenario("grant-funded-start"))
    written = write_plots(result, folder / "simulation")
    body = result_json(result)
    say(
        f"   simulator, grant-funded-start: break-even month {body['break_even_month']}; charts in "
        f"{folder / 'simulation'} ({len(written)} files)"
    )
    return {
        "scenario": "grant-funded-start",
        "break_even_month": body["break_even_month"],
        "years": body["years"],
    }
