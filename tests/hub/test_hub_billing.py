"""The money path through the hub's API, on SQLite and PostgreSQL: tariff, profiles, application, node-signed
participation, quote, a study under the application, node-signed receipts, the month's invoice, its
verification against the node keys, the hospitals' statements, payment, and the binding ceiling.

Attacks stopped here: a study outside its application (another hospital, another service), a study past
the accepted ceiling, a second issue of the same invoice, and an invoice whose receipts were altered or
whose line no node signed (``phds.billing.verify``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from phds.billing.render import check_facturx
from phds.billing.tariff import default_tariff
from phds.billing.verify import verify_invoice
from phds.hub.metering import Metering
from phds.hub.testing import study_spec
from phds.protocol.billing import InvoiceEvidence, ParticipationStatement
from phds.protocol.receipts import UsageReceipt
from phds.trust.envelopes import seal, sign_participation, sign_receipt
from phds.trust.keys import KeyPair

NOVEMBER = datetime(2026, 11, 10, 9, tzinfo=UTC)
PROFILE = {"address_lines": ["Rue de la Loi 1"], "postcode": "1000", "city": "Brussels", "country": "BE"}
APPLICATION = {
    "title": "Asthma outcomes",
    "purpose": "Compare asthma outcomes",
    "legal_basis": "GDPR Art. 9(2)(j)",
    "ethics_reference": "EC-2026-7",
    "hospitals": ["h1", "h2"],
    "duration_months": 12,
    "services": [{"service": "application_fee"}, {"service": "research", "quantity": 1}],
}


def call(network: Any, method: str, path: str, actor: str, body: Any = None, status: int = 200) -> Any:
    response = network.client.request(
        method, f"/api/v1{path}", token=network.tokens[actor], **({"json": body} if body is not None else {})
    )
    assert response.status_code == status, response.text
    if status == 204:
        return None
    return response.json() if "json" in response.headers.get("content-type", "") else response.content


def pin(network: Any, hospital: str) -> KeyPair:
    key = KeyPair.generate()
    with network.store.unit() as uow:
        node = uow.nodes.get(network.node_ids[hospital])
        assert node is not None
        node.public_key = key.public_key_b64
    return key


def participate(network: Any, hospital: str, key: KeyPair, app_id: str, cost: str = "0.00") -> None:
    statement = sign_participation(
        ParticipationStatement(
            application_id=app_id,
            hospital=hospital,
            accepted=True,
            pass_through_per_study=Decimal(cost),
            detail="extraction and 2 h of steward time",
            signed_at=datetime.now(UTC),
            node_key_id="",
        ),
        key,
    )
    call(
        network,
        "POST",
        f"/billing/applications/{app_id}/participation",
        hospital,
        statement.model_dump(mode="json"),
        204,
    )


def answer(network: Any, hospital: str, task: dict[str, Any], key: KeyPair, persons: int) -> None:
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
            issued_at=NOVEMBER,
            node_key_id="",
        ),
        key,
    )
    body = {
        "task_id": task["id"],
        "status": "ok",
        "payload": payload,
        "envelope": envelope.model_dump(mode="json"),
        "receipt": receipt.model_dump(mode="json"),
    }
    call(network, "POST", f"/tasks/{task['id']}/result", hospital, body)


def test_the_money_path_from_application_to_verified_invoice_and_statements(network: Any) -> None:
    call(network, "POST", "/billing/tariffs", "admin", default_tariff().model_dump(mode="json"), 201)
    call(network, "POST", "/billing/tariffs", "admin", default_tariff().model_dump(mode="json"), 409)
    call(
        network,
        "PUT",
        "/billing/profiles/operator",
        "admin",
        PROFILE | {"legal_name": "PHDS AISBL", "vat_id": "BE0411905847", "iban": "BE71096123456769"},
    )
    call(network, "PUT", "/billing/profiles/uni-a", "admin", PROFILE | {"legal_name": "University A"})
    keys = {h: pin(network, h) for h in ("h1", "h2")}

    app = call(network, "POST", "/billing/applications", "requester", APPLICATION, 201)
    participate(network, "h1", keys["h1"], app["id"], "230.00")
    participate(network, "h2", keys["h2"], app["id"])
    quote = call(network, "POST", f"/billing/applications/{app['id']}/quotes", "admin", status=201)
    # 600 application fee and 2 × 500 research, less EHDS Art. 62's 20%; h1's 230 passed through at cost
    assert Decimal(quote["ceiling"]) == Decimal("480.00") + Decimal("800.00") + Decimal("230.00")
    call(
        network,
        "POST",
        "/studies",
        "requester",
        study_spec("uni-a", ["h1"], application_id=app["id"], service_type="research"),
        409,
    )
    call(network, "POST", f"/billing/quotes/{quote['id']}/accept", "requester")

    outside = study_spec("uni-a", ["h1", "h3"], application_id=app["id"], service_type="research")
    assert "hospitals.1" in call(network, "POST", "/studies", "requester", outside, 422)["message"]
    feasibility = study_spec("uni-a", ["h1"], application_id=app["id"])
    assert "service_type" in call(network, "POST", "/studies", "requester", feasibility, 422)["message"]
    study = network.submit(
        study_spec("uni-a", ["h1", "h2"], application_id=app["id"], service_type="research")
    )
    again = study_spec("uni-a", ["h1", "h2"], application_id=app["id"], service_type="research")
    refused = call(network, "POST", "/studies", "requester", again, 409)
    assert "ceiling" in refused["message"], "a second study could pass the ceiling before either is metered"

    for hospital, persons in (("h1", 40), ("h2", 10)):
        [task] = network.poll(hospital)
        answer(network, hospital, task, keys[hospital], persons)
    assert Metering(network.store).drain() == 2
    assert network.study(study["id"])["state"] == "completed"

    [invoice] = call(network, "POST", "/billing/invoices/issue?period=2026-11", "admin", status=201)
    assert call(network, "POST", "/billing/invoices/issue?period=2026-11", "admin", status=201) == []
    lines = {line["service"]: line for line in invoice["lines"]}
    assert set(lines) == {"research", "pass_through"}, "the application fee falls in the month of acceptance"
    assert (Decimal(lines["research"]["net_amount"]), Decimal(lines["pass_through"]["net_amount"])) == (
        Decimal("800.00"),
        Decimal("230.00"),
    )
    # Domestic (Belgian) academic: standard 21% VAT on 1,030.00
    assert (invoice["net_total"], invoice["vat_total"], invoice["gross_total"]) == (
        "1030.00",
        "216.30",
        "1246.30",
    )
    assert invoice["number"].startswith(f"INV-{datetime.now(UTC).year}-")

    evidence = InvoiceEvidence.model_validate(
        call(network, "GET", f"/billing/invoices/{invoice['number']}/evidence", "requester")
    )
    pinned = {h: k.public_key_b64 for h, k in keys.items()}
    assert verify_invoice(evidence, pinned).ok
    inflated = evidence.model_copy(
        update={"pass_through": dict.fromkeys(evidence.pass_through, Decimal("999"))}
    )
    assert any("no hospital signed" in p for p in verify_invoice(inflated, pinned).problems)
    tampered = evidence.model_copy(update={"receipts": [r | {"persons": 400} for r in evidence.receipts]})
    assert not verify_invoice(tampered, pinned).ok
    invented = evidence.invoice.lines[0].model_copy(update={"line_id": "9", "receipt_ids": []})
    padded = evidence.model_copy(
        update={"invoice": evidence.invoice.model_copy(update={"lines": [*evidence.invoice.lines, invented]})}
    )
    assert any("no node signed" in p for p in verify_invoice(padded, pinned).problems)
    assert "pharma" not in str(call(network, "GET", "/billing/invoices", "requester_other"))

    # 800 research: operator 25% = 200; pool 600, half equally (150 each), half by persons 40:10 (240, 60)
    h1 = call(network, "GET", "/billing/statements/h1?period=2026-11", "steward")
    assert (h1["total"], h1["payable"]) == ("620.00", "0.00"), "h1: 150 + 240 + its 230 pass-through"
    assert [len(line["hospital_receipt_ids"]) for line in h1["lines"]] == [1, 1], "only h1's own receipt"
    payout = {"hospital": "h1", "period": "2026-11"}
    assert "awaits payment" in call(network, "POST", "/billing/payouts", "admin", payout, 409)["message"]
    call(network, "POST", f"/billing/invoices/{invoice['number']}/payment", "admin", {"reference": "SEPA-1"})
    paid = call(network, "POST", "/billing/payouts", "admin", payout | {"reference": "SEPA-OUT-1"}, 201)
    assert (paid["amount"], paid["invoices"]) == ("620.00", [invoice["number"]])
    call(network, "POST", "/billing/payouts", "admin", payout, 409)  # paid out already
    after = call(network, "GET", "/billing/statements/h1?period=2026-11", "steward")
    assert (after["payable"], after["paid_out"]) == ("620.00", "620.00")
    call(network, "POST", f"/billing/invoices/{invoice['number']}/payment", "admin", {}, 409)
    h2 = call(network, "GET", "/billing/statements/h2?period=2026-11", "h2")
    assert (h2["total"], h2["payable"]) == ("210.00", "210.00")

    pdf = call(network, "GET", f"/billing/invoices/{invoice['number']}/document?format=pdf", "requester")
    assert pdf.startswith(b"%PDF") and b"1246.30" in check_facturx(pdf)
    assert uuid.UUID(study["id"])

    # The running month, closed early: the application fee accepted this month, on the hospitals' signed
    # participation; November's receipts are not billed again.
    this_month = datetime.now(UTC).strftime("%Y-%m")
    call(network, "POST", f"/billing/invoices/issue?period={this_month}", "admin", status=409)
    [early] = call(
        network, "POST", f"/billing/invoices/issue?period={this_month}&close_early=true", "admin", status=201
    )
    [fee] = early["lines"]
    assert fee["service"] == "application_fee" and Decimal(fee["net_amount"]) == Decimal("480.00")
    assert sorted(fee["receipt_ids"]) == [f"p:{app['id']}:h1", f"p:{app['id']}:h2"]
    early_evidence = call(network, "GET", f"/billing/invoices/{early['number']}/evidence", "admin")
    assert verify_invoice(InvoiceEvidence.model_validate(early_evidence), pinned).ok
    assert int(early["number"].rsplit("-", 1)[1]) == int(invoice["number"].rsplit("-", 1)[1]) + 1, "no gaps"
