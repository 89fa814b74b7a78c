"""Who may call what: every API route × every kind of caller, with the expected status.

The table below is the authorisation contract. ``test_every_route_is_in_the_matrix`` fails when an API
route is added without rows here, so new endpoints (studies, tasks) must state their rules.

Callers: ``anonymous``; ``admin``; ``requester`` of uni-a and ``requester_other`` of pharma-b;
``steward`` and ``node`` of hospital h-one, ``steward_other`` and ``node_other`` of h-two. Paths name
the objects of the first of each pair (h-one, uni-a, uni-a's researcher, uni-a's study to h-one and
its task), so the ``_other`` callers test the cross-organisation rules.
"""

from __future__ import annotations

import itertools
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest

from phds.billing.applications import ApplicationForm
from phds.billing.tariff import default_tariff
from phds.hub import billing_applications as billing
from phds.hub import billing_tariffs, services
from phds.hub.app import create_app
from phds.hub.notify import Notifier
from phds.hub.runner import Requester, StudyRunner
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.hub.testing import HubClient, add_org, add_user, enrol, enrolment_token, hub_settings, study_spec
from phds.protocol.billing import BillingProfile
from phds.protocol.studies import StudySpec
from phds.trust import KeyPair, NetworkTrust, sign_spec
from phds.trust.envelopes import sign_audit_head

ACTORS = (
    "anonymous",
    "admin",
    "requester",
    "requester_other",
    "steward",
    "steward_other",
    "node",
    "node_other",
)


@dataclass
class World:
    """A small network, built once for the module."""

    store: HubStore
    url: str
    tokens: dict[str, str | None] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)

    def unique(self, stem: str) -> str:
        return f"{stem}-{next(self.counter)}"

    def fresh_token_of(self, email: str) -> str:
        """A new token of a person, returned as its id (for revocation cases)."""
        with self.store.unit() as uow:
            user = uow.users.by_email(email)
            assert user is not None
            secret, _ = services.issue_token(uow, user_id=user.id, expires_at=utcnow().replace(year=2100))
        return secret.split("_")[1]

    def study_of(self, task_id: str) -> str:
        """The study id of a task."""
        with self.store.unit() as uow:
            task = uow.tasks.get(uuid.UUID(task_id))
            assert task is not None
            return str(task.study_id)

    def new_task_of_h_one(self) -> str:
        """Submit a study of uni-a to h-one directly; the id of its queued task."""
        with self.store.unit() as uow:
            org = uow.organisations.by_name("uni-a")
            assert org is not None
            requester = Requester(uuid.UUID(self.ids["requester_user"]), org.id, org.name)
        runner = StudyRunner(self.store, hub_settings(self.url), Notifier())
        study = runner.submit(requester, StudySpec.model_validate(study_spec("uni-a", ["h-one"])))
        with self.store.unit() as uow:
            [task] = uow.tasks.of_study(uuid.UUID(study.id))
            return str(task.id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('matrix')) / 'hub.sqlite'}"
    store = HubStore.open(url)
    w = World(store, url)
    add_org(store, "operator", "operator")
    add_org(store, "uni-a", "requester", category="academic")
    add_org(store, "pharma-b", "requester", category="industry")
    for hospital in ("h-one", "h-two", "h-three"):
        add_org(store, hospital, "hospital")
    w.tokens["anonymous"] = None
    w.tokens["admin"] = add_user(store, "admin@op.example", "admin", "operator")[1]
    requester_id, w.tokens["requester"] = add_user(store, "r@uni-a.example", "requester", "uni-a")
    w.tokens["requester_other"] = add_user(store, "r@pharma-b.example", "requester", "pharma-b")[1]
    steward_id, w.tokens["steward"] = add_user(store, "s@h-one.example", "steward", "h-one")
    w.tokens["steward_other"] = add_user(store, "s@h-two.example", "steward", "h-two")[1]
    w.tokens["node"] = enrol(store, "h-one", url)[1]
    w.tokens["node_other"] = enrol(store, "h-two", url)[1]
    w.ids.update(requester_user=str(requester_id), steward_user=str(steward_id))
    task_id = w.new_task_of_h_one()
    with store.unit() as uow:
        task = uow.tasks.get(uuid.UUID(task_id))
        assert task is not None
        w.ids["study"] = str(task.study_id)
    with store.unit() as uow:  # the money path: a tariff, uni-a's billing profile and its application
        billing_tariffs.add_tariff(uow, default_tariff())
        uni_a = uow.organisations.by_name("uni-a")
        assert uni_a is not None
        billing_tariffs.set_profile(uow, uni_a, BillingProfile.model_validate(PROFILE))
        w.ids["application"] = billing.file_application(
            uow, uni_a, ApplicationForm.model_validate(APPLICATION)
        ).id
    for actor in ("node", "node_other"):
        with store.unit() as uow:
            token = uow.tokens.get(str(w.tokens[actor]).split("_")[1])
            assert token is not None and token.node_id is not None
            services.publish_catalogue(
                uow, node_id=token.node_id, profile={"n": 1}, max_bytes=10_000, now=utcnow()
            )
    yield w
    store.close()


@pytest.fixture(scope="module")
def matrix_client(world: World) -> Iterator[HubClient]:
    with anyio.from_thread.start_blocking_portal() as portal:
        client = HubClient(create_app(hub_settings(world.url), store=world.store), portal)
        yield client
        client.close()


def statuses(default: int, **overrides: int) -> dict[str, int]:
    """Expected status per actor: *default* for authenticated callers, 401 for anonymous, then overrides."""
    table = dict.fromkeys(ACTORS, default)
    table["anonymous"] = 401
    table.update(overrides)
    return table


ADMIN_ONLY_CREATE = statuses(403, admin=201)
ANY_USER = statuses(200, node=403, node_other=403)
NODE_ONLY = statuses(403, node=200, node_other=200)

STUDY_VIEWERS = statuses(404, admin=200, requester=200, steward=200, node=403, node_other=403)

Resolve = Callable[[World], tuple[str, Any]]


@dataclass(frozen=True)
class Case:
    """One row of the matrix: a request (path and body built per call) and the expected statuses."""

    method: str
    route: str
    expect: dict[str, int]
    build: Resolve = lambda w: ("", None)
    label: str = ""


def _path(route: str, **values: str) -> Resolve:
    return lambda w: (route.format(**{k: w.ids.get(v, v) for k, v in values.items()}), None)


def signed_spec_of(organisation: str, hospitals: list[str]) -> dict[str, Any]:
    """A study spec signed by a fresh requester key with an attestation from a fresh trust key."""
    folder = Path(tempfile.mkdtemp(prefix="phds-trust-"))
    trust = NetworkTrust.init(folder / "trust")
    key = KeyPair.generate()
    attestation = trust.sign_organisation(organisation, "academic", key.public_key_b64)
    return sign_spec(study_spec(organisation, hospitals), key, attestation).model_dump(mode="json")


def audit_head_body() -> dict[str, Any]:
    head = sign_audit_head(key=KeyPair.generate(), hospital="h-one", seq=1, hash="0" * 64)
    return head.model_dump(mode="json")


PROFILE = {"legal_name": "Uni A", "address_lines": ["1 Main St"], "postcode": "1000", "city": "Brussels",
           "country": "BE"}  # fmt: skip
APPLICATION = {
    "title": "T", "purpose": "P", "legal_basis": "GDPR Art. 9(2)(j)", "ethics_reference": "E-1",
    "hospitals": ["h-one"], "duration_months": 6, "services": [{"service": "feasibility", "quantity": 3}],
}  # fmt: skip
OWN_APPLICATION = statuses(404, admin=200, requester=200, steward=200, node=200)
NO_SUCH_INVOICE = statuses(404, node=403, node_other=403)


def _result_of(task_id: str) -> tuple[str, Any]:
    return f"/api/v1/tasks/{task_id}/result", {"task_id": task_id, "status": "declined", "reason": "matrix"}


CASES: list[Case] = [
    Case("GET", "/api/v1/health", statuses(200, anonymous=200)),
    Case("GET", "/api/v1/me", statuses(200)),
    Case("POST", "/api/v1/sessions", statuses(401),
         lambda w: ("", {"email": "nobody@nowhere.example", "password": "wrong"}), "wrong password"),
    Case("DELETE", "/api/v1/sessions/current", statuses(409, node=403, node_other=403), label="an API token"),
    Case("PUT", "/api/v1/me/password", statuses(422, node=403, node_other=403),
         lambda w: ("", {"new_password": "too short"}), "too short"),
    Case(
        "PUT", "/api/v1/users/{user_id}/password", statuses(403, admin=422),
        lambda w: (f"/api/v1/users/{w.ids['requester_user']}/password", {"new_password": "too short"}),
        "too short",
    ),
    Case(
        "POST", "/api/v1/organisations", ADMIN_ONLY_CREATE,
        lambda w: ("/api/v1/organisations",
                   {"name": w.unique("org"), "display_name": "X", "kind": "requester", "category": "sme"}),
    ),
    Case("GET", "/api/v1/organisations", statuses(200)),
    Case(
        "GET", "/api/v1/organisations/{name}",
        statuses(404, admin=200, steward=200, node=200),
        _path("/api/v1/organisations/{name}", name="h-one"), "hospital",
    ),
    Case(
        "GET", "/api/v1/organisations/{name}",
        statuses(404, admin=200, requester=200),
        _path("/api/v1/organisations/{name}", name="uni-a"), "requester org",
    ),
    Case(
        "POST", "/api/v1/users", ADMIN_ONLY_CREATE,
        lambda w: ("/api/v1/users", {"email": f"{w.unique('u')}@uni-a.example", "display_name": "U",
                                     "role": "requester", "organisation": "uni-a"}),
    ),
    Case("GET", "/api/v1/users", ANY_USER),
    Case(
        "GET", "/api/v1/users/{user_id}",
        statuses(404, admin=200, requester=200, node=403, node_other=403),
        _path("/api/v1/users/{user_id}", user_id="requester_user"), "requester",
    ),
    Case(
        "GET", "/api/v1/users/{user_id}",
        statuses(404, admin=200, steward=200, node=403, node_other=403),
        _path("/api/v1/users/{user_id}", user_id="steward_user"), "steward",
    ),
    Case("POST", "/api/v1/tokens", statuses(201, node=403, node_other=403),
         lambda w: ("/api/v1/tokens", {"name": "own"}), "own"),
    Case(
        "POST", "/api/v1/tokens",
        statuses(403, admin=201, requester=201),
        lambda w: ("/api/v1/tokens", {"user_id": w.ids["requester_user"]}), "for uni-a's researcher",
    ),
    Case("GET", "/api/v1/tokens", ANY_USER),
    Case(
        "DELETE", "/api/v1/tokens/{token_id}",
        statuses(404, admin=200, requester=200, node=403, node_other=403),
        lambda w: (f"/api/v1/tokens/{w.fresh_token_of('r@uni-a.example')}", None), "uni-a researcher's",
    ),
    Case("POST", "/api/v1/enrolment-tokens", ADMIN_ONLY_CREATE,
         lambda w: ("/api/v1/enrolment-tokens", {"hospital": "h-three"})),
    Case(
        "POST", "/api/v1/nodes/enrol", statuses(201, anonymous=201),
        lambda w: ("/api/v1/nodes/enrol", {"enrolment_token": enrolment_token(w.store, "h-three")}),
        "the enrolment token is the credential",
    ),
    Case("GET", "/api/v1/nodes", statuses(403, admin=200, steward=200, steward_other=200)),
    Case("GET", "/api/v1/nodes/me", NODE_ONLY),
    Case("PUT", "/api/v1/nodes/me/catalogue", NODE_ONLY,
         lambda w: ("/api/v1/nodes/me/catalogue", {"persons": 10})),
    Case(
        "GET", "/api/v1/nodes/{hospital}",
        statuses(403, admin=200, steward=200, steward_other=404, node=200, node_other=404),
        _path("/api/v1/nodes/{hospital}", hospital="h-one"),
    ),
    Case(
        "POST", "/api/v1/studies", statuses(403, requester=201),
        lambda w: ("/api/v1/studies", study_spec("uni-a", ["h-one"])), "for uni-a, to h-one",
    ),
    Case(
        "POST", "/api/v1/studies/signed", statuses(403, requester=201),
        lambda w: ("/api/v1/studies/signed", signed_spec_of("uni-a", ["h-one"])), "signed by uni-a",
    ),
    Case("GET", "/api/v1/studies", ANY_USER),
    Case(
        "GET", "/api/v1/studies/{study_id}/releases", STUDY_VIEWERS,
        _path("/api/v1/studies/{study_id}/releases", study_id="study"), "uni-a's, to h-one",
    ),
    Case(
        "GET", "/api/v1/studies/{study_id}/secagg", STUDY_VIEWERS,
        _path("/api/v1/studies/{study_id}/secagg", study_id="study"), "uni-a's, to h-one",
    ),
    Case(
        "GET", "/api/v1/secagg/{study_id}/{round_no}", statuses(403, node=404, node_other=404),
        lambda w: (f"/api/v1/secagg/{w.ids['study']}/1", None), "a study without secure aggregation",
    ),
    Case(
        "POST", "/api/v1/secagg/{study_id}/{round_no}/{stage}", statuses(403, node=404, node_other=404),
        lambda w: (f"/api/v1/secagg/{w.ids['study']}/1/keys", {}), "a study without secure aggregation",
    ),
    Case("GET", "/api/v1/nodes/keys", ANY_USER),
    Case(
        "PUT", "/api/v1/network/revocations", statuses(403, admin=422),
        lambda w: ("/api/v1/network/revocations", {"sequence": 1}), "malformed: admins get 422",
    ),
    Case("GET", "/api/v1/network/revocations", statuses(404, anonymous=401)),
    Case(
        "POST", "/api/v1/nodes/me/audit-head", statuses(403, node=409, node_other=409),
        lambda w: ("/api/v1/nodes/me/audit-head", audit_head_body()), "nodes enrolled without a key",
    ),
    Case(
        "GET", "/api/v1/nodes/{hospital}/audit-heads",
        statuses(403, admin=200, steward=200, steward_other=404, node=200, node_other=404),
        _path("/api/v1/nodes/{hospital}/audit-heads", hospital="h-one"),
    ),
    Case(
        "GET", "/api/v1/studies/{study_id}", STUDY_VIEWERS,
        _path("/api/v1/studies/{study_id}", study_id="study"), "uni-a's, to h-one",
    ),
    Case(
        "GET", "/api/v1/studies/{study_id}/wait", STUDY_VIEWERS,
        lambda w: (f"/api/v1/studies/{w.ids['study']}/wait?timeout=0", None), "uni-a's, to h-one",
    ),
    Case("GET", "/api/v1/nodes/me/tasks", NODE_ONLY),
    Case(
        "POST", "/api/v1/tasks/{task_id}/result", statuses(403, node=200, node_other=404),
        lambda w: _result_of(w.new_task_of_h_one()), "h-one's task",
    ),
    Case(
        "POST", "/api/v1/nodes/me/tasks/states", NODE_ONLY,
        lambda w: ("/api/v1/nodes/me/tasks/states", {"task_ids": [w.new_task_of_h_one()]}), "h-one's task",
    ),
    Case(
        "POST", "/api/v1/studies/{study_id}/cancel",
        statuses(403, requester=200, requester_other=404),
        lambda w: (f"/api/v1/studies/{w.study_of(w.new_task_of_h_one())}/cancel", {}), "a new study of uni-a",
    ),
    Case("GET", "/api/v1/billing/tariffs", ANY_USER),
    Case("POST", "/api/v1/billing/tariffs", statuses(403, admin=422), lambda w: ("", {}), "malformed"),
    Case(
        "PUT", "/api/v1/billing/profiles/{organisation}", statuses(403, admin=200),
        lambda w: ("/api/v1/billing/profiles/uni-a", PROFILE), "uni-a's",
    ),
    Case(
        "GET", "/api/v1/billing/profiles/{organisation}",
        statuses(404, admin=200, requester=200, node=403, node_other=403),
        _path("/api/v1/billing/profiles/{organisation}", organisation="uni-a"), "uni-a's",
    ),
    Case(
        "POST", "/api/v1/billing/applications", statuses(403, requester=201, requester_other=201),
        lambda w: ("", APPLICATION), "naming h-one",
    ),
    Case("GET", "/api/v1/billing/applications", statuses(200)),
    Case(
        "GET", "/api/v1/billing/applications/{application_id}", OWN_APPLICATION,
        _path("/api/v1/billing/applications/{application_id}", application_id="application"), "uni-a's",
    ),
    Case(
        "POST", "/api/v1/billing/applications/{application_id}/quotes", statuses(403, admin=201),
        _path("/api/v1/billing/applications/{application_id}/quotes", application_id="application"),
    ),
    Case(
        "POST", "/api/v1/billing/quotes/{quote_id}/{decision}",
        statuses(403, requester=404, requester_other=404),
        lambda w: ("/api/v1/billing/quotes/Q-none/accept", None), "no such quote",
    ),
    Case(
        "POST", "/api/v1/billing/applications/{application_id}/participation",
        statuses(403, node=422, node_other=422),
        lambda w: (f"/api/v1/billing/applications/{w.ids['application']}/participation", {}), "malformed",
    ),
    Case(
        "POST", "/api/v1/billing/invoices/issue", statuses(403, admin=201),
        lambda w: ("/api/v1/billing/invoices/issue?period=2026-01", None), "a month without usage",
    ),
    Case("GET", "/api/v1/billing/invoices", ANY_USER),
    Case(
        "GET", "/api/v1/billing/invoices/{number}", NO_SUCH_INVOICE, _path("/api/v1/billing/invoices/INV-0")
    ),
    Case(
        "GET", "/api/v1/billing/invoices/{number}/document", NO_SUCH_INVOICE,
        _path("/api/v1/billing/invoices/INV-0/document"),
    ),
    Case(
        "GET", "/api/v1/billing/invoices/{number}/evidence", NO_SUCH_INVOICE,
        _path("/api/v1/billing/invoices/INV-0/evidence"),
    ),
    Case(
        "POST", "/api/v1/billing/invoices/{number}/payment", statuses(403, admin=404),
        lambda w: ("/api/v1/billing/invoices/INV-0/payment", {}), "no such invoice",
    ),
    Case(
        "POST", "/api/v1/billing/invoices/{number}/credit", statuses(403, admin=404),
        lambda w: ("/api/v1/billing/invoices/INV-0/credit", {"reason": "matrix"}), "no such invoice",
    ),
    Case(
        "POST", "/api/v1/billing/payouts", statuses(403, admin=409),
        lambda w: ("", {"hospital": "h-one", "period": "2026-01"}), "nothing payable",
    ),
    Case(
        "GET", "/api/v1/billing/statements/{hospital}",
        statuses(403, admin=200, steward=200, steward_other=404, node=200, node_other=404),
        lambda w: ("/api/v1/billing/statements/h-one?period=2026-01", None), "h-one's",
    ),
    Case("GET", "/api/v1/analyses", ANY_USER),
    Case("GET", "/api/v1/analyses/{name}", ANY_USER, _path("/api/v1/analyses/{name}", name="stats.glm")),
    Case("GET", "/api/v1/catalogue", ANY_USER),
    Case(
        "GET", "/api/v1/catalogue/{hospital}",
        statuses(200, steward_other=404, node=403, node_other=403),
        _path("/api/v1/catalogue/{hospital}", hospital="h-one"),
    ),
    Case("GET", "/api/v1/vocabulary/concepts", ANY_USER,
         lambda w: ("/api/v1/vocabulary/concepts?q=asthma", None), "search"),
    Case("GET", "/api/v1/vocabulary/concepts/{concept_id}", ANY_USER,
         _path("/api/v1/vocabulary/concepts/{concept_id}", concept_id="317009"), "asthma"),
    Case("GET", "/api/v1/vocabulary/concepts/{concept_id}/descendants", ANY_USER,
         _path("/api/v1/vocabulary/concepts/{concept_id}/descendants", concept_id="317009"), "asthma's"),
]  # fmt: skip


def _case_id(case: Case) -> str:
    return f"{case.method} {case.route}" + (f" ({case.label})" if case.label else "")


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matrix(case: Case, actor: str, world: World, matrix_client: HubClient) -> None:
    path, body = case.build(world)
    path = path or case.route
    response = matrix_client.request(
        case.method, path, token=world.tokens[actor], **({"json": body} if body is not None else {})
    )
    expected = case.expect[actor]
    assert response.status_code == expected, f"{actor} {case.method} {path}: {response.text}"
    if expected >= 400:
        assert set(response.json()) == {"code", "status", "message", "details"}


def test_every_route_is_in_the_matrix(world: World) -> None:
    """The OpenAPI document lists every route (FastAPI includes routers lazily, so app.routes does not)."""
    paths = create_app(hub_settings(world.url), store=world.store).openapi()["paths"]
    routes = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    assert len(routes) >= 25
    covered = {(case.method, case.route) for case in CASES}
    assert routes - covered == set(), "API routes missing from the authorisation matrix"
    assert covered - routes == set(), "matrix rows for routes that do not exist"
    for case in CASES:
        assert set(case.expect) == set(ACTORS), f"{_case_id(case)} does not cover every caller"


def test_scoped_lists_show_only_the_callers_things(world: World, matrix_client: HubClient) -> None:
    def names(path: str, actor: str, key: str) -> list[str]:
        response = matrix_client.get(path, token=world.tokens[actor])
        assert response.status_code == 200
        return sorted({item[key] for item in response.json()})

    assert names("/api/v1/organisations", "requester", "name") == ["uni-a"]
    assert names("/api/v1/organisations", "node", "name") == ["h-one"]
    assert "pharma-b" in names("/api/v1/organisations", "admin", "name")
    assert names("/api/v1/users", "steward", "organisation") == ["h-one"]
    assert names("/api/v1/nodes", "steward_other", "hospital") == ["h-two"]
    assert names("/api/v1/catalogue", "steward", "hospital") == ["h-one"]
    assert names("/api/v1/catalogue", "requester", "hospital") == ["h-one", "h-two"]
    own = {t["user_id"] for t in matrix_client.get("/api/v1/tokens", token=world.tokens["requester"]).json()}
    assert own == {world.ids["requester_user"]}
    everyone = matrix_client.get("/api/v1/tokens", token=world.tokens["admin"]).json()
    assert {t["principal_kind"] for t in everyone} == {"user", "node"}
    assert uuid.UUID(world.ids["requester_user"])
