"""``phds hub``: run the network's hub and administer it on its own database.

Administration commands (``init``, ``org add``, ``user add``, ``token``, ``enrol-token``) work directly
on the hub's database, through the same service functions as the HTTP API: they are for the operator
on the hub's host, need no running hub and no token, and are how the first admin comes to exist.
Remote administration uses the HTTP API with an admin token. Secrets go to stdout alone, one line,
so ``TOKEN=$(phds hub init)`` works; everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

from phds.errors import Conflict, InputError, NotFound
from phds.hub import services
from phds.hub.passwords import set_password
from phds.hub.settings import HubSettings, load_hub_settings
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.protocol.organisations import OrganisationCreate, OrganisationKind, RequesterCategory
from phds.protocol.users import Role, UserCreate

log = logging.getLogger(__name__)
console = Console(stderr=True, highlight=False)

app = typer.Typer(help="Run the PHDS hub and administer its organisations, people, tokens and nodes.")
org_app = typer.Typer(help="Organisations: hospitals and requesters.", no_args_is_help=True)
user_app = typer.Typer(help="People: admins, requesters, data stewards.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens of people.", no_args_is_help=True)
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")

DB_HELP = "Hub database URL (sqlite:///file.sqlite or postgresql://...); default PHDS_HUB_DATABASE_URL."
M = TypeVar("M", bound=BaseModel)


def register(root: typer.Typer) -> None:
    """Add the ``hub`` group to the root app."""
    root.add_typer(app, name="hub", no_args_is_help=True)


def _spec(model: type[M], **fields: Any) -> M:
    """Build a wire model from options; invalid values become an :class:`InputError` naming the option."""
    try:
        return model(**{key: value for key, value in fields.items() if value is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(map(str, first["loc"])) or None
        raise InputError(first["msg"], field=field) from exc


def _open(db: str | None) -> tuple[HubSettings, HubStore]:
    settings = load_hub_settings(database_url=db)
    return settings, HubStore.open(settings.database_url)


#: Seconds a stopping hub waits for requests in flight before it cuts them off (a backstop: open long
#: polls are answered at once when the stop begins).
SHUTDOWN_GRACE_SECONDS = 10


@app.command()
def serve(
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8700).")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this PEM certificate (chain).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The PEM private key of --tls-cert.")
    ] = None,
) -> None:
    """Migrate the database and serve the hub's HTTP API (OpenAPI at /docs); HTTPS with --tls-cert."""
    import uvicorn

    from phds.hub.app import create_app

    settings = load_hub_settings(
        database_url=db, host=host, port=port, tls_cert_file=tls_cert, tls_key_file=tls_key
    )
    api = create_app(settings)
    scheme = "https" if settings.tls_cert_file else "http"
    console.print(f"PHDS hub on {scheme}://{settings.host}:{settings.port} (docs at /docs)")
    notifier = api.state.notifier

    class StoppingServer(uvicorn.Server):
        """Answers open long polls (up to 60 s) as soon as SIGTERM/SIGINT arrives, so they do not hold
        the graceful shutdown open; clients reconnect when the hub is back."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            try:  # a signal handler: wake the waiters from the event loop, not from here
                asyncio.get_running_loop().call_soon_threadsafe(notifier.close)
            except RuntimeError:
                notifier.close()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        api,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )
    StoppingServer(config).run()


@app.command()
def init(
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    email: Annotated[str, typer.Option(help="The first admin's email.")] = "admin@localhost",
    name: Annotated[str, typer.Option(help="The first admin's display name.")] = "Network admin",
    operator: Annotated[str, typer.Option(help="Slug of the network operator organisation.")] = "operator",
    operator_name: Annotated[
        str, typer.Option(help="Display name of the operator organisation.")
    ] = "Network operator",
    force_new_token: Annotated[
        bool,
        typer.Option(
            "--force-new-token", help="If an admin exists, issue a new token for the admin with --email."
        ),
    ] = False,
) -> None:
    """Create the first network admin and its operator organisation; print the admin's token once."""
    settings, store = _open(db)
    expires_at = utcnow() + timedelta(days=settings.user_token_ttl_days)
    try:
        with store.unit() as uow:
            if uow.users.count(role=Role.ADMIN.value) == 0:
                spec = _spec(OrganisationCreate, name=operator, display_name=operator_name, kind="operator")
                token, user = services.bootstrap_admin(
                    uow, operator=spec, email=email, display_name=name, expires_at=expires_at
                )
                console.print(f"created admin {user.email} in organisation {spec.name}")
            elif not force_new_token:
                raise Conflict("the hub already has an admin; use --force-new-token to issue a new token")
            else:
                admin = uow.users.by_email(email.lower())
                if admin is None or admin.role != Role.ADMIN.value:
                    raise NotFound(f"no admin with email {email!r}")
                token, _ = services.issue_token(uow, user_id=admin.id, name="init", expires_at=expires_at)
                console.print(f"issued a new token for admin {admin.email}")
    finally:
        store.close()
    console.print("admin API token (shown once, keep it secret):")
    typer.echo(token)


@org_app.command("add")
def org_add(
    name: Annotated[str, typer.Argument(help="Slug, e.g. 'gosh'; a hospital's slug is its node's name.")],
    kind: Annotated[OrganisationKind, typer.Option(help="hospital or requester.")],
    display_name: Annotated[str, typer.Option("--display-name", help="Human name.")],
    country: Annotated[str | None, typer.Option(help="ISO 3166-1 alpha-2 code; hospitals need one.")] = None,
    category: Annotated[RequesterCategory | None, typer.Option(help="Requesters need one.")] = None,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Add a hospital or a requester organisation."""
    spec = _spec(
        OrganisationCreate,
        name=name,
        kind=kind,
        display_name=display_name,
        country=country,
        category=category,
    )
    _, store = _open(db)
    try:
        with store.unit() as uow:
            row = services.create_organisation(uow, spec)
            typer.echo(f"{row.kind} {row.name} ({row.id})")
    finally:
        store.close()


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Argument(help="The person's email (unique).")],
    role: Annotated[Role, typer.Option(help="admin, requester or steward.")],
    org: Annotated[str, typer.Option("--org", help="Slug of the person's organisation.")],
    display_name: Annotated[str, typer.Option("--display-name", help="Human name.")],
    token: Annotated[
        bool, typer.Option("--token", help="Also issue an API token and print it once.")
    ] = False,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Add a person; the role must fit the organisation (steward→hospital, requester→requester)."""
    spec = _spec(UserCreate, email=email, role=role, organisation=org, display_name=display_name)
    settings, store = _open(db)
    secret = None
    try:
        with store.unit() as uow:
            row = services.create_user(uow, spec)
            if token:
                expires_at = utcnow() + timedelta(days=settings.user_token_ttl_days)
                secret, _ = services.issue_token(uow, user_id=row.id, expires_at=expires_at)
    finally:
        store.close()
    console.print(f"{row.role} {row.email} ({row.id}) in {org}")
    if secret is not None:
        console.print("API token (shown once):")
        typer.echo(secret)


@user_app.command("password")
def user_password(
    email: Annotated[str, typer.Argument(help="Whose password.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")
    ] = False,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Set (or reset) a person's portal password; it also unlocks a locked account."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    _, store = _open(db)
    try:
        with store.unit() as uow:
            user = uow.users.by_email(email.lower())
            if user is None:
                raise NotFound(f"no user with email {email!r}")
            set_password(user, password, utcnow())
    finally:
        store.close()
    console.print(f"password set for {email.lower()}; they can sign in to the portal at /portal")


@token_app.command("issue")
def token_issue(
    email: Annotated[str, typer.Argument(help="Whose token.")],
    name: Annotated[str, typer.Option(help="A label for the token.")] = "",
    ttl_days: Annotated[
        int | None, typer.Option("--ttl-days", min=1, help="Lifetime; default the hub's.")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Issue an API token for a person and print it once."""
    settings, store = _open(db)
    try:
        with store.unit() as uow:
            user = uow.users.by_email(email.lower())
            if user is None:
                raise NotFound(f"no user with email {email!r}")
            expires_at = utcnow() + timedelta(days=ttl_days or settings.user_token_ttl_days)
            secret, row = services.issue_token(uow, user_id=user.id, name=name, expires_at=expires_at)
            console.print(f"token {row.id} for {user.email}, expires {row.expires_at:%Y-%m-%d %H:%M} UTC:")
    finally:
        store.close()
    typer.echo(secret)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[
        str, typer.Argument(help="The token's id (the part after 'phds_'), or the whole token.")
    ],
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Revoke a person's or a node's API token at once."""
    if token_id.startswith("phds_"):
        token_id = token_id.split("_")[1]
    _, store = _open(db)
    try:
        with store.unit() as uow:
            services.revoke_token(uow, token_id, utcnow())
    finally:
        store.close()
    console.print(f"revoked token {token_id}")


@app.command("enrol-token")
def enrol_token(
    hospital: Annotated[str, typer.Argument(help="Slug of the hospital whose node will enrol.")],
    ttl_hours: Annotated[
        int | None, typer.Option("--ttl-hours", min=1, help="Lifetime; default the hub's.")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Issue a one-time enrolment token for a hospital's node and print it once."""
    settings, store = _open(db)
    try:
        with store.unit() as uow:
            expires_at = utcnow() + timedelta(hours=ttl_hours or settings.enrolment_token_ttl_hours)
            secret, row = services.issue_enrolment_token(
                uow, hospital=hospital, expires_at=expires_at, created_by=None
            )
            console.print(
                f"enrolment token for {hospital}, one use, expires {row.expires_at:%Y-%m-%d %H:%M} UTC:"
            )
    finally:
        store.close()
    typer.echo(secret)
