"""``phds billing`` against a real hub on loopback: tariffs, profiles, applications, quotes, invoices,
statements and ``verify``, each ``--json`` output parsed; ``verify`` failing on evidence a compromised hub
altered in its own database; a malformed file refused in one line naming its file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from phds.billing.tariff import default_tariff_text
from phds.cli import billing as billing_cli
from phds.errors import InputError

from ..sdk.billing_support import (
    APPLICATION,
    OPERATOR_PROFILE,
    PROFILE,
    MoneyNetwork,
    invoiced,
    money_network,
)

SRC = Path(__file__).resolve().parents[2] / "src"
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers


@pytest.fixture
def network(tmp_path: Path) -> Iterator[MoneyNetwork]:
    with money_network(tmp_path) as running:
        yield running


@pytest.fixture
def cli() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Root, as phds.cli.main builds it."""

    root.add_typer(billing_cli.app, name="billing")
    return root


def _run(
    cli: typer.Typer, network: MoneyNetwork, *args: str, actor: str = "requester", code: int = 0
) -> Result:
    env = {"PHDS_HUB_URL": network.url, "PHDS_TOKEN": network.tokens[actor], "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["billing", *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, result.output
    return result


def _json(cli: typer.Typer, network: MoneyNetwork, *args: str, actor: str = "requester") -> Any:
    return json.loads(_run(cli, network, *args, "--json", actor=actor).stdout)


def _write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text, encoding="utf-8")
    return str(folder / name)


def test_the_money_path_through_the_cli(cli: typer.Typer, network: MoneyNetwork, tmp_path: Path) -> None:
    tariff = _json(
        cli, network, "tariff", "add", _write(tmp_path, "tariff.yaml", default_tariff_text()), actor="admin"
    )
    version = tariff["version"]
    assert [t["version"] for t in _json(cli, network, "tariff", "list")] == [version]
    shown = _json(cli, network, "tariff", "show", version)
    assert shown["document"]["services"]["research"]["prices"]["academic"] == "500.00"  # a decimal string
    assert "research" in _run(cli, network, "tariff", "show", version).stdout
    _json(
        cli,
        network,
        "profile",
        "set",
        "operator",
        _write(tmp_path, "op.yaml", OPERATOR_PROFILE),
        actor="admin",
    )
    _json(
        cli,
        network,
        "profile",
        "set",
        "uni-a",
        _write(tmp_path, "uni-a.json", json.dumps(_yaml(PROFILE))),
        actor="admin",
    )
    assert _json(cli, network, "profile", "show", "uni-a")["legal_name"] == "University A"
    assert "Brussels" in _run(cli, network, "profile", "show", "uni-a").stdout

    app_id = _run(
        cli, network, "application", "file", _write(tmp_path, "app.yaml", APPLICATION)
    ).stdout.strip()
    assert app_id.startswith("APP-") and "\n" not in app_id
    assert [a["id"] for a in _json(cli, network, "application", "list")] == [app_id]
    network.participate(app_id, "h1", "230.00")
    network.participate(app_id, "h2")
    quote = _json(cli, network, "quote", "create", app_id, actor="admin")
    assert (quote["state"], quote["ceiling"]) == ("offered", "1510.00")
    assert [q["id"] for q in _json(cli, network, "quote", "list", app_id)] == [quote["id"]]
    assert _json(cli, network, "quote", "accept", quote["id"])["state"] == "accepted"
    application = _run(cli, network, "application", "show", app_id).stdout
    assert "accepted" in application and "230.00" in application and "1,510.00 EUR" in application

    network.run_study(app_id, {"h1": 40, "h2": 10})
    [issued] = _json(cli, network, "invoice", "issue", network.period, actor="admin")
    assert (issued["net_total"], issued["vat_total"], issued["gross_total"]) == (
        "1030.00",
        "216.30",
        "1246.30",
    )
    number = issued["number"]
    assert (
        "no invoices to issue" in _run(cli, network, "invoice", "issue", network.period, actor="admin").stdout
    )
    assert [i["number"] for i in _json(cli, network, "invoice", "list", "--period", network.period)] == [
        number
    ]
    assert _json(cli, network, "invoice", "list", "--period", "2001-01") == []
    assert _json(cli, network, "invoice", "show", number)["lines"][0]["receipt_ids"]
    assert "1,246.30 EUR" in _run(cli, network, "invoice", "show", number).stdout
    assert number in _run(cli, network, "invoice", "list").stdout
    out = tmp_path / "invoice.pdf"
    assert _run(cli, network, "invoice", "download", number, "--out", str(out)).stdout.strip() == str(out)
    assert out.read_bytes().startswith(b"%PDF")
    html = _json(cli, network, "invoice", "download", number, "--format", "html", "--out", str(tmp_path))
    assert html["path"] == str(tmp_path / f"{number}.html") and html["bytes"] > 0

    verified = _run(cli, network, "verify", number).stdout.strip()
    assert verified == "ok: 2 lines, 2 receipts verified against the node keys"
    keys = network.pinned()
    key_file = _write(tmp_path, "keys.json", json.dumps({"h2": keys["h2"]}))
    assert _json(
        cli, network, "verify", number, "--trust-keys", f"h1={keys['h1']}", "--trust-keys", key_file
    )["ok"]

    statement = _json(cli, network, "statement", "h1", network.period, actor="admin")
    assert (statement["total"], statement["payable"]) == ("620.00", "0.00")
    paid = _json(cli, network, "invoice", "pay", number, "--reference", "SEPA-1", actor="admin")
    assert paid["state"] == "paid"
    assert (
        "payable 620.00 EUR" in _run(cli, network, "statement", "h1", network.period, actor="steward").stdout
    )


def test_verify_fails_on_evidence_the_hub_altered(
    cli: typer.Typer, network: MoneyNetwork, tmp_path: Path
) -> None:
    number = invoiced(network, tmp_path).number
    assert _run(cli, network, "verify", number).exit_code == 0
    with network.tampered_receipt("h1", persons=400) as receipt_id:
        shown = _run(cli, network, "verify", number, code=4).stdout
        assert f"invoice {number} does not verify" in shown
        assert f"- usage receipt {receipt_id} from h1: signature does not verify" in shown
        check = json.loads(_run(cli, network, "verify", number, "--json", code=4).stdout)
        assert not check["ok"] and len(check["problems"]) >= 1
    wrong = f"h1={network.keys['h2'].public_key_b64}"
    assert "h1" in _run(cli, network, "verify", number, "--trust-keys", wrong, code=4).stdout
    assert _run(cli, network, "verify", number).exit_code == 0  # restored

    note = _json(cli, network, "invoice", "credit", number, "--reason", "wrong address", actor="admin")
    assert (note["kind"], note["credit_of"]) == ("credit_note", number)
    second = _run(
        cli, network, "application", "file", _write(tmp_path, "second.yaml", APPLICATION)
    ).stdout.strip()
    quote = _json(cli, network, "quote", "create", second, actor="admin")
    assert _json(cli, network, "quote", "decline", quote["id"])["state"] == "declined"
    assert _json(cli, network, "application", "show", second)["state"] == "declined"


def test_a_malformed_file_is_one_line_naming_file_and_line(cli: typer.Typer, tmp_path: Path) -> None:
    """Refused before anything is sent (nothing listens at the hub's address), through ``phds`` itself."""
    bad = _write(tmp_path, "bad.yaml", APPLICATION.replace("duration_months: 12", "duration_months: twelve"))
    env = os.environ | {"PHDS_HUB_URL": NOWHERE, "PHDS_TOKEN": "token", "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-m", "phds.cli.main", "billing", "application", "file", bad],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"file {bad}, line 6, field duration_months" in line and "Traceback" not in done.stderr
    profile = _write(tmp_path, "profile.yaml", PROFILE.replace("country: BE", "country: Belgium"))
    runner = CliRunner().invoke(
        cli, ["billing", "profile", "set", "uni-a", profile, "--hub", NOWHERE, "--token", "t"]
    )
    assert isinstance(runner.exception, InputError)
    assert "profile.yaml, line 5, field country" in runner.exception.message


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)
