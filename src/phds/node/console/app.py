"""The console app: :func:`create_console` over one node's configuration and ``node.db``."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from phds.node.config import NodeConfig
from phds.node.console.pages import PAGE_ROUTERS
from phds.node.console.render import console_templates
from phds.node.console.session import Sessions, SignInRequired, announce_link
from phds.web.errors import install_page_errors
from phds.web.kit import STATIC_DIR, SecurityHeaders

#: Host names a loopback console answers to. Refusing others defeats DNS rebinding: a web page whose own
#: name is made to resolve to 127.0.0.1 cannot read or drive the console (Jupyter Server checks the
#: Host header the same way unless ``allow_remote_access`` is set).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_console(
    config: NodeConfig,
    *,
    steward: str,
    base_url: str,
    announce: Callable[[str], None],
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS,
) -> FastAPI:
    """The steward console of the node of *config*; decisions are recorded as *steward*'s.

    *base_url* is where the console is reached (``http://127.0.0.1:8765``); *announce* shows a sign-in
    link to whoever started the console (the CLI prints it to the terminal). Call :func:`announce_link`
    once at start-up.
    """
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = config
    app.state.steward = steward
    app.state.sessions = Sessions()
    app.state.base_url = base_url.rstrip("/")
    app.state.announce = announce
    app.state.templates = console_templates(config.node.name)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    install_page_errors(app, app.state.templates, sign_in=SignInRequired, sign_in_url=lambda _exc: "/sign-in")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in PAGE_ROUTERS:
        app.include_router(router)
    return app


__all__ = ["LOOPBACK_HOSTS", "announce_link", "create_console"]
