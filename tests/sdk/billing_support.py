"""A real hub on loopback with what the money path needs: an operator with an admin, a requester (uni-a,
academic, Belgian), hospitals h1 and h2 whose nodes have a pinned key, and the node side of the path
(signed participation, and answers carrying node-signed envelopes and usage receipts) as
``tests/hub/test_hub_billing.py`` drives it.

Used by the SDK's and the CLI's billing tests (``tests/billing`` imports it from here).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from phds.hub.app import create_app
from phds.hub.metering import Metering
from phds.hub.store import HubStore
from phds.hub.store.billing_models import UsageReceiptRow
from phds.hub.testing import add_org, add_user, enrol, hub_settings, study_spec
from phds.protocol.billing import InvoiceView, ParticipationStatement
from phds.protocol.receipts import UsageReceipt
from phds.sdk import Client
from phds.trust.envelopes import seal, sign_participation, sign_receipt
from phds.trust.keys import KeyPair

from .conftest import _serve

HOSPITALS = ("h1", "h2")
PROFILE = """\
legal_name: University A
address_lines: [Rue de la Loi 1]
postcode: "1000"
city: Brussels
country: BE
"""
OPERATOR_PROFILE = """\
legal_name: PHDS AISBL
address_lines: [Rue de la Loi 1]
postcode: "1000"
city: Brussels
country: BE
vat_id: BE0411905847
iban: BE71096123456769
"""
APPLICATION = """\
title: Asthma outcomes
purpose: Compare asthma outcomes
legal_basis: GDPR Art. 9(2)(j)
ethics_reference: EC-2026-7
hospitals: [h1, h2]
duration_months: 12
services:
  - service: application_fee
  - service: research
    quantity: 1
"""


def last_month() -> datetime:
    """The 10th of the month before this one, 09:00 UTC: a finished month to meter and invoice."""
    first = datetime.now(UTC).replace(day=1, hour=9, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).replace(day=10)


@dataclass
class MoneyNetwork:
    """A running hub, its store (as a compromised hub could edit it), people's tokens and node keys."""

    url: str
    store: HubStore
    tokens: dict[str, str]
    keys: dict[str, KeyPair] = field(default_factory=dict)
    issued_at: datetime = field(default_factory=last_month)

    @property
    def period(self) -> str:
        """The month the node receipts fall in."""
        return self.issued_at.strftime("%Y-%m")

    def client(self, actor: str = "requester") -> Client:
        return Client(self.url, self.tokens[actor])

    def pinned(self) -> dict[str, str]:
        """The node keys as the hospitals would hand them out (hospital → public key)."""
        return {h: k.public_key_b64 for h, k in self.keys.items()}

    def _node(self, hospital: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[hospital]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)

    def participate(self, application_id: str, hospital: str, cost: str = "0.00") -> None:
        """As *hospital*'s node: report its steward's acceptance, signed by the node key."""
        statement = sign_participation(
            ParticipationStatement(
                application_id=application_id,
                hospital=hospital,
                accepted=True,
                pass_through_per_study=Decimal(cost),
                detail="extraction and 2 h of steward time",
                signed_at=datetime.now(UTC),
                node_key_id="",
            ),
            self.keys[hospital],
        )
        with self._node(hospital) as node:
            body = statement.model_dump(mode="json")
            node.post(f"/billing/applications/{application_id}/participation", json=body).raise_for_status()

    def run_study(self, application_id: str, persons: dict[str, int]) -> str:
        """Submit a research study under the application and answer it at each hospital with a sealed
        release and a signed usage receipt (issued last month); meter the receipts. The study's id."""
        spec = study_spec("uni-a", sorted(persons), application_id=application_id, service_type="research")
        with self.client() as requester:
            study = requester.submit(spec)
        for hospital, count in persons.items():
            with self._node(hospital) as node:
                tasks = node.get("/nodes/me/tasks", params={"wait": 0}).raise_for_status().json()
                for task in tasks:
                    body = self._answer(hospital, task, count)
                    node.post(f"/tasks/{task['id']}/result", json=body).raise_for_status()
        Metering(self.store).drain()  # the hub's sweep may have metered some already: each is stored once
        return study.id

    def _answer(self, hospital: str, task: dict[str, Any], persons: int) -> dict[str, Any]:
        key = self.keys[hospital]
        payload = {"analysis": task["analysis"], "min_cell_count": 5, "values": {}}
        envelope = seal(
            payload,
            key=key,
            study_id=task["study_id"],
            task_id=task["id"],
            hospital=hospital,
            round=task["round"],
            analysis=task["analysis"],
            analysis_version=task["analysis_version"],
            audit_seq=3,
            audit_hash="c" * 64,
            state=task["state"],
        )
        receipt = sign_receipt(
            UsageReceipt(
                receipt_id=f"r-{task['id']}",
                hospital=hospital,
                study_id=task["study_id"],
                task_id=task["id"],
                application_id=task["application_id"],
                round=task["round"],
                service_type=task["service_type"],
                analysis=task["analysis"],
                requester_org="uni-a",
                outcome="answered",
                compute_seconds=0.5,
                persons=persons,
                audit_seq=4,
                audit_hash="d" * 64,
                issued_at=self.issued_at,
                node_key_id="",
            ),
            key,
        )
        return {
            "task_id": task["id"],
            "status": "ok",
            "payload": payload,
            "envelope": envelope.model_dump(mode="json"),
            "receipt": receipt.model_dump(mode="json"),
        }

    @contextmanager
    def tampered_receipt(self, hospital: str, **changes: Any) -> Iterator[str]:
        """Edit *hospital*'s stored receipt as a compromised hub would (its signature kept); restored after.
        Yields the receipt's id."""
        with self.store.unit() as uow:
            [row] = uow.billing.receipts(hospital=hospital)
            original = dict(row.receipt)
            row.receipt = original | changes  # a new dict, so the JSON column is written
            receipt_id = row.receipt_id
        try:
            yield receipt_id
        finally:
            with self.store.unit() as uow:
                restored = uow.session.get(UsageReceiptRow, receipt_id)
                assert restored is not None
                restored.receipt = original


@contextmanager
def money_network(tmp_path: Path) -> Iterator[MoneyNetwork]:
    """A hub on a fresh SQLite file, served by uvicorn on loopback, with the money path's parties."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    store = HubStore.open(url)
    add_org(store, "operator", "operator")
    add_org(store, "uni-a", "requester", category="academic")
    add_org(store, "pharma-b", "requester", category="industry")
    for hospital in (*HOSPITALS, "h3"):
        add_org(store, hospital, "hospital")
    tokens = {
        "admin": add_user(store, "admin@op.example", "admin", "operator")[1],
        "requester": add_user(store, "r@uni-a.example", "requester", "uni-a")[1],
        "requester_other": add_user(store, "r@pharma-b.example", "requester", "pharma-b")[1],
        "steward": add_user(store, "s@h1.example", "steward", "h1")[1],
    }
    keys = {}
    for hospital in HOSPITALS:
        node_id, tokens[hospital] = enrol(store, hospital, url)
        keys[hospital] = KeyPair.generate()
        with store.unit() as uow:
            node = uow.nodes.get(node_id)
            assert node is not None
            node.public_key = keys[hospital].public_key_b64  # pinned, as at enrolment
    app = create_app(hub_settings(url), store=store)
    try:
        with _serve(app) as base:
            yield MoneyNetwork(base, store, tokens, keys)
    finally:
        store.close()


def invoiced(network: MoneyNetwork, tmp_path: Path) -> InvoiceView:
    """The whole path through the SDK up to last month's issued invoice of uni-a (research at h1 and h2,
    h1's 230.00 passed through at cost)."""
    from phds.billing.tariff import default_tariff

    (tmp_path / "application.yaml").write_text(APPLICATION, encoding="utf-8")
    with network.client("admin") as admin, network.client() as requester:
        admin.billing.add_tariff(default_tariff())
        admin.billing.set_profile("operator", _yaml(OPERATOR_PROFILE))
        admin.billing.set_profile("uni-a", _yaml(PROFILE))
        app = requester.applications.file(tmp_path / "application.yaml")
        network.participate(app.id, "h1", "230.00")
        network.participate(app.id, "h2")
        quote = admin.billing.quote(app.id)
        requester.quotes.accept(quote.id)
        network.run_study(app.id, {"h1": 40, "h2": 10})
        [invoice] = admin.billing.issue(network.period)
    return invoice


def _yaml(text: str) -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(text)
    return data
