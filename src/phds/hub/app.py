"""The hub's FastAPI application, built by :func:`create_app`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from phds import __version__
from phds.hub.api import api_router
from phds.hub.errors import install_error_handlers
from phds.hub.middleware import BodySizeLimit
from phds.hub.notify import Notifier
from phds.hub.runner import StudyRunner
from phds.hub.settings import HubSettings
from phds.hub.store import HubStore
from phds.web.app import create_portal

log = logging.getLogger(__name__)


def create_app(settings: HubSettings, store: HubStore | None = None) -> FastAPI:
    """The hub app. Opens (and migrates) the store at ``settings.database_url`` unless one is given.

    The app's lifespan runs the study runner's background sweep (expired leases, deadlines); it resumes
    from the database after a restart. The store is closed at shutdown only if this function opened it.
    """
    owned = store is None
    hub_store = store if store is not None else HubStore.open(settings.database_url)
    notifier = Notifier()
    runner = StudyRunner(hub_store, settings, notifier)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        sweeper = asyncio.create_task(runner.run_forever(stop), name="phds-study-runner")
        try:
            yield
        finally:
            stop.set()
            await sweeper
            await portal.state.hub_api.close()
            if owned:
                hub_store.close()

    app = FastAPI(
        title="PHDS hub",
        version=__version__,
        summary="Federated Paediatric Health Data Space: the network's hub.",
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = hub_store
    app.state.notifier = notifier
    app.state.runner = runner
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(api_router())
    portal = create_portal(app)
    app.mount("/portal", portal)

    @app.get("/", include_in_schema=False)
    def to_portal() -> RedirectResponse:
        return RedirectResponse("/portal/", status_code=307)

    log.info("hub app ready (%s store, environment %s)", hub_store.backend, settings.environment)
    return app
