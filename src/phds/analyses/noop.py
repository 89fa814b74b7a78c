"""``system.noop``: a one-round analysis that reads no data and releases nothing but a probe.

It measures the platform itself (task delivery, gate, audit, result path), as the no-op round-trip
benchmark does, and lets an operator check that a node is alive end to end. With ``vector_length`` L,
each node's gate also releases L pseudo-random numbers drawn from a public seed (the hospital's name:
:class:`~phds.privacy.aggregates.ProbeAggregate`), which the hub sums in the clear or, with
``secure_aggregation: true``, as a secure sum. Knowing the seeds, the hub recomputes every vector and
states how far the network sum is from the exact one: the end-to-end check (and the benchmark,
``benchmarks/bench_secagg_network.py``) of long vector sums, with no patient data involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from phds.analyses.base import Analysis, Final, LocalStep, NextRound, SecureLayout, released
from phds.analyses.context import LocalContext
from phds.privacy.aggregates import PROBE_MAX_LENGTH, ProbeAggregate, probe_vector

PROBE_SCALE = 2**20
"""Fixed point of the secure probe sum: entries are within [−1, 1), so each is rounded to 2⁻²⁰ and a
sum of m entries is within m · 2⁻²¹ of the exact one."""


class NoOpParams(BaseModel):
    """``vector_length``: how many probe numbers each node releases (0: none)."""

    model_config = ConfigDict(extra="forbid")

    vector_length: int = Field(0, ge=0, le=PROBE_MAX_LENGTH)


def probe_seed(hospital: str) -> str:
    """The public seed of one hospital's probe."""
    return f"phds-probe-v1:{hospital}"


class NoOp(Analysis[NoOpParams]):
    """Do nothing at each node; report which hospitals answered (and check the probe's sum)."""

    name: ClassVar[str] = "system.noop"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "No-op round trip"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "none"
    secure_aggregation_support: ClassVar[bool] = True
    # It reads no data, so it meets any DP requirement at no cost: the gate's DP step spends nothing on it.
    dp_support: ClassVar[bool] = True
    dp_secure_support: ClassVar[bool] = True
    params_model = NoOpParams

    def local(self, ctx: LocalContext, params: NoOpParams) -> LocalStep:
        if not params.vector_length:
            return LocalStep([])
        seed = probe_seed(ctx.hospital)
        return LocalStep([ProbeAggregate("probe", seed, params.vector_length)])

    def combine(
        self,
        params: NoOpParams,
        round_no: int,
        state: Mapping[str, Any],
        released_by: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        answered = sorted(released_by)
        if not params.vector_length:
            return Final({"answered": answered})
        total = np.zeros(params.vector_length)
        for hospital in answered:
            total += np.asarray(released(released_by[hospital]).probe("probe").values, dtype=float)
        seeds = [probe_seed(h) for h in answered]
        return Final({"answered": answered, "vector": _check(total, seeds, secure=False)})

    def secure_layout(
        self, params: NoOpParams, round_no: int, state: Mapping[str, Any]
    ) -> SecureLayout | None:
        if not params.vector_length:
            return None
        return SecureLayout((("probe", params.vector_length),), scale=PROBE_SCALE, clip=1.0)

    def secure_summands(
        self, params: NoOpParams, round_no: int, state: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {"probe": released(payload).probe("probe").values}

    def combine_secure(
        self,
        params: NoOpParams,
        round_no: int,
        state: Mapping[str, Any],
        sums: Mapping[str, Any],
        contributors: list[str],
    ) -> Final | NextRound:
        seeds = [probe_seed(h) for h in sorted(contributors)]
        return Final({"answered": sorted(contributors), "vector": _check(sums["probe"], seeds, secure=True)})


def _check(total: Any, seeds: list[str], *, secure: bool) -> dict[str, Any]:
    """The network sum's size and its largest distance from the sum recomputed from the public seeds."""
    total = np.asarray(total, dtype=float)
    out: dict[str, Any] = {"length": int(total.size), "secure": secure, "first": total[:5].tolist()}
    if seeds:
        exact = sum((probe_vector(seed, int(total.size)) for seed in seeds), np.zeros(total.size))
        out["max_abs_error"] = float(np.max(np.abs(total - exact))) if total.size else 0.0
        out["error_bound"] = len(seeds) * 0.5 / PROBE_SCALE if secure else 0.0
    return out
