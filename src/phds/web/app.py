"""The portal app, mounted by the hub at ``/portal``: :func:`create_portal`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from phds.web.api import HubApi
from phds.web.errors import install_page_errors
from phds.web.kit import STATIC_DIR, SecurityHeaders
from phds.web.pages import PAGE_ROUTERS
from phds.web.render import templates
from phds.web.session import SignInRequired, sign_in_url


def create_portal(hub_app: ASGIApp) -> FastAPI:
    """The requester and operator portal: pages over *hub_app*'s own ``/api/v1``, nothing else."""
    api = HubApi(hub_app)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await api.close()

    portal = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    portal.state.hub_api = api
    portal.add_middleware(SecurityHeaders)
    install_page_errors(
        portal,
        templates,
        sign_in=SignInRequired,
        sign_in_url=lambda exc: sign_in_url(exc.next_path),
    )
    portal.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in PAGE_ROUTERS:
        portal.include_router(router)
    return portal
