"""The operator's and the node's journeys through the API: organisations, people, enrolment, catalogue."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from phds.hub.store import HubStore
from phds.hub.testing import ClientFactory, HubClient, add_org, add_user, enrol, enrolment_token


@pytest.fixture
def admin(store: HubStore) -> str:
    add_org(store, "operator", "operator")
    return add_user(store, "admin@op.example", "admin", "operator")[1]


def test_admin_builds_the_network(client: HubClient, admin: str) -> None:
    orgs: list[dict[str, Any]] = [
        {"name": "gosh", "display_name": "Great Ormond Street", "kind": "hospital", "country": "GB"},
        {"name": "pharma-x", "display_name": "Pharma X", "kind": "requester", "category": "industry"},
    ]
    for spec in orgs:
        response = client.post("/api/v1/organisations", token=admin, json=spec)
        assert response.status_code == 201, response.text
        assert response.json()["name"] == spec["name"]
    names = [o["name"] for o in client.get("/api/v1/organisations", token=admin).json()]
    assert names == ["gosh", "operator", "pharma-x"]
    hospitals = client.get("/api/v1/organisations", params={"kind": "hospital"}, token=admin).json()
    assert [o["name"] for o in hospitals] == ["gosh"]
    steward = client.post(
        "/api/v1/users",
        token=admin,
        json={
            "email": "Steward@GOSH.example",
            "display_name": "S",
            "role": "steward",
            "organisation": "gosh",
        },
    )
    assert steward.status_code == 201
    assert steward.json()["email"] == "steward@gosh.example"
    token = client.post("/api/v1/tokens", token=admin, json={"user_id": steward.json()["id"]})
    assert token.status_code == 201
    me = client.get("/api/v1/me", token=token.json()["token"]).json()
    assert (me["role"], me["organisation"]) == ("steward", "gosh")


def test_reserved_names_are_refused(client: HubClient, admin: str) -> None:
    spec = {"name": "me", "display_name": "Me", "kind": "hospital", "country": "GB"}
    response = client.post("/api/v1/organisations", token=admin, json=spec)
    assert response.status_code == 422 and "reserved" in response.json()["message"]


def test_non_admins_see_only_their_own_organisation(client: HubClient, store: HubStore, admin: str) -> None:
    for name in ("uni-a", "uni-b"):
        add_org(store, name, "requester")
    _, token_a = add_user(store, "a@uni-a.example", "requester", "uni-a")
    add_user(store, "a2@uni-a.example", "requester", "uni-a")
    add_user(store, "b@uni-b.example", "requester", "uni-b")
    assert [o["name"] for o in client.get("/api/v1/organisations", token=token_a).json()] == ["uni-a"]
    emails = [u["email"] for u in client.get("/api/v1/users", token=token_a).json()]
    assert emails == ["a2@uni-a.example", "a@uni-a.example"]
    assert client.get("/api/v1/organisations/uni-b", token=token_a).status_code == 404


def test_enrolment_then_catalogue(client: HubClient, store: HubStore, admin: str) -> None:
    add_org(store, "gosh", "hospital", display_name="GOSH", country="GB")
    issued = client.post("/api/v1/enrolment-tokens", token=admin, json={"hospital": "gosh", "ttl_hours": 2})
    assert issued.status_code == 201
    enrolment = issued.json()["token"]
    assert enrolment.startswith("phdse_")
    metadata = {"software_version": "0.1.0", "description": "GOSH node"}
    enrolled = client.post("/api/v1/nodes/enrol", json={"enrolment_token": enrolment, "metadata": metadata})
    assert enrolled.status_code == 201, enrolled.text
    credential = enrolled.json()["credential"]
    assert enrolled.json()["node"]["name"] == "gosh"
    again = client.post("/api/v1/nodes/enrol", json={"enrolment_token": enrolment})
    assert again.status_code == 401 and "already used" in again.json()["message"]

    me = client.get("/api/v1/nodes/me", token=credential).json()
    assert me["hospital"] == "gosh" and me["metadata"]["software_version"] == "0.1.0"
    assert me["last_seen_at"] is not None

    profile = {"persons": 1234, "tables": {"condition_occurrence": 5000}}
    published = client.put("/api/v1/nodes/me/catalogue", token=credential, json=profile)
    assert published.status_code == 200, published.text
    client.put("/api/v1/nodes/me/catalogue", token=credential, json={**profile, "persons": 1300})

    add_org(store, "uni", "requester")
    _, researcher = add_user(store, "r@uni.example", "requester", "uni")
    entries = client.get("/api/v1/catalogue", token=researcher).json()
    assert len(entries) == 1
    assert entries[0]["hospital"] == "gosh" and entries[0]["country"] == "GB"
    assert entries[0]["profile"]["persons"] == 1300
    one = client.get("/api/v1/catalogue/gosh", token=researcher).json()
    assert one["id"] == entries[0]["id"]


def test_enrolment_token_errors(client: HubClient, store: HubStore, admin: str) -> None:
    add_org(store, "gosh", "hospital")
    wrong = client.post("/api/v1/nodes/enrol", json={"enrolment_token": "phds_0123456789abcdef_" + "A" * 43})
    assert wrong.status_code == 401 and "malformed enrolment token" in wrong.json()["message"]
    good = enrolment_token(store, "gosh")
    forged = good[:-3] + ("xyz" if not good.endswith("xyz") else "abc")
    assert client.post("/api/v1/nodes/enrol", json={"enrolment_token": forged}).status_code == 401
    expired = enrolment_token(store, "gosh", hours=-1)
    response = client.post("/api/v1/nodes/enrol", json={"enrolment_token": expired})
    assert response.status_code == 401 and "expired" in response.json()["message"]
    unknown = client.post("/api/v1/enrolment-tokens", token=admin, json={"hospital": "operator"})
    assert unknown.status_code == 422 and "no hospital" in unknown.json()["message"]


def test_re_enrolment_revokes_the_old_credential(client: HubClient, store: HubStore, hub_url: str) -> None:
    add_org(store, "gosh", "hospital")
    node_id, first = enrol(store, "gosh", hub_url)
    again = client.post("/api/v1/nodes/enrol", json={"enrolment_token": enrolment_token(store, "gosh")})
    assert again.status_code == 201
    assert again.json()["node"]["id"] == str(node_id)
    assert client.get("/api/v1/nodes/me", token=first).status_code == 401
    assert client.get("/api/v1/nodes/me", token=again.json()["credential"]).status_code == 200


def test_concurrent_double_use_over_http_gives_one_credential(client: HubClient, store: HubStore) -> None:
    add_org(store, "gosh", "hospital")
    token = enrolment_token(store, "gosh")
    barrier = threading.Barrier(2, timeout=20)
    statuses: list[int] = []

    def use() -> None:
        barrier.wait()
        statuses.append(client.post("/api/v1/nodes/enrol", json={"enrolment_token": token}).status_code)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [201, 401]


def test_catalogue_refuses_non_objects_and_oversized_profiles(
    store: HubStore, hub_url: str, make_client: ClientFactory
) -> None:
    client = make_client(store, hub_url, catalogue_max_bytes=2048)
    add_org(store, "gosh", "hospital")
    _, credential = enrol(store, "gosh", hub_url)
    as_list = client.put("/api/v1/nodes/me/catalogue", token=credential, json=[1, 2])
    assert as_list.status_code == 422 and as_list.json()["details"][0]["field"] == "body"
    big = client.put("/api/v1/nodes/me/catalogue", token=credential, json={"x": "y" * 3000})
    assert big.status_code == 413 and "field profile" in big.json()["message"]
    nan = client.put(
        "/api/v1/nodes/me/catalogue",
        token=credential,
        content=b'{"x": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code == 422


def test_catalogue_for_a_hospital_without_entries_is_404(
    client: HubClient, store: HubStore, admin: str
) -> None:
    add_org(store, "gosh", "hospital")
    response = client.get("/api/v1/catalogue/gosh", token=admin)
    assert response.status_code == 404 and "not published" in response.json()["message"]
    assert client.get("/api/v1/catalogue", token=admin).json() == []
