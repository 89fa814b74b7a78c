"""The portal's pages, one module per area; :data:`PAGE_ROUTERS` is what the portal app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from phds.web.pages import (
    account,
    catalogue,
    feasibility,
    money,
    operator,
    operator_accounts,
    operator_billing,
    operator_nodes,
    operator_people,
    simulator,
    studies,
    study_forms,
    study_plots,
    study_results,
    submit,
)

PAGE_ROUTERS: list[APIRouter] = [account.router, submit.router]
PAGE_ROUTERS += [catalogue.router, feasibility.router, study_forms.router, studies.router]
PAGE_ROUTERS += [study_results.router, study_plots.router]
PAGE_ROUTERS += [operator.router, operator_people.router, operator_nodes.router, operator_billing.router]
PAGE_ROUTERS += [operator_accounts.router, simulator.router, money.router]
