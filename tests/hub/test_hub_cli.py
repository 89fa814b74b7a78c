"""``phds hub``: bootstrap, administration on the database, and ``serve`` as a real process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from phds.cli import hub as hub_cli
from phds.errors import AuthenticationError, Conflict, InputError
from phds.hub import services
from phds.hub.auth import authenticate
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.hub.testing import hub_settings
from phds.protocol.enrolment import EnrolRequest


@pytest.fixture
def cli() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Root, as phds.cli.main builds it."""

    hub_cli.register(root)
    return root


def _run(cli: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def _principal(url: str, token: str) -> tuple[str, str | None, str]:
    store = HubStore.open(url, migrate=False)
    try:
        p = authenticate(store, token, hub_settings(url))
        return p.name, p.role.value if p.role else None, p.organisation_name
    finally:
        store.close()


def test_init_creates_the_first_admin_once(cli: typer.Typer, sqlite_url: str) -> None:
    token = _run(cli, "hub", "init", "--db", sqlite_url, "--email", "ops@network.example")
    assert token.startswith("phds_") and "\n" not in token
    assert _principal(sqlite_url, token) == ("ops@network.example", "admin", "operator")
    with pytest.raises(Conflict, match="--force-new-token"):
        _run(cli, "hub", "init", "--db", sqlite_url)
    again = _run(
        cli, "hub", "init", "--db", sqlite_url, "--force-new-token", "--email", "ops@network.example"
    )
    assert again != token
    assert _principal(sqlite_url, again)[1] == "admin"
    assert _principal(sqlite_url, token)[1] == "admin"


def test_operator_administers_on_the_database(cli: typer.Typer, sqlite_url: str) -> None:
    db = ("--db", sqlite_url)
    _run(cli, "hub", "init", *db)
    out = _run(
        cli,
        "hub",
        "org",
        "add",
        "gosh",
        "--kind",
        "hospital",
        "--display-name",
        "GOSH",
        "--country",
        "GB",
        *db,
    )
    assert out.startswith("hospital gosh")
    _run(
        cli,
        "hub",
        "org",
        "add",
        "uni",
        "--kind",
        "requester",
        "--display-name",
        "Uni",
        "--category",
        "academic",
        *db,
    )
    with pytest.raises(InputError, match="a requester needs a category"):
        _run(cli, "hub", "org", "add", "bad", "--kind", "requester", "--display-name", "Bad", *db)
    token = _run(
        cli, "hub", "user", "add", "r@uni.example", "--role", "requester", "--org", "uni",
        "--display-name", "R", "--token", *db,
    )  # fmt: skip
    assert _principal(sqlite_url, token) == ("r@uni.example", "requester", "uni")
    with pytest.raises(InputError, match="field role"):
        _run(
            cli,
            "hub",
            "user",
            "add",
            "s@uni.example",
            "--role",
            "steward",
            "--org",
            "uni",
            "--display-name",
            "S",
            *db,
        )

    second = _run(cli, "hub", "token", "issue", "r@uni.example", "--name", "laptop", "--ttl-days", "3", *db)
    _run(cli, "hub", "token", "revoke", second, *db)
    with pytest.raises(AuthenticationError, match="revoked"):
        _principal(sqlite_url, second)
    assert _principal(sqlite_url, token)[0] == "r@uni.example"

    enrolment = _run(cli, "hub", "enrol-token", "gosh", "--ttl-hours", "1", *db)
    assert enrolment.startswith("phdse_")
    store = HubStore.open(sqlite_url)
    try:
        with store.unit() as uow:
            _, _, node = services.enrol_node(
                uow, EnrolRequest(enrolment_token=enrolment), hub_settings(sqlite_url), utcnow()
            )
            assert node.organisation.name == "gosh"
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_serve_runs_a_real_hub(tmp_path: Path) -> None:
    port = _free_port()
    db = f"sqlite:///{tmp_path / 'served.sqlite'}"
    code = (
        "import typer; from phds.cli import hub; "
        "r = typer.Typer(); r.callback()(lambda: None); hub.register(r); r()"
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", code, "hub", "serve", "--db", db, "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, log.read_text()
        assert health.status_code == 200
        assert health.json()["schema_revision"] == "0008"
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (tmp_path / "served.sqlite").exists()
