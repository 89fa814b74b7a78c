"""The hub's store: one interface (:class:`HubStore` and its :class:`UnitOfWork`) over SQLite or PostgreSQL.

``HubStore.open(url)`` connects and applies the Alembic migrations shipped in
``phds/hub/store/migrations``. All work happens in a unit of work, one transaction::

    with store.unit() as uow:
        org = uow.organisations.by_name("gosh")

Database errors leave the store as PHDS errors: a violated unique or foreign key constraint as
:class:`~phds.errors.Conflict`, an unreachable or failing database as :class:`~phds.errors.StoreError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from phds.errors import Conflict, StoreError
from phds.hub.store.account_models import AccountsRepo
from phds.hub.store.billing_models import BillingRepo
from phds.hub.store.repositories import (
    CatalogueRepo,
    EnrolmentRepo,
    NodeRepo,
    OrganisationRepo,
    TokenRepo,
    UserRepo,
)
from phds.hub.store.secagg_models import SecAggRepo
from phds.hub.store.study_repositories import ResultRepo, StudyRepo, TaskRepo
from phds.private_files import ensure_private

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class UnitOfWork:
    """The repositories of one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.organisations = OrganisationRepo(session)
        self.users = UserRepo(session)
        self.tokens = TokenRepo(session)
        self.enrolments = EnrolmentRepo(session)
        self.nodes = NodeRepo(session)
        self.catalogue = CatalogueRepo(session)
        self.studies = StudyRepo(session)
        self.tasks = TaskRepo(session)
        self.results = ResultRepo(session)
        self.secagg = SecAggRepo(session)
        self.billing = BillingRepo(session)
        self.accounts = AccountsRepo(session)


class HubStore:
    """The hub's database; open it with :meth:`open`."""

    def __init__(self, engine: Engine, reader: Engine | None = None) -> None:
        """*reader*: an engine for read-only units (SQLite: deferred, query-only transactions)."""
        self.engine = engine
        self.backend = engine.dialect.name
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._reader = reader
        self._read_sessions = sessionmaker(reader or engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> HubStore:
        """Connect to *url* (``sqlite:///file`` or ``postgresql://…``); migrate unless told not to."""
        store = cls(_create_engine(url), _create_reader(url))
        if migrate:
            store.migrate()
        return store

    def migrate(self, revision: str = "head") -> None:
        """Apply the Alembic migrations up to *revision*."""
        from alembic import command

        try:
            with self.engine.connect() as connection:
                if self.backend == "sqlite":
                    _sqlite_migrate(connection, revision)
                else:
                    with connection.begin():
                        command.upgrade(_alembic_config(connection), revision)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot migrate the hub database: {_reason(exc)}") from exc
        log.info("hub store at revision %s (%s)", self.revision(), self.backend)

    def revision(self) -> str | None:
        """The applied Alembic revision, or None before the first migration."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            log.warning("hub database does not answer", exc_info=True)
            return False
        return True

    @contextmanager
    def unit(self, *, read_only: bool = False) -> Iterator[UnitOfWork]:
        """One transaction: commits when the block ends normally, rolls back otherwise.

        A *read_only* unit on SQLite neither takes nor waits for the write lock (every other unit
        begins ``BEGIN IMMEDIATE``): in WAL mode it reads a snapshot beside the one writer, and a write
        in it fails (``PRAGMA query_only``). Long polls and views use it, so they do not queue behind
        the nodes' posts."""
        session = (self._read_sessions if read_only else self._sessions)()
        try:
            yield UnitOfWork(session)
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict(f"conflicts with existing data: {_reason(exc)}") from exc
        except DBAPIError as exc:
            session.rollback()
            raise StoreError(f"hub database error: {_reason(exc)}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self._reader is not None:
            self._reader.dispose()


def _reason(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).strip().splitlines()[0]


def _create_engine(url: str) -> Engine:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    memory = url.rstrip("/").endswith((":memory:", "sqlite:"))
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = StaticPool
    else:
        ensure_private(Path(url.split(":///", 1)[1]), "hub database")
    engine = create_engine(url, **kwargs)
    _sqlite_transactions(engine, wal=not memory)
    return engine


def _create_reader(url: str) -> Engine | None:
    """SQLite file databases: an engine whose transactions begin deferred and may not write."""
    if not url.startswith("sqlite") or url.rstrip("/").endswith((":memory:", "sqlite:")):
        return None
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    _sqlite_session(engine, ["PRAGMA busy_timeout = 30000", "PRAGMA query_only = ON"], "BEGIN")
    return engine


def _sqlite_transactions(engine: Engine, *, wal: bool) -> None:
    """Make SQLite transactional the way the store needs: foreign keys on, writers serialised.

    The driver's own transaction handling is switched off and every transaction starts with
    ``BEGIN IMMEDIATE``, so two writers never both read and then fail to upgrade their lock
    (SQLAlchemy's documented pysqlite recipe).
    """
    pragmas = ["PRAGMA foreign_keys = ON", "PRAGMA busy_timeout = 30000"]
    if wal:
        pragmas += ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL"]
    _sqlite_session(engine, pragmas, "BEGIN IMMEDIATE")


def _sqlite_session(engine: Engine, pragmas: list[str], begin: str) -> None:
    """Every new connection runs *pragmas* with the driver's transactions off; each transaction *begin*s."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def _sqlite_migrate(connection: Any, revision: str) -> None:
    """Migrate SQLite with foreign keys off, as SQLite's own procedure for schema changes requires
    (sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema Changes"): a batch migration
    re-creates a table, and dropping a table others point at fails with them on. Before committing,
    ``PRAGMA foreign_key_check`` must find no dangling reference, or nothing is migrated."""
    from alembic import command

    raw = connection.connection.dbapi_connection
    raw.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction, so before BEGIN
    try:
        with connection.begin():
            command.upgrade(_alembic_config(connection), revision)
            dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if dangling:
                raise StoreError(f"migrating would leave dangling references: {dangling[:3]}")
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


__all__ = ["HubStore", "UnitOfWork"]
