"""The hub store's contract, run on every backend (a SQLite file and a PostgreSQL database)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from phds.errors import AuthenticationError, Conflict
from phds.hub import services
from phds.hub.store import HubStore
from phds.hub.store.models import Base, OrganisationRow, utcnow
from phds.hub.testing import add_org, add_user, enrol, enrolment_token, hub_settings
from phds.protocol.enrolment import EnrolRequest


def test_migrations_reach_head_and_match_the_models(store: HubStore) -> None:
    assert store.revision() == "0008"
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_migrating_twice_is_a_no_op(store: HubStore) -> None:
    add_org(store, "gosh", "hospital")
    store.migrate()
    with store.unit() as uow:
        assert uow.organisations.by_name("gosh") is not None


def test_organisations_round_trip_with_utc_timestamps(store: HubStore) -> None:
    org_id = add_org(store, "gosh", "hospital", country="GB")
    with store.unit() as uow:
        row = uow.organisations.get(org_id)
        assert row is not None
        assert (row.name, row.kind, row.country, row.category) == ("gosh", "hospital", "GB", None)
        assert row.created_at.tzinfo is UTC
        assert abs(utcnow() - row.created_at) < timedelta(minutes=1)
        assert [o.name for o in uow.organisations.list(kind="hospital")] == ["gosh"]


def test_duplicate_names_and_emails_conflict(store: HubStore) -> None:
    add_org(store, "uni", "requester")
    with pytest.raises(Conflict, match="already exists"):
        add_org(store, "uni", "requester")
    add_user(store, "a@uni.example", "requester", "uni")
    with pytest.raises(Conflict, match="already exists"):
        add_user(store, "A@UNI.example", "requester", "uni")


def test_database_constraints_back_the_rules(store: HubStore) -> None:
    """A hospital without a country is refused by the database itself, as a Conflict."""
    with pytest.raises(Conflict), store.unit() as uow:
        uow.organisations.add(OrganisationRow(name="bad", display_name="Bad", kind="hospital"))
    with store.unit() as uow:
        assert uow.organisations.by_name("bad") is None


def test_a_failed_unit_rolls_back_everything(store: HubStore) -> None:
    def fail_midway() -> None:
        with store.unit() as uow:
            uow.organisations.add(OrganisationRow(name="gone", display_name="Gone", kind="operator"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    with store.unit() as uow:
        assert uow.organisations.by_name("gone") is None


def test_tokens_revoke_once_and_touch(store: HubStore) -> None:
    add_org(store, "uni", "requester")
    user_id, token = add_user(store, "r@uni.example", "requester", "uni")
    token_id = token.split("_")[1]
    now = utcnow()
    with store.unit() as uow:
        row = uow.tokens.get(token_id)
        assert row is not None and row.user_id == user_id and row.secret_sha256 not in token
        uow.tokens.touch(token_id, now)
    with store.unit() as uow:
        assert uow.tokens.revoke(token_id, now) is True
        assert uow.tokens.revoke(token_id, now) is False
    with store.unit() as uow:
        row = uow.tokens.get(token_id)
        assert row is not None and row.revoked_at == now
        assert row.last_used_at is not None
        assert [t.id for t in uow.tokens.list(user_ids=[user_id])] == [token_id]


def test_enrolment_token_is_claimed_once(store: HubStore) -> None:
    add_org(store, "gosh", "hospital")
    token = enrolment_token(store, "gosh")
    with store.unit() as uow:
        row = uow.enrolments.by_lookup(token.split("_")[1])
        assert row is not None
        assert uow.enrolments.claim(row.id, utcnow()) is True
        assert uow.enrolments.claim(row.id, utcnow()) is False


def test_an_expired_enrolment_token_cannot_be_claimed(store: HubStore) -> None:
    add_org(store, "gosh", "hospital")
    token = enrolment_token(store, "gosh")
    with store.unit() as uow:
        row = uow.enrolments.by_lookup(token.split("_")[1])
        assert row is not None
        assert uow.enrolments.claim(row.id, utcnow() + timedelta(days=3)) is False


def test_concurrent_claims_let_exactly_one_win(store: HubStore) -> None:
    """Two transactions both see the token unused, then both claim: exactly one succeeds.

    On PostgreSQL both reads happen before either claim (a barrier between them). On SQLite,
    ``BEGIN IMMEDIATE`` makes the second transaction wait for the first, so there is no such
    interleaving to force; the two threads still race.
    """
    add_org(store, "gosh", "hospital")
    lookup = enrolment_token(store, "gosh").split("_")[1]
    interleave = store.backend == "postgresql"
    barrier = threading.Barrier(2, timeout=20)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def claimer() -> None:
        try:
            if not interleave:
                barrier.wait()
            with store.unit() as uow:
                row = uow.enrolments.by_lookup(lookup)
                assert row is not None
                if interleave:
                    assert row.used_at is None
                    barrier.wait()
                outcomes.append(uow.enrolments.claim(row.id, utcnow()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(outcomes) == [False, True]


def test_concurrent_enrolments_with_one_token_give_one_node(store: HubStore, hub_url: str) -> None:
    add_org(store, "gosh", "hospital")
    token = enrolment_token(store, "gosh")
    barrier = threading.Barrier(2, timeout=20)
    results: list[str] = []

    def enrol_once() -> None:
        barrier.wait()
        try:
            with store.unit() as uow:
                credential, _, _ = services.enrol_node(
                    uow, EnrolRequest(enrolment_token=token), hub_settings(hub_url), utcnow()
                )
            results.append(credential)
        except AuthenticationError as exc:
            results.append(f"refused: {exc.message}")

    threads = [threading.Thread(target=enrol_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    assert sum(r.startswith("phds_") for r in results) == 1
    assert sum(r.startswith("refused: enrolment token was already used") for r in results) == 1
    with store.unit() as uow:
        assert len(uow.nodes.list()) == 1
        node = uow.nodes.list()[0]
        assert len(uow.tokens.list(node_id=node.id)) == 1


def test_catalogue_keeps_history_and_shows_the_latest_per_hospital(store: HubStore, hub_url: str) -> None:
    ids = {name: add_org(store, name, "hospital") for name in ("b-hosp", "a-hosp")}
    nodes = {name: enrol(store, name, hub_url)[0] for name in ids}
    for version in (1, 2):
        for name in ids:
            with store.unit() as uow:
                services.publish_catalogue(
                    uow,
                    node_id=nodes[name],
                    profile={"v": version, "h": name},
                    max_bytes=10_000,
                    now=utcnow(),
                )
    with store.unit() as uow:
        latest = uow.catalogue.latest()
        assert [(r.organisation.name, r.profile["v"]) for r in latest] == [("a-hosp", 2), ("b-hosp", 2)]
        assert uow.catalogue.history_count(ids["a-hosp"]) == 2
        only = uow.catalogue.latest(organisation_id=ids["b-hosp"])
        assert [r.profile["h"] for r in only] == ["b-hosp"]


def test_naive_timestamps_are_refused(store: HubStore) -> None:
    add_org(store, "uni", "requester")
    user_id, _ = add_user(store, "r@uni.example", "requester", "uni")
    with pytest.raises(StatementError, match="naive datetime"), store.unit() as uow:
        services.issue_token(uow, user_id=user_id, expires_at=datetime(2030, 1, 1))


def test_ping_fails_on_an_unreachable_database() -> None:
    store = HubStore.open("postgresql://nobody@127.0.0.1:1/none", migrate=False)
    try:
        assert store.ping() is False
    finally:
        store.close()


def test_sqlite_store_enforces_foreign_keys(sqlite_url: str) -> None:
    store = HubStore.open(sqlite_url)
    try:
        with pytest.raises(Conflict), store.unit() as uow:
            uow.session.execute(
                text(
                    "INSERT INTO users (id, organisation_id, email, display_name, role, created_at) "
                    "VALUES (:id, :org, 'x@y.z', 'x', 'admin', '2026-01-01 00:00:00')"
                ),
                {"id": uuid.uuid4().hex, "org": uuid.uuid4().hex},
            )
    finally:
        store.close()


@pytest.mark.postgres
def test_plain_postgresql_urls_are_accepted(hub_pg_url: str) -> None:
    """``--db postgresql://…`` works as typed; the psycopg driver is chosen for it."""
    plain = "postgresql://" + hub_pg_url.split("://", 1)[1]
    store = HubStore.open(plain)
    try:
        assert store.backend == "postgresql"
        assert store.engine.dialect.driver == "psycopg"
        assert store.revision() == "0008"
    finally:
        store.close()
