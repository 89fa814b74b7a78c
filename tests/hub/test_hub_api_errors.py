"""Every error is one JSON shape: wrong input, bad JSON, oversized bodies, unknown routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from phds.hub.store import HubStore
from phds.hub.testing import ClientFactory, HubClient, add_org, add_user
from phds.protocol.errors import ErrorBody


def _error(response: object, status: int, code: str) -> ErrorBody:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    body = ErrorBody.model_validate(response.json())
    assert (body.status, body.code) == (status, code)
    return body


@pytest.fixture
def admin(store: HubStore) -> str:
    add_org(store, "operator", "operator")
    return add_user(store, "admin@op.example", "admin", "operator")[1]


def test_validation_errors_name_the_field(client: HubClient, admin: str) -> None:
    response = client.post(
        "/api/v1/organisations",
        token=admin,
        json={"name": "Not A Slug", "display_name": "X", "kind": "hospital"},
    )
    body = _error(response, 422, "InputError")
    fields = {d.field for d in body.details}
    assert "body.name" in fields
    assert "body.name" in body.message


def test_cross_field_rules_are_validation_errors(client: HubClient, admin: str) -> None:
    response = client.post(
        "/api/v1/organisations", token=admin, json={"name": "uni", "display_name": "Uni", "kind": "requester"}
    )
    assert "a requester needs a category" in _error(response, 422, "InputError").message


def test_unknown_fields_are_refused(client: HubClient, admin: str) -> None:
    response = client.post(
        "/api/v1/organisations",
        token=admin,
        json={"name": "uni", "display_name": "U", "kind": "requester", "category": "sme", "colour": "red"},
    )
    assert "body.colour" in _error(response, 422, "InputError").message


def test_malformed_json_is_422_not_500(client: HubClient, admin: str) -> None:
    response = client.post(
        "/api/v1/organisations",
        token=admin,
        content=b'{"name": "uni",',
        headers={"Content-Type": "application/json"},
    )
    assert "malformed JSON" in _error(response, 422, "InputError").message


def test_service_rule_errors_name_the_field(client: HubClient, admin: str) -> None:
    add_org_response = client.post(
        "/api/v1/users",
        token=admin,
        json={"email": "x@y.example", "display_name": "X", "role": "steward", "organisation": "operator"},
    )
    body = _error(add_org_response, 422, "InputError")
    assert body.message.startswith("field role:")


def test_conflicts_are_409(client: HubClient, admin: str) -> None:
    spec = {"name": "uni", "display_name": "Uni", "kind": "requester", "category": "academic"}
    assert client.post("/api/v1/organisations", token=admin, json=spec).status_code == 201
    assert (
        "already exists"
        in _error(client.post("/api/v1/organisations", token=admin, json=spec), 409, "Conflict").message
    )


def test_oversized_body_is_413_by_content_length(
    store: HubStore, sqlite_url: str, make_client: ClientFactory
) -> None:
    client = make_client(store, sqlite_url, max_body_bytes=2048)
    response = client.post(
        "/api/v1/organisations", content=b"x" * 5000, headers={"Content-Type": "application/json"}
    )
    assert "2048" in _error(response, 413, "PayloadTooLarge").message


def test_oversized_streamed_body_is_413(
    store: HubStore, sqlite_url: str, make_client: ClientFactory, admin: str
) -> None:
    client = make_client(store, sqlite_url, max_body_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = client.post(
        "/api/v1/organisations", token=admin, content=chunks(), headers={"Content-Type": "application/json"}
    )
    _error(response, 413, "PayloadTooLarge")


def test_unknown_route_and_wrong_method_keep_the_shape(client: HubClient) -> None:
    _error(client.get("/api/v1/no-such-thing"), 404, "NotFound")
    _error(client.request("PATCH", "/api/v1/health"), 405, "MethodNotAllowed")


def test_health_needs_no_token_and_reports_the_database(client: HubClient, store: HubStore) -> None:
    body = client.get("/api/v1/health").json()
    assert body == {
        "status": "ok",
        "version": "0.1.0",
        "database": "ok",
        "database_backend": store.backend,
        "schema_revision": "0008",
    }


def test_health_is_503_when_the_database_is_gone(tmp_path: Path, make_client: ClientFactory) -> None:
    url = f"sqlite:///{tmp_path / 'gone' / 'hub.sqlite'}"
    store = HubStore.open(url)
    client = make_client(store, url)
    store.close()
    (tmp_path / "gone" / "hub.sqlite").unlink()
    (tmp_path / "gone").rmdir()
    _error(client.get("/api/v1/health"), 503, "StoreError")


def test_openapi_is_published(client: HubClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "PHDS hub"
    assert "/api/v1/nodes/enrol" in spec["paths"]
    assert client.get("/docs").status_code == 200
