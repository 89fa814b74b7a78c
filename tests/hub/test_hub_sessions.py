"""Signing in with a password: session tokens, the vague failure, lockout, sign-out and password rules.

Attacks these stop: guessing passwords online (lockout after ``sign_in_max_failures``), learning who
has an account from the error or its timing (one message; an unknown email still costs one hash), a
stolen session outliving sign-out (the token is revoked), and weak or self-describing passwords.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import anyio.from_thread
import pytest

from phds.hub.app import create_app
from phds.hub.store import HubStore
from phds.hub.testing import HubClient, add_org, add_user, hub_settings

PASSWORD = "a long enough passphrase"

Hub = tuple[HubClient, HubStore, dict[str, str]]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    store = HubStore.open(url)
    add_org(store, "operator", "operator")
    add_org(store, "uni-a", "requester", category="academic")
    tokens = {
        "admin": add_user(store, "admin@op.example", "admin", "operator")[1],
        "requester": add_user(store, "r@uni-a.example", "requester", "uni-a")[1],
    }
    settings = hub_settings(url, sign_in_max_failures=3, sign_in_lock_minutes=5)
    with anyio.from_thread.start_blocking_portal() as portal:
        client = HubClient(create_app(settings, store=store), portal)
        user_id = client.get("/api/v1/me", token=tokens["requester"]).json()["id"]
        set_by_admin = client.put(
            f"/api/v1/users/{user_id}/password", token=tokens["admin"], json={"new_password": PASSWORD}
        )
        assert set_by_admin.status_code == 200, set_by_admin.text
        tokens["requester_id"] = user_id
        yield client, store, tokens
        client.close()
    store.close()


def sign_in(client: HubClient, email: str, password: str) -> tuple[int, dict[str, object]]:
    response = client.post("/api/v1/sessions", json={"email": email, "password": password})
    return response.status_code, response.json()


def test_the_right_password_gives_a_short_lived_session_token_of_that_person(hub: Hub) -> None:
    client, _, _ = hub
    status, body = sign_in(client, "R@Uni-A.example", PASSWORD)  # emails are case-insensitive
    assert status == 201
    info = body["info"]
    assert info["purpose"] == "session"  # type: ignore[index]
    lifetime = _parse(info["expires_at"]) - _parse(info["created_at"])  # type: ignore[index]
    assert timedelta(hours=11) < lifetime <= timedelta(hours=12)
    me = client.get("/api/v1/me", token=str(body["token"])).json()
    assert me["name"] == "r@uni-a.example" and me["role"] == "requester"


def test_a_wrong_password_and_an_unknown_email_fail_alike(hub: Hub) -> None:
    client, _, _ = hub
    wrong = sign_in(client, "r@uni-a.example", "not the password!!")
    unknown = sign_in(client, "nobody@uni-a.example", "not the password!!")
    no_password = sign_in(client, "admin@op.example", "not the password!!")
    assert wrong[0] == unknown[0] == no_password[0] == 401
    assert (
        wrong[1]["message"] == unknown[1]["message"] == no_password[1]["message"] == "wrong email or password"
    )


def test_repeated_failures_lock_the_account_even_against_the_right_password(hub: Hub) -> None:
    client, _, tokens = hub
    for _ in range(3):
        assert sign_in(client, "r@uni-a.example", "guess guess guess")[0] == 401
    status, body = sign_in(client, "r@uni-a.example", PASSWORD)
    assert status == 401 and "locked" in str(body["message"])
    reset = client.put(
        f"/api/v1/users/{tokens['requester_id']}/password",
        token=tokens["admin"],
        json={"new_password": "another long passphrase"},
    )
    assert reset.status_code == 200
    assert sign_in(client, "r@uni-a.example", "another long passphrase")[0] == 201


def test_a_success_resets_the_failure_count(hub: Hub) -> None:
    client, _, _ = hub
    for _ in range(2):
        assert sign_in(client, "r@uni-a.example", "guess guess guess")[0] == 401
    assert sign_in(client, "r@uni-a.example", PASSWORD)[0] == 201
    for _ in range(2):
        assert sign_in(client, "r@uni-a.example", "guess guess guess")[0] == 401
    assert sign_in(client, "r@uni-a.example", PASSWORD)[0] == 201


def test_signing_out_revokes_the_session_but_never_an_api_token(hub: Hub) -> None:
    client, _, tokens = hub
    _, body = sign_in(client, "r@uni-a.example", PASSWORD)
    session = str(body["token"])
    assert client.delete("/api/v1/sessions/current", token=session).status_code == 200
    assert client.get("/api/v1/me", token=session).status_code == 401
    refused = client.delete("/api/v1/sessions/current", token=tokens["requester"])
    assert refused.status_code == 409
    assert client.get("/api/v1/me", token=tokens["requester"]).status_code == 200


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("fourteen chars", "at least 15"),
        ("r@uni-a.example", "too easy"),
        ("x" * 20, "too easy"),
        ("y" * 129, "at most 128"),
    ],
)
def test_weak_passwords_are_refused_naming_the_field(hub: Hub, password: str, reason: str) -> None:
    client, _, tokens = hub
    response = client.put(
        "/api/v1/me/password",
        token=tokens["requester"],
        json={"current_password": PASSWORD, "new_password": password},
    )
    assert response.status_code == 422
    assert reason in response.json()["message"] and "new_password" in response.json()["message"]


def test_changing_ones_own_password_needs_the_current_one(hub: Hub) -> None:
    client, _, tokens = hub
    missing = client.put(
        "/api/v1/me/password", token=tokens["requester"], json={"new_password": "x" * 8 + "abcdefgh"}
    )
    assert missing.status_code == 422 and "current_password" in missing.json()["message"]
    wrong = client.put(
        "/api/v1/me/password",
        token=tokens["requester"],
        json={"current_password": "wrong wrong wrong", "new_password": "a new long passphrase"},
    )
    assert wrong.status_code == 422 and "current_password" in wrong.json()["message"]
    right = client.put(
        "/api/v1/me/password",
        token=tokens["requester"],
        json={"current_password": PASSWORD, "new_password": "a new long passphrase"},
    )
    assert right.status_code == 200
    assert sign_in(client, "r@uni-a.example", "a new long passphrase")[0] == 201
    assert sign_in(client, "r@uni-a.example", PASSWORD)[0] == 401


def test_the_cli_sets_a_password_from_stdin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    env_db = ["--db", url]
    phds = [sys.executable, "-m", "phds.cli.main"]
    store = HubStore.open(url)
    add_org(store, "operator", "operator")
    add_user(store, "admin@localhost", "admin", "operator")
    store.close()
    done = subprocess.run(
        [*phds, "hub", "user", "password", "admin@localhost", "--password-stdin", *env_db],
        input=f"{PASSWORD}\n",
        text=True,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    short = subprocess.run(
        [*phds, "hub", "user", "password", "admin@localhost", "--password-stdin", *env_db],
        input="short\n",
        text=True,
        capture_output=True,
    )
    assert short.returncode == 2 and "at least 15 characters" in short.stderr
    store = HubStore.open(url)
    try:
        with store.unit() as uow:
            admin = uow.users.by_email("admin@localhost")
            assert admin is not None and admin.password_hash is not None
            assert admin.password_hash.startswith("$argon2id$") and PASSWORD not in admin.password_hash
    finally:
        store.close()


def _parse(value: object) -> datetime:
    return datetime.fromisoformat(str(value))
