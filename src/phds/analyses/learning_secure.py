"""Federated learning under secure aggregation: the moments and training rounds as network sums.

* **Moments** (``standardise: network``): each node's ``n``, ``Σx`` and ``Σx²`` of every numeric
  feature over its training rows;
* **Training**: each node's ``n``, its clipped update weighted by its rows ``n·Δ`` and ``n·loss``, so
  the hub's FedAvg step w ← w + Σ n·Δ / Σ n (McMahan et al. 2017, Algorithm 1, with the server learning
  rate 1) needs nothing but the sums;
* **Evaluation** stays in the clear: per-hospital metrics are gated values in their own right, and
  every node checks that the model it evaluates is the one the last network sum gives.

Fixed point: :data:`SCALE` = 2²⁰ and :data:`CLIP` = 2³⁷ (32 parties · 2³⁷ · 2²⁰ = 2⁶², the ring's
headroom), as for ``stats.glm``. Each entry is rounded to 2⁻²⁰, so a summed entry is within m · 2⁻²¹ of
the exact one (m contributors) and the averaged update within m · 2⁻²¹ / Σn. A node whose entry
exceeds 2³⁷ refuses rather than wrap; |n·Δ| ≤ n · clip_norm keeps that far away for any real hospital.
The layout follows from the parameters and the phase in the round state alone, never from data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phds.analyses.base import SecureLayout
from phds.analyses.learning_params import LearningParams
from phds.errors import InputError

SCALE = 2**20
CLIP = float(2**37)


def layout(params: LearningParams, state: Mapping[str, Any], n_params: int) -> SecureLayout | None:
    phase = state.get("phase") or first_phase(params)
    if phase == "moments":
        d = len(params.features.numeric)
        return SecureLayout((("n", 1), ("sum_x", d), ("sum_x2", d)), scale=SCALE, clip=CLIP)
    if phase == "train":
        return SecureLayout((("n", 1), ("update", n_params), ("loss", 1)), scale=SCALE, clip=CLIP)
    return None


def first_phase(params: LearningParams) -> str:
    return "moments" if params.preprocessing.standardise == "network" and params.features.numeric else "train"


def summands(phase: str, params: LearningParams, values: Mapping[str, Any]) -> dict[str, Any]:
    """A node's blocks from its gate-released values (``moments`` sums or the ``update`` model)."""
    if phase == "moments":
        sums = values["moments"]
        if sums["values"] is None:
            raise InputError("the moments were withheld by the gate", field="secure_aggregation")
        v = sums["values"]
        return {
            "n": [float(sums["n"]["value"])],
            "sum_x": [float(v[f"x:{var}"]) for var in params.features.numeric],
            "sum_x2": [float(v[f"x2:{var}"]) for var in params.features.numeric],
        }
    model = values["update"]
    n = float(model["n_obs"]["value"])
    update = [n * float(u) for u in model["values"]["update"]]
    return {"n": [n], "update": update, "loss": [n * float(model["values"].get("loss", 0.0))]}


__all__ = ["CLIP", "SCALE", "first_phase", "layout", "summands"]
