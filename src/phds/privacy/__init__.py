"""Privacy protection: disclosure rules (here), later differential privacy, secure aggregation, budgets."""

from phds.privacy.disclosure import (
    NETWORK_MIN_CELL_COUNT,
    NetworkTotal,
    ReleasedBreakdown,
    ReleasedCount,
    network_total,
    protect_breakdown,
    release_count,
)

__all__ = [
    "NETWORK_MIN_CELL_COUNT",
    "NetworkTotal",
    "ReleasedBreakdown",
    "ReleasedCount",
    "network_total",
    "protect_breakdown",
    "release_count",
]
