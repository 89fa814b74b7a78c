"""The portal's pages, one module per area; :data:`PAGE_ROUTERS` is what the portal app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from phds.web.pages import account, catalogue, feasibility, studies, submit

PAGE_ROUTERS: list[APIRouter] = [
    account.router,
    submit.router,
    catalogue.router,
    feasibility.router,
    studies.router,
]
