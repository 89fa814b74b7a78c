"""Bearer tokens: wrong, expired, revoked and malformed ones are 401 with a clear message."""

from __future__ import annotations

from datetime import timedelta

import pytest

from phds.errors import AuthenticationError
from phds.hub import services
from phds.hub.auth import hash_secret, new_token, parse_token
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.hub.testing import HubClient, add_org, add_user


@pytest.fixture
def requester(store: HubStore) -> tuple[str, str]:
    add_org(store, "uni", "requester")
    user_id, token = add_user(store, "r@uni.example", "requester", "uni")
    return str(user_id), token


def _unauthorised(response: object, fragment: str) -> None:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert body["code"] == "AuthenticationError"
    assert fragment in body["message"]


def test_token_format_round_trips_and_stores_only_a_hash() -> None:
    token_id, digest, token = new_token()
    assert token.startswith(f"phds_{token_id}_")
    parsed_id, secret = parse_token(token)
    assert parsed_id == token_id and len(secret) == 43 and hash_secret(secret) == digest
    assert secret not in digest
    with pytest.raises(AuthenticationError, match="malformed enrolment token"):
        parse_token(token, "phdse")


def test_me_identifies_the_caller(client: HubClient, requester: tuple[str, str]) -> None:
    user_id, token = requester
    body = client.get("/api/v1/me", token=token).json()
    assert body["kind"] == "user" and body["id"] == user_id and body["role"] == "requester"
    assert body["organisation"] == "uni" and body["organisation_kind"] == "requester"
    assert body["token_id"] == token.split("_")[1]


def test_missing_token(client: HubClient) -> None:
    _unauthorised(client.get("/api/v1/me"), "authentication required")


def test_malformed_token(client: HubClient) -> None:
    _unauthorised(client.get("/api/v1/me", token="hunter2"), "malformed API token")


def test_wrong_secret_for_a_real_token_id(client: HubClient, requester: tuple[str, str]) -> None:
    _, token = requester
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    _unauthorised(client.get("/api/v1/me", token=wrong), "unknown or wrong API token")


def test_unknown_token(client: HubClient) -> None:
    _unauthorised(client.get("/api/v1/me", token=new_token()[2]), "unknown or wrong API token")


def test_revoked_token(client: HubClient, store: HubStore, requester: tuple[str, str]) -> None:
    _, token = requester
    assert client.get("/api/v1/me", token=token).status_code == 200
    with store.unit() as uow:
        services.revoke_token(uow, token.split("_")[1], utcnow())
    _unauthorised(client.get("/api/v1/me", token=token), "was revoked at")


def test_expired_token(client: HubClient, store: HubStore, requester: tuple[str, str]) -> None:
    _user_id, _ = requester
    with store.unit() as uow:
        user = uow.users.by_email("r@uni.example")
        assert user is not None
        token, _ = services.issue_token(uow, user_id=user.id, expires_at=utcnow() - timedelta(seconds=1))
    _unauthorised(client.get("/api/v1/me", token=token), "expired at")


def test_use_is_recorded(client: HubClient, store: HubStore, requester: tuple[str, str]) -> None:
    _, token = requester
    with store.unit() as uow:
        row = uow.tokens.get(token.split("_")[1])
        assert row is not None and row.last_used_at is None
    before = utcnow()
    client.get("/api/v1/me", token=token)
    with store.unit() as uow:
        row = uow.tokens.get(token.split("_")[1])
        assert row is not None and row.last_used_at is not None and row.last_used_at >= before


def test_people_issue_list_and_revoke_their_own_tokens(client: HubClient, requester: tuple[str, str]) -> None:
    user_id, token = requester
    issued = client.post("/api/v1/tokens", token=token, json={"name": "laptop", "ttl_days": 7})
    assert issued.status_code == 201
    body = issued.json()
    new = body["token"]
    assert body["info"]["user_id"] == user_id and body["info"]["name"] == "laptop"
    assert client.get("/api/v1/me", token=new).status_code == 200
    listed = client.get("/api/v1/tokens", token=new).json()
    assert {t["id"] for t in listed} == {token.split("_")[1], new.split("_")[1]}
    assert all("secret" not in str(t) and new.split("_", 2)[2] not in str(t) for t in listed)
    revoked = client.delete(f"/api/v1/tokens/{new.split('_')[1]}", token=token)
    assert revoked.status_code == 200
    _unauthorised(client.get("/api/v1/me", token=new), "revoked")
    again = client.delete(f"/api/v1/tokens/{new.split('_')[1]}", token=token)
    assert again.status_code == 409
