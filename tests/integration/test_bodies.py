"""Oversized and malformed bodies over a real socket: always a 4xx with the error body, never a 500.

Sent with raw bytes where httpx would otherwise tidy them up (invalid UTF-8, chunked streams without a
length), so the hub's whole stack (uvicorn, the size-limit middleware, FastAPI, the wire models) is
exercised as a hostile client would. At the end the hub's log must hold no traceback and no 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from phds.demo.network import LocalNetwork

from .support import api, feasibility_spec, tracebacks

pytestmark = pytest.mark.integration

MAX_BODY = 4 * 1024 * 1024  # the hub's default PHDS_HUB_MAX_BODY_BYTES


def _post(
    network: LocalNetwork, content: bytes | Iterator[bytes], content_type: str = "application/json"
) -> httpx.Response:
    with api(network, network.requester_token) as client:
        return client.post("/studies", content=content, headers={"Content-Type": content_type})


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] and body["message"], body
    return body


def _fields(body: dict[str, Any]) -> set[str]:
    """The fields an error names; request-validation errors prefix them with ``body.``, which is
    dropped here (``body.title`` → ``title``), service errors do not (``hospitals[0]``)."""
    return {d["field"].removeprefix("body.") for d in body["details"] if d.get("field")}


def _spec(network: LocalNetwork, **fields: Any) -> dict[str, Any]:
    return feasibility_spec(network, ["north"], **fields)


def test_an_oversized_study_is_refused_with_413(guarded_network: LocalNetwork) -> None:
    spec = _spec(guarded_network, purpose="x" * (MAX_BODY + 1))
    body = _error(_post(guarded_network, json.dumps(spec).encode()), 413)
    assert body["code"] == "PayloadTooLarge"


def test_an_oversized_study_streamed_without_a_length_is_refused_with_413(
    guarded_network: LocalNetwork,
) -> None:
    def chunks() -> Iterator[bytes]:  # chunked transfer encoding: no Content-Length to check up front
        yield b'{"title": "streamed", "purpose": "'
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"y" * 65536
        yield b'"}'

    _error(_post(guarded_network, chunks()), 413)


def test_a_huge_cohort_definition_is_refused_with_413(guarded_network: LocalNetwork) -> None:
    criteria = [{"ConditionOccurrence": {"CodesetId": 0}}] * 200_000
    cohort = {"ConceptSets": [], "PrimaryCriteria": {"CriteriaList": criteria}}
    spec = _spec(guarded_network)
    spec["analysis"]["params"]["cohort"] = cohort
    _error(_post(guarded_network, json.dumps(spec).encode()), 413)


def test_a_huge_cohort_definition_under_the_body_limit_is_refused(guarded_network: LocalNetwork) -> None:
    """A 3 MB cohort passes the body limit; the hub must still refuse it rather than queue it for nodes."""
    criteria = [{"ConditionOccurrence": {"CodesetId": 0}}] * 70_000
    cohort = {"ConceptSets": [], "PrimaryCriteria": {"CriteriaList": criteria}}
    spec = _spec(guarded_network)
    spec["analysis"]["params"]["cohort"] = cohort
    content = json.dumps(spec).encode()
    assert 2_000_000 < len(content) < MAX_BODY
    response = _post(guarded_network, content)
    assert response.status_code in {413, 422}, (response.status_code, response.text[:300])
    assert _error(response, response.status_code)["message"]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"title": "unterminated', "body"),
        (b"", "body"),
        (b"not json at all", "body"),
        (b"[1, 2, 3]", "body"),
        (b"null", "body"),
    ],
    ids=["truncated", "empty", "not-json", "array", "null"],
)
def test_malformed_json_is_422_naming_the_body(
    guarded_network: LocalNetwork, content: bytes, field: str
) -> None:
    body = _error(_post(guarded_network, content), 422)
    assert body["code"] == "InputError" and field in " ".join(_fields(body)) + body["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": 123}, "title"),
        ({"title": ""}, "title"),
        ({"hospitals": "north"}, "hospitals"),
        ({"hospitals": [["north"]]}, "hospitals.0"),
        ({"deadline_seconds": "soon"}, "deadline_seconds"),
        ({"deadline_seconds": -1}, "deadline_seconds"),
        ({"service_type": "world domination"}, "service_type"),
        ({"titel": "typo"}, "titel"),
        ({"analysis": {"name": "feasibility.count", "params": {}, "colour": "red"}}, "analysis.colour"),
        ({"analysis": {"name": "feasibility.count", "params": {"cohort": 7}}}, "analysis.params.cohort"),
        (
            {"analysis": {"name": "feasibility.count", "params": {"cohort": "x", "sql": "1"}}},
            "analysis.params",
        ),
        ({"analysis": {"name": "no.such.analysis"}}, "analysis.name"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_wrong_types_and_unknown_fields_are_422_naming_the_field(
    guarded_network: LocalNetwork, change: dict[str, Any], field: str
) -> None:
    spec = {**_spec(guarded_network), **change}
    body = _error(_post(guarded_network, json.dumps(spec).encode()), 422)
    named = _fields(body)
    assert any(f == field or f.startswith(field) for f in named), (field, named, body["message"])


def test_non_finite_numbers_are_refused(guarded_network: LocalNetwork) -> None:
    for token in (b"NaN", b"Infinity", b"1e999"):
        text = (
            json.dumps(_spec(guarded_network))
            .encode()
            .replace(b'"deadline_seconds": 300', b'"deadline_seconds": ' + token)
        )
        assert token in text
        body = _error(_post(guarded_network, text), 422)
        assert "deadline_seconds" in _fields(body), body


def test_deeply_nested_json_is_a_4xx(guarded_network: LocalNetwork) -> None:
    for depth in (1_000, 100_000):
        nested = (
            b'{"title": "deep", "analysis": {"name": "feasibility.count", "params": {"cohort": '
            + b"[" * depth
            + b"]" * depth
            + b"}}}"
        )
        response = _post(guarded_network, nested)
        assert 400 <= response.status_code < 500, (depth, response.status_code, response.text[:300])
        assert response.json()["status"] == response.status_code


def test_invalid_utf8_is_a_4xx(guarded_network: LocalNetwork) -> None:
    text = json.dumps(_spec(guarded_network)).encode().replace(b"Integration", b"Integr\xff\xfeation")
    assert b"\xff" in text
    response = _post(guarded_network, text)
    assert response.status_code in {400, 422}, (response.status_code, response.text[:300])
    assert _error(response, response.status_code)["code"] == "InputError"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_wrong_content_type_is_a_4xx(guarded_network: LocalNetwork, content_type: str) -> None:
    response = _post(guarded_network, json.dumps(_spec(guarded_network)).encode(), content_type)
    assert response.status_code in {415, 422}, (response.status_code, response.text[:300])
    assert response.json()["status"] == response.status_code


def test_node_result_bodies_are_checked_too(guarded_network: LocalNetwork) -> None:
    from .support import credential

    node = credential(guarded_network, "north")["credential"]
    task = "00000000-0000-0000-0000-000000000001"
    with api(guarded_network, node) as client:
        for content in (
            b"{",
            b'{"task_id": "x", "status": "ok"}',
            b'{"task_id": "' + task.encode() + b'", "status": "maybe"}',
        ):
            response = client.post(
                f"/tasks/{task}/result", content=content, headers={"Content-Type": "application/json"}
            )
            assert response.status_code in {404, 422}, (content, response.status_code, response.text[:300])
        huge = (
            b'{"task_id": "'
            + task.encode()
            + b'", "status": "ok", "payload": {"x": "'
            + b"z" * (MAX_BODY + 10)
            + b'"}}'
        )
        assert client.post(f"/tasks/{task}/result", content=huge).status_code == 413
        catalogue = client.put("/nodes/me/catalogue", content=b"[" * 50_000 + b"]" * 50_000)
        assert 400 <= catalogue.status_code < 500, (catalogue.status_code, catalogue.text[:300])


def test_the_hub_logged_no_traceback_and_no_500(guarded_network: LocalNetwork) -> None:
    """Last in this module: everything above must have been handled as a client error."""
    assert tracebacks(guarded_network.log_path("hub")) == []
    with api(guarded_network) as client:
        assert client.get("/health").status_code == 200
