"""Privacy protection below the analyses: aggregates, disclosure rules, dominance and design checks;
later differential privacy, secure aggregation and budgets. Pure: no storage, no network."""

from phds.privacy.design_checks import (
    DesignLimits,
    check_design,
    check_irls_point,
    check_risk_sets,
    check_separation,
)
from phds.privacy.disclosure import NETWORK_MIN_CELL_COUNT, network_total, protect_breakdown, release_count
from phds.privacy.dominance import DominanceRules, as_count_if_discrete, check_residual_dof, check_sum

__all__ = [
    "NETWORK_MIN_CELL_COUNT",
    "DesignLimits",
    "DominanceRules",
    "as_count_if_discrete",
    "check_design",
    "check_irls_point",
    "check_residual_dof",
    "check_risk_sets",
    "check_separation",
    "check_sum",
    "network_total",
    "protect_breakdown",
    "release_count",
]
