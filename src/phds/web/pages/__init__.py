"""The portal's pages, one module per area; :data:`PAGE_ROUTERS` is what the portal app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from phds.web.pages import account, study_forms, study_plots, study_results, submit

# study_forms before any "/studies/{id}" route, so "/studies/new" is the new-study page.
PAGE_ROUTERS: list[APIRouter] = [
    account.router,
    submit.router,
    study_forms.router,
    study_results.router,
    study_plots.router,
]
