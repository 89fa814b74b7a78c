"""The steward console (``phds node console``) over a real node folder: one-time sign-in links, the session
cookie, CSRF, host checks, deciding through the CLI's own path, and the command's loopback rule."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import anyio.from_thread
import httpx
import pytest
import typer
from typer.testing import CliRunner

from phds.demo.network import free_port
from phds.errors import ConfigError, Conflict
from phds.node.console.session import IDLE_SECONDS, SESSION_COOKIE, SESSION_SECONDS, Sessions
from phds.node.local import open_local

from .console_support import STEWARD, Browser, Console, NodeFolder

# -- signing in -----------------------------------------------------------------------------------------


def test_a_sign_in_link_works_once_and_sets_a_host_only_secure_httponly_strict_cookie(
    console: Console, console_portal: anyio.from_thread.BlockingPortal
) -> None:
    assert console.http.get("/approvals").headers["location"] == "/sign-in"
    token = console.link_token()
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    first = console.http.get(f"/sign-in?token={token}")
    assert first.status_code == 303
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= flags and "domain" not in flags
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    assert f"max-age={SESSION_SECONDS}" in cookie.lower()
    assert console.http.get("/approvals").status_code == 200

    other = Browser(console.app, console_portal)  # a second browser with the same link
    again = other.get(f"/sign-in?token={token}")
    assert again.status_code == 401 and f"{SESSION_COOKIE}=" not in again.headers.get("set-cookie", "")
    assert "does not work" in again.text
    other.close()
    assert console.http.get(f"/sign-in?token={token}").status_code == 401
    assert console.http.get("/sign-in?token=not-the-token").status_code == 401


def test_a_new_link_replaces_the_old_one_and_sign_out_ends_the_session(console: Console) -> None:
    stale = console.link_token()
    page = console.http.get("/sign-in")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    refused = console.http.post("/sign-in/new-link", data={})
    assert refused.status_code == 403 and len(console.links) == 1
    sent = console.http.post("/sign-in/new-link", data={"csrf_token": csrf.group(1)})
    assert sent.status_code == 200 and "printed in the terminal" in sent.text
    assert len(console.links) == 2 and console.links[1] != console.links[0]
    assert console.http.get(f"/sign-in?token={stale}").status_code == 401
    fresh = console.links[1].rsplit("token=", 1)[1]
    assert console.http.get(f"/sign-in?token={fresh}").status_code == 303

    out = console.http.post("/sign-out", data={"csrf_token": console.csrf()})
    assert out.status_code == 303 and out.headers["location"] == "/sign-in?out=true"
    assert console.http.get("/approvals").headers["location"] == "/sign-in"


def test_sessions_end_after_30_idle_minutes_or_8_hours() -> None:
    now = [1000.0]
    sessions = Sessions(clock=lambda: now[0])
    idle = sessions.redeem(sessions.new_link_token())
    assert idle is not None
    now[0] += IDLE_SECONDS + 1
    assert not sessions.touch(idle)
    busy = sessions.redeem(sessions.new_link_token())
    assert busy is not None
    for _ in range(int(SESSION_SECONDS / (IDLE_SECONDS / 2))):
        assert sessions.touch(busy)
        now[0] += IDLE_SECONDS / 2
    now[0] += 1  # 8 hours and a second after signing in, though never idle
    assert not sessions.touch(busy)
    late = sessions.new_link_token()
    now[0] += 16 * 60
    assert sessions.redeem(late) is None


def test_another_host_name_is_refused_against_dns_rebinding(console: Console) -> None:
    console.sign_in()
    assert console.http.get("/approvals", headers={"host": "evil.example"}).status_code == 400


# -- the queue and deciding -----------------------------------------------------------------------------


def test_approving_goes_through_the_cli_path_and_audits_the_stewards_name(
    console: Console, console_node: NodeFolder, node_cli_app: typer.Typer
) -> None:
    console.sign_in()
    with open_local(console_node.config) as local:
        binding = local.approvals.get("study-1").binding
    done = console.http.post(
        "/approvals/study-1/approve",
        data={"csrf_token": console.csrf(), "binding": binding, "reason": "  ethics ref 2026/14 "},
    )
    assert done.status_code == 303 and done.headers["location"] == "/approvals?decided=study-1"
    assert "approved by Dr Console" in console.http.get(done.headers["location"]).text
    with open_local(console_node.config) as local:
        decision = local.approvals.decision_for("study-1")
        assert decision is not None and decision.approved and decision.steward == STEWARD
        (entry,) = [e for e in local.audit.entries("study-1") if e.kind == "approval"]
        assert local.audit.verify().ok
    assert entry.payload["steward"] == STEWARD and entry.payload["reason"] == "ethics ref 2026/14"
    assert entry.payload["binding"] == binding and entry.payload["decision_id"] == decision.id
    assert entry.payload["requester_category"] == "industry"
    listed = CliRunner().invoke(
        node_cli_app, ["node", "approvals", "--config", str(console_node.config_path), "--json"]
    )
    assert [p["study_id"] for p in json.loads(listed.output)] == ["study-2"]
    again = console.http.post(
        "/approvals/study-1/approve", data={"csrf_token": console.csrf(), "binding": binding}
    )
    assert again.status_code == 409 and "already approved" in again.text


def test_rejecting_needs_a_reason_and_records_it(console: Console, console_node: NodeFolder) -> None:
    console.sign_in()
    with open_local(console_node.config) as local:
        binding = local.approvals.get("study-2").binding
    form = {"csrf_token": console.csrf(), "binding": binding}
    blank = console.http.post("/approvals/study-2/reject", data={**form, "reason": "   "})
    assert blank.status_code == 422 and "Field: <code>reason</code>" in blank.text
    done = console.http.post("/approvals/study-2/reject", data={**form, "reason": "outside our remit"})
    assert done.status_code == 303
    with open_local(console_node.config) as local:
        (entry,) = [e for e in local.audit.entries("study-2") if e.kind == "rejection"]
    assert (entry.payload["steward"], entry.payload["reason"]) == (STEWARD, "outside our remit")


def test_a_decision_on_what_the_page_no_longer_shows_is_refused(
    console: Console, console_node: NodeFolder, node_cli_app: typer.Typer
) -> None:
    console.sign_in()
    stale = console.http.post(
        "/approvals/study-1/approve", data={"csrf_token": console.csrf(), "binding": "0" * 64}
    )
    assert stale.status_code == 409 and "review it again" in stale.text
    with open_local(console_node.config) as local:
        assert local.approvals.get("study-1").status == "pending"
    args = [
        "node",
        "approve",
        "study-1",
        "-c",
        str(console_node.config_path),
        "--as",
        "x",
        "--binding",
        "0" * 64,
    ]
    result = CliRunner().invoke(node_cli_app, args)
    assert isinstance(result.exception, Conflict)  # the CLI's --binding refuses the same way


@pytest.mark.parametrize("how", ["no token", "a forged token", "from another site"])
def test_forms_without_the_pages_csrf_token_or_from_another_site_are_refused(
    console: Console, console_node: NodeFolder, how: str
) -> None:
    console.sign_in()
    with open_local(console_node.config) as local:
        binding = local.approvals.get("study-1").binding
    form = {"binding": binding}
    headers = {}
    if how == "a forged token":
        form["csrf_token"] = "forged"
    elif how == "from another site":
        form["csrf_token"] = console.csrf()
        headers["sec-fetch-site"] = "cross-site"
    refused = console.http.post("/approvals/study-1/approve", data=form, headers=headers)
    assert refused.status_code == 403 and "Form refused" in refused.text
    with open_local(console_node.config) as local:
        assert local.approvals.get("study-1").status == "pending"
        assert not [e for e in local.audit.entries("study-1") if e.kind == "approval"]


# -- the command ---------------------------------------------------------------------------------------


def test_a_non_loopback_host_needs_allow_remote_and_tls(
    console_node: NodeFolder, node_cli_app: typer.Typer
) -> None:
    from phds.cli.node_console import check_binding, is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.1.2.3", "console.hospital.example"))
    with pytest.raises(ConfigError, match="--allow-remote"):
        check_binding("0.0.0.0", allow_remote=False, tls=False)
    with pytest.raises(ConfigError, match="--tls-cert"):
        check_binding("0.0.0.0", allow_remote=True, tls=False)
    check_binding("0.0.0.0", allow_remote=True, tls=True)
    args = [
        "node",
        "console",
        "-c",
        str(console_node.config_path),
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
    ]
    refused = CliRunner().invoke(node_cli_app, args)
    assert isinstance(refused.exception, ConfigError) and "--allow-remote" in refused.exception.message
    assert "token=" not in refused.output
    no_tls = CliRunner().invoke(node_cli_app, [*args, "--allow-remote"])
    assert isinstance(no_tls.exception, ConfigError) and "--tls-cert" in no_tls.exception.message


def test_phds_node_console_prints_a_link_that_signs_in_once(console_node: NodeFolder) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phds.cli.main",
            "node",
            "console",
            "-c",
            str(console_node.config_path),
            "--port",
            str(port),
            "--steward",
            "Dr Subprocess",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        link = ""
        for line in process.stdout:
            if "/sign-in?token=" in line:
                link = line.strip()
                break
        assert link.startswith(f"http://127.0.0.1:{port}/sign-in?token="), link
        with httpx.Client(timeout=30) as http:
            signed_in = http.get(link)
            assert signed_in.status_code == 303 and SESSION_COOKIE in signed_in.headers["set-cookie"]
            session = signed_in.headers["set-cookie"].split(";")[0].split("=", 1)[1]
            http.cookies.set(SESSION_COOKIE, session, domain="127.0.0.1")  # httpx keeps Secure for https
            queue = http.get(f"http://127.0.0.1:{port}/approvals")
            assert queue.status_code == 200 and "Deciding as <strong>Dr Subprocess</strong>" in queue.text
            assert http.get(link).status_code == 401
    finally:
        process.terminate()
        process.communicate(timeout=30)
