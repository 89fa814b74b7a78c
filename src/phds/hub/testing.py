"""Testing helpers for the hub: an in-process synchronous client and shortcuts that build a network.

``HubClient`` drives the ASGI app through ``httpx.ASGITransport`` on an anyio blocking portal, so
synchronous tests (the hub's, the SDK's, the node's) talk to a real hub without sockets. The other
helpers go through :mod:`phds.hub.services`, as the CLI does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager
from datetime import timedelta
from functools import partial
from typing import Any

import anyio.from_thread
import httpx
from fastapi import FastAPI

from phds.hub import services
from phds.hub.settings import HubSettings, load_hub_settings
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.privacy.disclosure import release_count
from phds.protocol.enrolment import EnrolRequest
from phds.protocol.organisations import OrganisationCreate
from phds.protocol.users import UserCreate


def hub_settings(url: str, **overrides: Any) -> HubSettings:
    """Settings as a test deployment would have them (not development: the safety checks are on)."""
    return load_hub_settings(environment="test", database_url=url, public_url="https://hub.test", **overrides)


class HubClient:
    """A synchronous HTTP client over ``httpx.ASGITransport``: the hub runs in-process, no sockets."""

    def __init__(
        self, app: FastAPI, portal: anyio.from_thread.BlockingPortal, *, lifespan: bool = False
    ) -> None:
        """With ``lifespan=True`` the app's lifespan runs too (the study runner's background sweep)."""
        self.app = app
        self.portal = portal
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test")
        self._lifespan: AbstractContextManager[Any] | None = None
        if lifespan:
            context: Any = app.router.lifespan_context(app)
            self._lifespan = portal.wrap_async_context_manager(context)
            self._lifespan.__enter__()

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.portal.call(partial(self._client.request, method, path, headers=headers, **kwargs))

    def start(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> Future[httpx.Response]:
        """Send a request without waiting for its answer (e.g. a long poll); ``.result()`` waits."""
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.portal.start_task_soon(
            partial(self._client.request, method, path, headers=headers, **kwargs)
        )

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.portal.call(self._client.aclose)
        if self._lifespan is not None:
            self._lifespan.__exit__(None, None, None)
            self._lifespan = None


ClientFactory = Callable[..., HubClient]
"""``make_client(store, url, **settings_overrides)``."""


def add_org(store: HubStore, name: str, kind: str, **fields: Any) -> uuid.UUID:
    """Add an organisation directly through the service layer; its id."""
    by_kind: dict[str, dict[str, Any]] = {"hospital": {"country": "GB"}, "requester": {"category": "sme"}}
    given = {"name": name, "display_name": name.upper(), "kind": kind, **by_kind.get(kind, {}), **fields}
    spec = OrganisationCreate.model_validate(given)
    with store.unit() as uow:
        return services.create_organisation(uow, spec).id


def add_user(store: HubStore, email: str, role: str, org: str) -> tuple[uuid.UUID, str]:
    """Add a person with an API token; ``(user id, token)``."""
    with store.unit() as uow:
        user = services.create_user(
            uow,
            UserCreate(email=email, display_name=email, role=role, organisation=org),
        )
        token, _ = services.issue_token(uow, user_id=user.id, expires_at=utcnow() + timedelta(days=1))
        return user.id, token


def enrolment_token(store: HubStore, hospital: str, hours: int = 1) -> str:
    """A fresh one-time enrolment token for *hospital*."""
    with store.unit() as uow:
        token, _ = services.issue_enrolment_token(
            uow, hospital=hospital, expires_at=utcnow() + timedelta(hours=hours), created_by=None
        )
        return token


def enrol(store: HubStore, hospital: str, url: str) -> tuple[uuid.UUID, str]:
    """Enrol *hospital*'s node directly; ``(node id, credential)``."""
    token = enrolment_token(store, hospital)
    with store.unit() as uow:
        credential, _, node = services.enrol_node(
            uow, EnrolRequest(enrolment_token=token), hub_settings(url), utcnow()
        )
        return node.id, credential


def study_spec(
    organisation: str,
    hospitals: list[str],
    analysis: str = "system.noop",
    params: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A study file (``StudySpec`` as JSON) with sensible defaults."""
    spec: dict[str, Any] = {
        "title": "Test study",
        "purpose": "Testing the study runner",
        "organisation": organisation,
        "service_type": "feasibility",
        "hospitals": hospitals,
        "analysis": {"name": analysis, "params": dict(params or {})},
    }
    spec.update(fields)
    return spec


def released_count(n: int, threshold: int = 5) -> dict[str, Any]:
    """A count as the node's gate releases it."""
    return dict(release_count(n, threshold).model_dump(mode="json"))


def gate_payload(analysis: str, values: Mapping[str, Any], min_cell_count: int = 5) -> dict[str, Any]:
    """A result payload shaped like :meth:`phds.node.gate.Gate.release` output."""
    return {"analysis": analysis, "min_cell_count": min_cell_count, "values": dict(values), "notes": []}


def summary_values(n: int, values: Mapping[str, float] | None, threshold: int = 5) -> dict[str, Any]:
    """Released sums: ``values`` is withheld (None) below the threshold."""
    return {
        "type": "sums",
        "n": released_count(n, threshold),
        "values": dict(values) if values is not None and n >= threshold else None,
    }


def mean_variance_payload(round_no: int, xs: list[float], mean: float | None = None) -> dict[str, Any]:
    """What a node's gate releases for ``stats.mean_variance`` over the values *xs*."""
    if round_no == 1:
        values = {
            "moments": summary_values(len(xs), {"sum": float(sum(xs))}),
            "missing": {"type": "count", **released_count(0)},
        }
    else:
        assert mean is not None
        values = {"moments": summary_values(len(xs), {"ssd": float(sum((x - mean) ** 2 for x in xs))})}
    return gate_payload("stats.mean_variance", values)
