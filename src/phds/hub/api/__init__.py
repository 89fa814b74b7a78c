"""The hub's HTTP API under ``/api/v1``, one resource per module."""

from __future__ import annotations

from fastapi import APIRouter

from phds.hub.api import (
    analyses,
    billing,
    catalogue,
    enrolment,
    health,
    me,
    network,
    nodes,
    organisations,
    secagg,
    sessions,
    studies,
    tasks,
    tokens,
    users,
    vocabulary,
)

API_PREFIX = "/api/v1"


def api_router() -> APIRouter:
    """Every resource's router under ``/api/v1``."""
    router = APIRouter(prefix=API_PREFIX)
    for module in (
        health,
        me,
        sessions,
        organisations,
        users,
        tokens,
        enrolment,
        tasks,
        nodes,
        catalogue,
        analyses,
        studies,
        secagg,
        network,
        billing,
        vocabulary,
    ):
        router.include_router(module.router)
    return router
