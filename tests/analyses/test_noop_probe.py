"""``system.noop``'s probe vector: a long vector sum, in the clear and under secure aggregation, with no data.

Each node's gate draws the numbers from the hospital's public seed, so the hub can recompute the exact
network sum; the secure sum must be within the fixed-point bound m · 2⁻²¹ of it, the clear sum equal up
to floating-point addition. Attacks: an analysis cannot put data in a probe (the gate draws the values
itself), and a probe spends no privacy budget when a node's policy requires DP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from phds.analyses.base import LocalStep
from phds.analyses.context import LocalContext
from phds.analyses.noop import NoOp, NoOpParams, probe_seed
from phds.analyses.testing import Federation, everything_auto
from phds.errors import InputError
from phds.node.policy import DifferentialPrivacy, DpRequirement
from phds.privacy.aggregates import ProbeAggregate, probe_vector

HOSPITALS: dict[str, dict[str, Any]] = {"h1": {}, "h2": {}, "h3": {}}


@pytest.mark.parametrize("secure", [False, True])
def test_the_network_sum_of_the_probes_is_the_sum_recomputed_from_their_seeds(secure: bool) -> None:
    with Federation(HOSPITALS) as fed:
        run = fed.run("system.noop", {"vector_length": 5000}, secure_aggregation=secure)
    assert run.error is None and run.result is not None, run.error
    vector = run.result["vector"]
    assert run.result["answered"] == ["h1", "h2", "h3"] and vector["length"] == 5000
    assert vector["secure"] is secure and (1 in run.secure_layouts) is secure
    bound = 3 * 2.0**-21 if secure else 1e-12
    assert vector["max_abs_error"] <= bound and vector["error_bound"] == (3 * 2.0**-21 if secure else 0.0)
    exact = sum(probe_vector(probe_seed(h), 5) for h in HOSPITALS)
    assert np.allclose(vector["first"], exact, atol=bound, rtol=0)
    if not secure:
        released = run.releases["h2"][0]["values"]["probe"]
        assert released["seed"] == probe_seed("h2") and len(released["values"]) == 5000


def test_probe_numbers_are_fixed_by_their_seed_and_lie_in_minus_one_to_one() -> None:
    a, b = probe_vector("phds-probe-v1:h1", 100_000), probe_vector("phds-probe-v1:h1", 10)
    assert np.array_equal(a[:10], b) and a.min() >= -1.0 and a.max() < 1.0
    assert abs(float(a.mean())) < 0.01 and not np.array_equal(a[:10], probe_vector("phds-probe-v1:h2", 10))
    with pytest.raises(InputError, match="vector_length"):
        probe_vector("s", 100_001)


class _Smuggler(NoOp):
    """An analysis that tries to put a hospital's value where the probe's numbers go."""

    def local(self, ctx: LocalContext, params: NoOpParams) -> LocalStep:
        step = super().local(ctx, params)
        probe = step.aggregates[0]
        assert isinstance(probe, ProbeAggregate)
        leaked = replace(probe, length=params.vector_length)
        object.__setattr__(leaked, "values", [42.0] * params.vector_length)  # not a field: ignored
        return LocalStep([leaked])


def test_attack_an_analysis_cannot_release_its_own_numbers_as_a_probe() -> None:
    """The gate draws the released numbers from the seed; whatever else the aggregate carries is dropped."""
    with Federation(HOSPITALS) as fed:
        run = fed.run(_Smuggler(), {"vector_length": 50})
    assert run.result is not None and run.result["vector"]["max_abs_error"] < 1e-12
    released = run.releases["h1"][0]["values"]["probe"]["values"]
    assert released == probe_vector(probe_seed("h1"), 50).tolist() and 42.0 not in released


def test_a_probe_spends_no_budget_where_the_policy_requires_dp() -> None:
    policy = everything_auto().model_copy(
        update={"dp": DifferentialPrivacy(require=[DpRequirement(analyses=["*"], rho=0.1)])}
    )
    with Federation(HOSPITALS, policy=policy) as fed:
        run = fed.run("system.noop", {"vector_length": 10})
    assert run.error is None and run.result is not None, run.error
    payload: Mapping[str, Any] = run.releases["h3"][0]
    assert payload["values"]["probe"]["values"] == probe_vector(probe_seed("h3"), 10).tolist()
    assert not payload.get("budget")


def test_vector_length_is_bounded_and_named_when_wrong() -> None:
    with pytest.raises(InputError, match="vector_length"):
        NoOp().parse_params({"vector_length": 200_000})
    assert NoOp().secure_layout(NoOp().parse_params({}), 1, {}) is None
