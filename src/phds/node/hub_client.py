"""The node's side of the hub's HTTP API, over httpx. The node only ever connects out.

Errors: an unreachable hub, a timeout or a 5xx answer is :class:`HubUnreachable` (worth retrying with
backoff); 401 is :class:`~phds.errors.AuthenticationError` (the credential was revoked or expired: stop);
other 4xx answers become the :mod:`phds.errors` class the hub named, with its message.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import TypeAdapter

from phds import __version__
from phds import errors as phds_errors
from phds.errors import AuthenticationError, PhdsError, StoreError
from phds.protocol.billing import ApplicationView, HospitalStatement, ParticipationStatement
from phds.protocol.catalogue import CatalogueEntry
from phds.protocol.enrolment import EnrolRequest, EnrolResponse
from phds.protocol.nodes import NodeInfo, NodeMetadata
from phds.protocol.tasks import Task, TaskResult, TaskStates
from phds.protocol.trust import RevocationList, SignedAuditHead

if TYPE_CHECKING:
    from phds.node.config import NodeConfig

log = logging.getLogger(__name__)

API = "/api/v1"
_TASKS = TypeAdapter(list[Task])
_APPLICATIONS = TypeAdapter(list[ApplicationView])
_BY_STATUS: dict[int, type[PhdsError]] = {
    401: phds_errors.AuthenticationError,
    403: phds_errors.PermissionDenied,
    404: phds_errors.NotFound,
    409: phds_errors.Conflict,
    413: phds_errors.PayloadTooLarge,
    422: phds_errors.InputError,
}


class HubUnreachable(StoreError):
    """The hub could not be reached, timed out or answered 5xx; retry later (exit 3)."""


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message = str(body.get("message") or response.reason_phrase)
        code = str(body.get("code") or "")
    except (ValueError, AttributeError):
        message, code = response.reason_phrase or "no message", ""
    if response.status_code >= 500:
        raise HubUnreachable(f"{what}: the hub answered {response.status_code}: {message}")
    if response.status_code == 401:
        raise AuthenticationError(f"{what}: the hub refused the node's credential: {message}")
    named = getattr(phds_errors, code, None)
    cls = named if isinstance(named, type) and issubclass(named, PhdsError) else None
    cls = cls or _BY_STATUS.get(response.status_code, PhdsError)
    raise cls(f"{what}: {message}")


def enrol(
    hub_url: str,
    enrolment_token: str,
    *,
    metadata: NodeMetadata | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 30.0,
    public_key: str | None = None,
    ca_bundle: Path | None = None,
) -> EnrolResponse:
    """Exchange a one-time enrolment token for the node's credential (``POST /nodes/enrol``); the hub pins
    *public_key*, the node's signing key."""
    body = EnrolRequest(
        enrolment_token=enrolment_token,
        metadata=metadata or NodeMetadata(software_version=__version__),
        public_key=public_key,
    )
    try:
        verify = tls_verify(ca_bundle)
        with httpx.Client(base_url=hub_url, timeout=timeout, transport=transport, verify=verify) as client:
            response = client.post(f"{API}/nodes/enrol", json=body.model_dump(mode="json"))
    except httpx.TransportError as exc:
        raise HubUnreachable(f"enrolment: cannot reach the hub at {hub_url}: {exc}") from None
    _raise_for(response, "enrolment")
    return EnrolResponse.model_validate(response.json())


def tls_verify(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """How the hub's TLS certificate is checked: against *ca_bundle* (``node.ca_bundle``) when given,
    else httpx's default (the certifi bundle). Plain-http hubs (development, loopback) ignore it."""
    return ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle is not None else True


class HubClient:
    """A node's authenticated connection to its hub; thread-confined (use one per thread)."""

    def __init__(
        self,
        hub_url: str,
        credential: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        ca_bundle: Path | None = None,
    ) -> None:
        self.hub_url = hub_url
        self.timeout = timeout
        self._client = httpx.Client(
            base_url=hub_url,
            timeout=timeout,
            transport=transport,
            verify=tls_verify(ca_bundle),
            headers={"Authorization": f"Bearer {credential}", "User-Agent": f"phds-node/{__version__}"},
        )

    def _call(self, method: str, path: str, what: str, *, timeout: float | None = None, **kw: Any) -> Any:
        try:
            response = self._client.request(
                method, f"{API}{path}", timeout=timeout if timeout is not None else self.timeout, **kw
            )
        except httpx.TransportError as exc:
            raise HubUnreachable(f"{what}: cannot reach the hub at {self.hub_url}: {exc}") from None
        _raise_for(response, what)
        return response.json() if response.status_code != 204 else None

    def me(self) -> NodeInfo:
        """The node as the hub sees it (``GET /nodes/me``)."""
        return NodeInfo.model_validate(self._call("GET", "/nodes/me", "who am I"))

    def tasks(self, *, wait: float = 25.0, limit: int = 10) -> list[Task]:
        """Long-poll for leased tasks; waits up to *wait* seconds and returns ``[]`` when none came."""
        data = self._call(
            "GET",
            "/nodes/me/tasks",
            "polling for tasks",
            params={"wait": wait, "limit": limit},
            timeout=wait + max(10.0, wait * 0.2),
        )
        return _TASKS.validate_python(data)

    def post_result(self, result: TaskResult) -> dict[str, Any]:
        """Send a task's answer; the hub acknowledges ``{"accepted": …, "duplicate": …}``. A signed
        release goes once, inside its envelope: the hub takes the payload from there."""
        body = result.model_dump(mode="json")
        if result.envelope is not None and result.envelope.payload == result.payload:
            body["payload"] = {}
        what = f"posting the result of task {result.task_id}"
        data = self._call("POST", f"/tasks/{result.task_id}/result", what, json=body)
        return dict(data) if isinstance(data, dict) else {}

    def task_states(self, task_ids: list[str]) -> dict[str, str]:
        """The hub's state of some of this node's tasks, by id (``cancelled`` for a cancelled study)."""
        body = {"task_ids": task_ids}
        data = self._call("POST", "/nodes/me/tasks/states", "asking about parked tasks", json=body)
        return TaskStates.model_validate(data).states

    def secagg_post(self, study_id: str, round_no: int, stage: str, body: Any) -> Any:
        """Post this node's signed message for one stage of a secure-aggregation session."""
        return self._call(
            "POST", f"/secagg/{study_id}/{round_no}/{stage}", f"secure aggregation ({stage})", json=body
        )

    def secagg_session(
        self, study_id: str, round_no: int, *, after: int, wait: float, transcript: bool = False
    ) -> dict[str, Any]:
        """The session once past stage *after* (long poll of up to *wait* seconds); with *transcript*,
        a done session's signed masked inputs and sum."""
        params: dict[str, Any] = {"after": after, "wait": wait}
        if transcript:
            params["transcript"] = "true"
        data = self._call(
            "GET",
            f"/secagg/{study_id}/{round_no}",
            "polling the secure-aggregation session",
            params=params,
            timeout=wait + max(10.0, wait * 0.2),
        )
        return dict(data)

    def report_audit_head(self, head: SignedAuditHead) -> None:
        """Report the node's signed audit head (``POST /nodes/me/audit-head``)."""
        self._call(
            "POST", "/nodes/me/audit-head", "reporting the audit head", json=head.model_dump(mode="json")
        )

    def revocations(self) -> RevocationList | None:
        """The newest revocation list the hub relays, or None when none was published."""
        try:
            data = self._call("GET", "/network/revocations", "fetching the revocation list")
        except phds_errors.NotFound:
            return None
        return RevocationList.model_validate(data)

    def publish_catalogue(self, profile: dict[str, Any]) -> CatalogueEntry:
        """Publish the node's dataset profile (``PUT /nodes/me/catalogue``)."""
        data = self._call("PUT", "/nodes/me/catalogue", "publishing the catalogue", json=profile)
        return CatalogueEntry.model_validate(data)

    def applications(self) -> list[ApplicationView]:
        """The data-access applications naming this node's hospital (``GET /billing/applications``)."""
        data = self._call("GET", "/billing/applications", "fetching the applications")
        return _APPLICATIONS.validate_python(data)

    def application(self, application_id: str) -> ApplicationView:
        """One application naming this node's hospital; NotFound for any other."""
        data = self._call(
            "GET", f"/billing/applications/{application_id}", f"fetching application {application_id}"
        )
        return ApplicationView.model_validate(data)

    def report_participation(self, statement: ParticipationStatement) -> None:
        """Report the steward's node-signed decision on an application; the hub verifies the signature."""
        self._call(
            "POST",
            f"/billing/applications/{statement.application_id}/participation",
            f"reporting participation in {statement.application_id}",
            json=statement.model_dump(mode="json"),
        )

    def statement(self, hospital: str, period: str) -> HospitalStatement:
        """The hospital's earnings statement of *period* (``GET /billing/statements/{hospital}``)."""
        data = self._call(
            "GET",
            f"/billing/statements/{hospital}",
            f"fetching the statement of {hospital} for {period}",
            params={"period": period},
        )
        return HospitalStatement.model_validate(data)

    def close(self) -> None:
        self._client.close()


@contextlib.contextmanager
def connect_hub(config: NodeConfig, *, timeout: float = 30.0) -> Iterator[HubClient]:
    """A client of the node's hub, authenticated with its enrolment credential (checked first)."""
    from phds.node.credential import read_credential

    cred = read_credential(
        config.node.credential_file, hospital=config.node.name, hub_url=config.node.hub_url
    )
    client = HubClient(config.node.hub_url, cred.credential, timeout=timeout, ca_bundle=config.node.ca_bundle)
    try:
        yield client
    finally:
        client.close()


__all__ = ["HubClient", "HubUnreachable", "connect_hub", "enrol"]
