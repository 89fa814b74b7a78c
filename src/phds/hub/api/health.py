"""``GET /api/v1/health``: liveness and database status, no authentication."""

from __future__ import annotations

from fastapi import APIRouter

from phds import __version__
from phds.errors import StoreError
from phds.hub.auth import Store
from phds.protocol.health import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(store: Store) -> Health:
    """The hub's version and whether its database answers (503 when it does not)."""
    if not store.ping():
        raise StoreError(f"hub database ({store.backend}) is unreachable; phds {__version__}")
    return Health(
        status="ok", version=__version__, database="ok", database_backend=store.backend,
        schema_revision=store.revision(),
    )  # fmt: skip
