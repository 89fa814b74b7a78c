"""Tokens over real HTTP: wrong, malformed, expired and revoked tokens get 401 with a clear message, for
requester calls and node calls alike; a running node whose credential is revoked stops with exit 4."""

from __future__ import annotations

import httpx
import pytest

from phds.demo.network import LocalNetwork
from phds.hub import services
from phds.hub.store.models import utcnow

from .conftest import Principals
from .support import api, credential, hub_store, wait_until

pytestmark = pytest.mark.integration

BOGUS = {
    "missing": None,
    "garbage": "hello",
    "wrong secret": "phds_0123456789abcdef_" + "A" * 43,
    "non-ascii": "phds_ünïcode_s3cr3tvälue",
    "huge": "phds_" + "x" * 20_000,
}


def _assert_401(response: httpx.Response, *words: str, token: str | None = None) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    body = response.json()
    assert body["code"] == "AuthenticationError" and body["status"] == 401
    message = body["message"].lower()
    assert message and all(word in message for word in words), body["message"]
    if token:
        assert token not in response.text and token.split("_")[-1] not in response.text, "never echoed"


def _call(network: LocalNetwork, token: str | None, method: str, path: str) -> httpx.Response:
    # bytes, so a non-ASCII token goes on the wire as UTF-8 instead of being refused by httpx
    headers = {"Authorization": f"Bearer {token}".encode()} if token is not None else {}
    with api(network) as client:
        return client.request(method, path, headers=headers)


@pytest.mark.parametrize("path", ["/studies", "/nodes/me/tasks"])
@pytest.mark.parametrize("kind", list(BOGUS))
def test_a_bogus_token_is_refused_with_401(guarded_network: LocalNetwork, kind: str, path: str) -> None:
    _assert_401(_call(guarded_network, BOGUS[kind], "GET", path), token=BOGUS[kind])


def test_an_expired_or_revoked_requester_token_is_refused(
    guarded_network: LocalNetwork, principals: Principals
) -> None:
    _assert_401(_call(guarded_network, principals.expired_requester, "GET", "/studies"), "expired")
    _assert_401(_call(guarded_network, principals.revoked_requester, "GET", "/studies"), "revoked")
    _assert_401(_call(guarded_network, principals.revoked_requester, "POST", "/studies"), "revoked")
    assert _call(guarded_network, guarded_network.requester_token, "GET", "/studies").status_code == 200


def test_an_expired_node_credential_is_refused(guarded_network: LocalNetwork, principals: Principals) -> None:
    _assert_401(_call(guarded_network, principals.expired_node, "GET", "/nodes/me/tasks"), "expired")
    fake_task = "/tasks/00000000-0000-0000-0000-000000000000/result"
    _assert_401(_call(guarded_network, principals.expired_node, "POST", fake_task), "expired")


def test_a_node_whose_credential_is_revoked_stops_with_a_clear_error(guarded_network: LocalNetwork) -> None:
    node = guarded_network.nodes["exiled"]
    assert node.process is not None and node.process.poll() is None
    secret = credential(guarded_network, "exiled")["credential"]
    token_id = secret.split("_")[1]
    with hub_store(guarded_network) as store, store.unit() as uow:
        services.revoke_token(uow, token_id, utcnow())

    _assert_401(_call(guarded_network, secret, "GET", "/nodes/me/tasks"), "revoked")
    # the agent's next long poll (within its 3 s poll wait) meets the revocation: it stops, exit code 4
    process = node.process
    wait_until(lambda: process.poll() is not None, "the node to stop after its credential was revoked")
    assert process.returncode == 4, process.returncode
    log = guarded_network.log_path("node-exiled").read_text(encoding="utf-8")
    tail = log[log.rfind("agent starting") :]
    assert "revoked" in tail.lower(), tail[-2000:]
    assert "Traceback" not in tail
    for name in ("north", "south"):  # the other nodes carry on
        assert guarded_network.nodes[name].process.poll() is None  # type: ignore[union-attr]
