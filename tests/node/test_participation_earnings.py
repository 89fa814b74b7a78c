"""``phds node participation`` and ``phds node earnings [verify]`` as a hospital's steward uses them,
against a real hub on loopback (``live_hub``) and nodes enrolled with ``phds node enrol``, whose key the
hub pins; and the pure statement check of :mod:`phds.node.earnings` over a real audit log.

Attacks stopped here: a participation statement the pinned key did not sign (the hub refuses it; the
node's log still shows what its steward signed), a float or negative pass-through, and a statement
listing a receipt this node never issued, or claiming an amount on a line with none of its receipts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from phds.billing.tariff import default_tariff
from phds.errors import InputError
from phds.hub.billing_invoices import issue_month
from phds.hub.metering import Metering
from phds.hub.store.billing_models import UsageReceiptRow
from phds.hub.testing import add_org, add_user, enrolment_token, study_spec
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.config import load_node_config
from phds.node.credential import read_credential
from phds.node.earnings import check_statement
from phds.node.executor import NodeRuntime, execute_task
from phds.node.hub_client import HubClient
from phds.node.receipts import with_receipt
from phds.protocol.billing import HospitalStatement, ParticipationStatement, StatementLine
from phds.protocol.tasks import ResultStatus, Task, TaskResult
from phds.trust.envelopes import verify_participation
from phds.trust.keys import KeyPair

cli = CliRunner()
PROFILE = {"address_lines": ["Rue de la Loi 1"], "postcode": "1000", "city": "Brussels", "country": "BE"}
APPLICATION = {
    "title": "Asthma outcomes",
    "purpose": "Compare asthma outcomes in children across hospitals",
    "legal_basis": "GDPR Art. 9(2)(j)",
    "ethics_reference": "EC-2026-7",
    "hospitals": ["h1", "h2"],
    "duration_months": 12,
    "services": [{"service": "application_fee"}, {"service": "research", "quantity": 1}],
}


@dataclass
class Net:
    """A live hub with an operator, requester uni-a and two enrolled hospital nodes, h1 and h2."""

    hub: Any
    app: typer.Typer
    tomls: dict[str, Path]
    tokens: dict[str, str]

    def call(self, method: str, path: str, actor: str, body: Any = None, status: int = 200) -> Any:
        with self.hub.http(self.tokens[actor]) as http:
            response = http.request(method, f"/api/v1{path}", **({"json": body} if body is not None else {}))
        assert response.status_code == status, response.text
        return response.json() if status != 204 else None

    def node(self, hospital: str, *args: str) -> Any:
        """``phds node <args> --config <hospital's node.toml>``."""
        return cli.invoke(self.app, ["node", *args, "--config", str(self.tomls[hospital])])

    def audit(self, hospital: str, kind: str) -> list[dict[str, Any]]:
        shown = self.node(hospital, "audit", "show", "--json")
        assert shown.exit_code == 0, shown.output
        entries = [json.loads(line) for line in shown.output.splitlines()]
        return [e for e in entries if e["kind"] == kind]

    def pinned(self, hospital: str) -> str | None:
        with self.hub.store.unit() as uow:
            org = uow.organisations.by_name(hospital)
            node = uow.nodes.by_organisation(org.id)
            return str(node.public_key) if node.public_key else None

    def pin(self, hospital: str, public_key: str) -> None:
        with self.hub.store.unit() as uow:
            node = uow.nodes.by_organisation(uow.organisations.by_name(hospital).id)
            node.public_key = public_key


@pytest.fixture
def net(
    live_hub: Any, node_cli_app: typer.Typer, tmp_path: Path, node_toml_factory: Callable[..., Path]
) -> Net:
    live_hub.start()
    live_hub.network(["h1", "h2"])
    add_org(live_hub.store, "operator", "operator")
    tokens = dict(live_hub.tokens) | {
        "admin": add_user(live_hub.store, "op@hub.example", "admin", "operator")[1]
    }
    tomls = {}
    for hospital in ("h1", "h2"):
        tomls[hospital] = node_toml_factory(tmp_path / hospital, name=hospital, hub_url=live_hub.url)
        token = enrolment_token(live_hub.store, hospital)
        enrolled = cli.invoke(
            node_cli_app, ["node", "enrol", "--config", str(tomls[hospital]), "--token", token]
        )
        assert enrolled.exit_code == 0, enrolled.output
    return Net(live_hub, node_cli_app, tomls, tokens)


def _hub_statement(net: Net, app_id: str, hospital: str) -> dict[str, Any]:
    view = net.call("GET", f"/billing/applications/{app_id}", "admin")
    [statement] = [p for p in view["participations"] if p["hospital"] == hospital]
    return dict(statement)


def test_the_steward_accepts_and_declines_signed_audited_first_and_verified_by_the_hub(net: Net) -> None:
    app = net.call("POST", "/billing/applications", "uni-a", APPLICATION, 201)
    other = net.call("POST", "/billing/applications", "uni-a", APPLICATION | {"title": "Dosing"}, 201)
    listed = net.node("h1", "participation", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [a["id"] for a in json.loads(listed.output)] == [app["id"], other["id"]]
    shown = net.node("h1", "participation", "show", app["id"])
    assert shown.exit_code == 0, shown.output
    for fact in (
        "Compare asthma outcomes",
        "GDPR Art. 9(2)(j)",
        "EC-2026-7",
        "uni-a",
        "research ×1",
        "12 months",
    ):
        assert fact in shown.output, fact

    accepted = net.node(
        "h1", "participation", "accept", app["id"], "--pass-through", "230.00", "--detail", "extraction, 2 h"
    )
    assert accepted.exit_code == 0, accepted.output
    stored = _hub_statement(net, app["id"], "h1")
    assert (stored["accepted"], stored["pass_through_per_study"]) == (True, "230.00")
    key = KeyPair.load(load_node_config(net.tomls["h1"]).node_key_path)
    assert net.pinned("h1") == key.public_key_b64, "phds node enrol pinned the node's key"
    verify_participation(ParticipationStatement.model_validate(stored), key.public_key_b64)
    [entry] = net.audit("h1", "participation")
    assert entry["payload"] == stored, "the node audits exactly the statement the hub holds"
    with net.hub.store.unit() as uow:
        received = uow.accounts.participation(app["id"], "h1").received_at
    audited_at = datetime.fromisoformat(entry["ts"])
    assert audited_at < received.replace(tzinfo=received.tzinfo or UTC), "audited before the hub received it"

    # A statement the pinned key did not sign is refused, yet the node's log shows what was signed
    h2_key = net.pinned("h2")
    assert h2_key is not None
    net.pin("h2", KeyPair.generate().public_key_b64)
    refused = net.node("h2", "participation", "accept", app["id"], "--pass-through", "0")
    assert isinstance(refused.exception, InputError) and "signature" in refused.exception.message
    assert len(net.audit("h2", "participation")) == 1
    assert not [p for p in net.call("GET", f"/billing/applications/{app['id']}", "admin")["participations"]
                if p["hospital"] == "h2"]  # fmt: skip
    net.pin("h2", h2_key)
    assert net.node("h2", "participation", "accept", app["id"], "--pass-through", "0").exit_code == 0
    assert _hub_statement(net, app["id"], "h2")["pass_through_per_study"] == "0.00"

    declined = net.node(
        "h1", "participation", "decline", other["id"], "--reason", "no steward time this year"
    )
    assert declined.exit_code == 0, declined.output
    stored = _hub_statement(net, other["id"], "h1")
    assert (stored["accepted"], stored["reason"]) == (False, "no steward time this year")
    assert [e["payload"]["reason"] for e in net.audit("h1", "participation")] == [
        None,
        "no steward time this year",
    ]
    table = net.node("h1", "participation", "list")
    assert "accepted, 230.00 per study" in table.output and "declined: no steward time" in table.output


@pytest.mark.parametrize("amount", ["-5", "12.345", "1e2", "NaN"])
def test_a_float_negative_or_sub_cent_pass_through_is_refused_naming_the_field(
    node_cli_app: typer.Typer, amount: str, node_toml_factory: Callable[..., Path], tmp_path: Path
) -> None:
    toml = node_toml_factory(tmp_path / "h1", name="h1")
    result = cli.invoke(
        node_cli_app, ["node", "participation", "accept", "APP-1", "--pass-through", amount, "-c", str(toml)]
    )
    assert isinstance(result.exception, InputError), result.output
    assert "field --pass-through" in result.exception.message
    assert not load_node_config(toml).db_path.exists(), "nothing was signed or audited"


def test_build_statement_refuses_a_float_amount_by_name() -> None:
    from phds.cli.node_participation import build_statement

    key = KeyPair.generate()
    with pytest.raises(
        InputError, match=r"field --pass-through: an amount must be a decimal string, not float"
    ):
        build_statement("APP-1", "h1", key, accepted=True, pass_through=230.0)
    with pytest.raises(InputError, match="field --detail"):
        build_statement("APP-1", "h1", key, accepted=True, pass_through="1", detail="x" * 501)
    signed = build_statement("APP-1", "h1", key, accepted=True, pass_through="230")
    assert signed.pass_through_per_study == Decimal("230.00") and signed.node_key_id == key.key_id
    verify_participation(signed, key.public_key_b64)


def _answer_tasks(net: Net, hospital: str) -> list[str]:
    """Run the node's leased tasks through execute_task with its runtime, as the agent does."""
    cfg = load_node_config(net.tomls[hospital])
    cred = read_credential(cfg.node.credential_file, hospital=hospital, hub_url=cfg.node.hub_url)
    runtime, client = NodeRuntime.open(cfg), HubClient(cfg.node.hub_url, cred.credential)
    try:
        tasks = client.tasks(wait=10)
        assert tasks, f"{hospital} got no task"
        receipts = []
        for task in tasks:
            result = execute_task(task, runtime)
            assert result.status is ResultStatus.OK and result.receipt is not None, result.reason
            client.post_result(result)
            runtime.tasks.mark_posted(task.id)
            receipts.append(result.receipt.receipt_id)
        return receipts
    finally:
        client.close()
        runtime.close()


def test_earnings_show_the_statement_and_verify_it_against_the_nodes_own_receipts(net: Net) -> None:
    net.call("POST", "/billing/tariffs", "admin", default_tariff().model_dump(mode="json"), 201)
    op = PROFILE | {"legal_name": "PHDS AISBL", "vat_id": "BE0411905847", "iban": "BE71096123456769"}
    net.call("PUT", "/billing/profiles/operator", "admin", op)
    net.call("PUT", "/billing/profiles/uni-a", "admin", PROFILE | {"legal_name": "University A"})
    app = net.call("POST", "/billing/applications", "uni-a", APPLICATION, 201)
    assert net.node("h1", "participation", "accept", app["id"], "--pass-through", "230.00").exit_code == 0
    assert net.node("h2", "participation", "accept", app["id"], "--pass-through", "0").exit_code == 0
    quote = net.call("POST", f"/billing/applications/{app['id']}/quotes", "admin", status=201)
    net.call("POST", f"/billing/quotes/{quote['id']}/accept", "uni-a")
    spec = study_spec("uni-a", ["h1", "h2"], application_id=app["id"], service_type="research")
    net.call("POST", "/studies", "uni-a", spec, 201)
    issued = {h: _answer_tasks(net, h) for h in ("h1", "h2")}
    Metering(net.hub.store).drain()
    with net.hub.store.unit() as uow:
        metered = uow.billing.receipts()
        assert sorted(r.receipt_id for r in metered) == sorted(issued["h1"] + issued["h2"])
        period = metered[0].month
    # Invoices are issued once a month has ended: as the operator would on the 1st of the next month
    year, month = map(int, period.split("-"))
    first_of_next = date(year + month // 12, month % 12 + 1, 1)
    with net.hub.store.unit() as uow:
        [row] = issue_month(uow, period, first_of_next)
        invoice = {"number": row.number}

    shown = net.node("h1", "earnings", "--period", period, "--json")
    assert shown.exit_code == 0, shown.output
    statement = HospitalStatement.model_validate_json(shown.output)
    # Application fee 480 (600 less 20%, academic) and research 800 (2 × 500 less 20%): operator 25%, the
    # pool equally (no persons released by system.noop); and h1's own 230.00 passed through at cost
    assert [line.amount for line in statement.lines] == [
        Decimal("180.00"),
        Decimal("300.00"),
        Decimal("230.00"),
    ]
    assert (statement.total, statement.payable) == (Decimal("710.00"), Decimal("0.00"))
    assert [line.hospital_receipt_ids for line in statement.lines] == [
        [f"p:{app['id']}:h1"], issued["h1"], issued["h1"]
    ]  # fmt: skip
    table = net.node("h1", "earnings", "--period", period)
    assert "total 710.00 EUR; payable 0.00 EUR" in table.output and invoice["number"] in table.output

    net.call("POST", f"/billing/invoices/{invoice['number']}/payment", "admin", {"reference": "SEPA-1"})
    for hospital, total in (("h1", "710.00"), ("h2", "480.00")):
        ok = net.node(hospital, "earnings", "verify", "--period", period)
        assert ok.exit_code == 0, ok.output
        assert (
            ok.output.startswith("ok: ")
            and f"accounts for {total} of {total} EUR ({total} payable)" in ok.output
        )

    # The hub (or someone at it) invents an h1 receipt and bills it on the research line
    with net.hub.store.unit() as uow:
        [real] = uow.billing.receipts(receipt_ids=issued["h1"])
        columns = {c.key: getattr(real, c.key) for c in UsageReceiptRow.__table__.columns}
        uow.billing.session.add(UsageReceiptRow(**columns | {"receipt_id": "r-forged"}))
        row = uow.accounts.invoice(invoice["number"])
        row.lines = [
            line | {"receipt_ids": [*line["receipt_ids"], "r-forged"]}
            if line["service"] == "research"
            else line
            for line in row.lines
        ]
    forged = net.node("h1", "earnings", "verify", "--period", period)
    assert forged.exit_code == 1, forged.output
    assert "receipt r-forged is attributed to h1 but this node never issued it" in forged.output
    assert "the node accounts for 410.00 of 710.00 EUR" in forged.output
    as_json = json.loads(net.node("h1", "earnings", "verify", "--period", period, "--json").output)
    assert (as_json["ok"], as_json["accounted"], len(as_json["problems"])) == (False, "410.00", 1)


# -- the pure check over a real audit log ---------------------------------------------------------------


def _receipt(audit: AuditLog, key: KeyPair, task: Task) -> str:
    result = with_receipt(TaskResult(task_id=task.id, status=ResultStatus.OK), task, audit=audit, key=key)
    assert result.receipt is not None
    return result.receipt.receipt_id


def _statement(*lines: StatementLine, total: str | None = None) -> HospitalStatement:
    amount = sum((line.amount for line in lines), Decimal("0.00"))
    paid = sum((line.amount for line in lines if line.invoice_state == "paid"), Decimal("0.00"))
    return HospitalStatement(
        hospital="gosh", period="2026-11", currency="EUR", lines=list(lines),
        total=Decimal(total) if total else amount, payable=paid,
    )  # fmt: skip


def _line(
    line_id: str, amount: str, receipts: list[str], ours: list[str], study: str | None = "study-1"
) -> StatementLine:
    return StatementLine(
        invoice="INV-2026-0001", invoice_state="paid", line_id=line_id, study_id=study,
        description=f"line {line_id}", amount=Decimal(amount), receipt_ids=receipts,
        hospital_receipt_ids=ours,
    )  # fmt: skip


def test_check_statement_accounts_for_this_nodes_receipts_and_names_what_it_cannot(
    audit: AuditLog, task_factory: Callable[..., Task]
) -> None:
    key = KeyPair.generate()
    mine = _receipt(audit, key, task_factory(id="t-1"))
    other_study = _receipt(audit, key, task_factory(id="t-2", study_id="study-2"))
    audit.append("participation", payload={"application_id": "APP-1", "hospital": "gosh", "accepted": True})
    audit.append("participation", payload={"application_id": "APP-2", "hospital": "gosh", "accepted": False})
    fee = _line("1", "90.00", ["p:APP-1:gosh", "p:APP-1:h2"], ["p:APP-1:gosh"], study=None)
    research = _line("2", "300.00", [mine, "r-of-h2"], [mine])
    good = check_statement(_statement(fee, research), audit.entries(), chain=audit.verify(), hospital="gosh")
    assert good.ok, good.problems
    assert (good.accounted, good.found, good.chain_verified) == (Decimal("390.00"), 2, True)
    assert good.summary().startswith("ok: gosh 2026-11: 2 line(s); its 2 receipt(s) and acceptance(s) found")

    bad = check_statement(
        _statement(
            fee,
            research,
            _line("3", "50.00", ["r-of-h2"], []),  # claims an amount, none of ours
            _line("4", "40.00", [mine, "r-never"], [mine, "r-never"]),  # a receipt never issued
            _line("5", "20.00", ["p:APP-2:gosh"], ["p:APP-2:gosh"], study=None),  # declined, yet charged
            _line("6", "10.00", [other_study], [other_study]),  # another study's receipt
            total="999.00",
        ),
        audit.entries(),
        chain=audit.verify(),
        hospital="gosh",
    )
    assert not bad.ok and bad.accounted == Decimal("390.00")
    text = "\n".join(bad.problems)
    assert "line 3 (line 3) claims 50.00 for gosh but lists none of this node's receipts" in text
    assert "receipt r-never is attributed to gosh but this node never issued it" in text
    assert "this node never accepted application APP-2" in text
    assert "is of study study-2" in text
    assert "not the stated total 999.00" in text
    assert len(bad.problems) == 6, "line 5 also lists none of this node's receipts"


def test_a_broken_audit_chain_accounts_for_nothing(
    audit: AuditLog, db: NodeDatabase, task_factory: Callable[..., Task]
) -> None:
    mine = _receipt(audit, KeyPair.generate(), task_factory())
    db.con.execute("UPDATE audit_log SET payload = replace(payload, 'analytical_study', 'feasibility')")
    check = check_statement(
        _statement(_line("1", "300.00", [mine], [mine])), audit.entries(), chain=audit.verify()
    )
    assert not check.ok and check.accounted == Decimal("0.00")
    assert "does not verify (BROKEN at seq 1" in check.problems[0]
    wrong = check_statement(_statement(_line("1", "1.00", [mine], [mine])), audit.entries(), hospital="h9")
    assert "this node serves h9" in wrong.problems[0]
