"""The time-bin rule: every node's bins, and the hub's common bins, keep each count at 0 or ≥ k."""

from __future__ import annotations

import numpy as np
import pytest

from phds.analyses.cox_bins import admissible_cuts, bin_of, common_cuts, grid_index
from phds.errors import DisclosureRefused, InputError


def counts(grid: np.ndarray, event: np.ndarray, series: np.ndarray, cuts: list[int]) -> np.ndarray:
    """(series, bin, event|censored) counts of a partition."""
    out = np.zeros((series.max() + 1, len(cuts) + 1, 2), dtype=np.int64)
    np.add.at(out, (series, bin_of(grid, cuts), (~event).astype(int)), 1)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_own_and_common_bins_have_no_count_between_one_and_k_minus_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.choice([5, 11]))
    nodes = []
    for _ in range(3):
        n = int(rng.integers(60, 400))
        grid = rng.integers(0, 60, n)
        event = rng.random(n) < 0.4
        series = rng.integers(0, 2, n)
        cuts = admissible_cuts(grid, event, k, [series])
        c = counts(grid, event, series, cuts)
        assert np.all((c == 0) | (c >= k))
        # each cut has ≥ k of the node's persons on either side (no raw minimum or maximum)
        for cut in cuts:
            assert (grid < cut).sum() >= k and (grid >= cut).sum() >= k
        nodes.append((grid, event, series, cuts))
    common = common_cuts([node[3] for node in nodes])
    for grid, event, series, _ in nodes:
        c = counts(grid, event, series, common)
        assert np.all((c == 0) | (c >= k))


def test_a_node_with_fewer_than_k_events_admits_no_bins() -> None:
    grid = np.arange(30)
    event = np.zeros(30, bool)
    event[:3] = True
    with pytest.raises(DisclosureRefused):
        admissible_cuts(grid, event, 5)


def test_grid_index_is_exact_against_the_float_edges() -> None:
    durations = np.array([0.0, 0.3, 0.7, 1.0, 2.9999999])
    assert grid_index(durations, 0.0, 0.1).tolist() == [0, 3, 7, 10, 29]
    with pytest.raises(InputError):
        grid_index(np.array([-1.0]), 0.0, 1.0)
