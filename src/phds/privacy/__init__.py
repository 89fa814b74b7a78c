"""Privacy protection: disclosure rules (here), later differential privacy, secure aggregation, budgets."""

from phds.privacy.design_checks import (
    DesignLimits,
    check_design,
    check_irls_point,
    check_risk_sets,
    check_separation,
)
from phds.privacy.disclosure import (
    NETWORK_MIN_CELL_COUNT,
    NetworkTotal,
    ReleasedBreakdown,
    ReleasedCount,
    network_total,
    protect_breakdown,
    release_count,
)
from phds.privacy.dominance import DominanceRules, as_count_if_discrete, check_residual_dof, check_sum

__all__ = [
    "NETWORK_MIN_CELL_COUNT",
    "DesignLimits",
    "DominanceRules",
    "NetworkTotal",
    "ReleasedBreakdown",
    "ReleasedCount",
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
