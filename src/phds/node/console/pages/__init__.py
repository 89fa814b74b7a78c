"""The console's pages, one module per topic; :data:`PAGE_ROUTERS` are included by the app."""

from __future__ import annotations

from fastapi import APIRouter

from phds.node.console.pages import account, approvals, audit, budget, earnings, policy

PAGE_ROUTERS: list[APIRouter] = [
    account.router,
    approvals.router,
    audit.router,
    policy.router,
    budget.router,
    earnings.router,
]

__all__ = ["PAGE_ROUTERS"]
