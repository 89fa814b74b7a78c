"""``learning.fedavg`` and ``learning.fedprox``: federated training of a declared model, one engine.

FedAvg (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS, Algorithm 1): each round every node trains the global model on its own training rows
for ``local_epochs`` of mini-batch SGD and releases the change Δ, clipped to L2 norm ``clip_norm``; the
hub moves the global model by the row-weighted mean Σ nⱼΔⱼ / Σ nⱼ. FedProx (Li et al. 2020) is the
same with the proximal term μ/2 ‖w − w_global‖² in every node's local objective, which bounds how far
a node with an unusual case mix drifts from the global model (:mod:`phds.analyses.learning_models`).

Phases, each one round (the round state is the global model and its bookkeeping, nothing per node):

1. ``moments`` (with ``standardise: network``): gated sums n, Σx, Σx² of each numeric feature over the
   training rows; the hub fixes the network means and SDs;
2. ``train`` × ``rounds``: one :class:`~phds.privacy.aggregates.UpdateAggregate` per node (gate rule:
   the policy's ``fl_min_rows``, nfilter.glm, the clip, finiteness, the design, and a global model that
   singles out no row). The first global model is the declared initial one (0, or Glorot from the
   seed) and every node checks it;
3. ``evaluate``: each node scores the final model on its held-out rows and releases AUROC, AUPRC and
   Brier (when it has ≥ k cases and ≥ k non-cases there), counts per risk bin and its acceptance of
   the model (a gated model release bound to the model's hash). The model leaves in the result only if
   every hospital that answered accepted it, and they are a majority of those that trained.

A hospital that does not answer a round (a straggler past ``round_deadline_seconds``, or one that
declined or was refused) is left out from then on and named in the notes.

**Secure aggregation** (:mod:`phds.analyses.learning_secure`): moments and training rounds are
network sums; under it every node also checks that the model it is asked to evaluate is what the last
sum gives. **DP-FedAvg** (the study's ``dp:`` block): each node releases the Gaussian-noised sum of
per-row gradients at the global model clipped to ``clip_norm`` and a noisy count (sensitivity: one
person moves the sum by one clipped gradient, at most ``clip_norm``; :mod:`phds.privacy.dp_learning`),
spending ρ/(rounds + 2) of the study's loss per round on the node's ledger; the hub steps
w ← w − η Σ sums / Σ counts (FedSGD, one gradient step per round; ``local_epochs`` and μ then have no
effect, and the result says so). Evaluation bins are noisy counts and per-hospital metrics come from them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from phds.analyses import learning_node as node
from phds.analyses import learning_secure as sec
from phds.analyses.base import Analysis, Final, LocalStep, NextRound, SecureLayout, released_values
from phds.analyses.context import LocalContext
from phds.analyses.learning_frame import load
from phds.analyses.learning_models import initial_weights
from phds.analyses.learning_node import model_shape, standardisation
from phds.analyses.learning_params import LearningParams
from phds.analyses.learning_result import final
from phds.errors import DisclosureRefused, InputError
from phds.protocol.canonical import canonical_hash


class FederatedLearning(Analysis[LearningParams]):
    """The shared engine (module docstring); subclasses name the algorithm."""

    algorithm: ClassVar[str] = "fedavg"
    version: ClassVar[str] = "1"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "tabular"
    params_model = LearningParams
    dp_support: ClassVar[bool] = True
    secure_aggregation_support: ClassVar[bool] = True

    def check_at_hub(self, params: LearningParams, known_concepts: Any = None) -> None:
        if self.algorithm == "fedavg" and params.mu != 0:
            raise InputError(
                "FedAvg has no proximal term; use learning.fedprox for μ > 0", field="analysis.params.mu"
            )
        if self.algorithm == "fedprox" and params.mu <= 0:
            raise InputError("FedProx needs a proximal weight μ > 0", field="analysis.params.mu")

    def parse_params(self, raw: Mapping[str, Any]) -> LearningParams:
        params = super().parse_params(raw)
        self.check_at_hub(params)
        return params

    def max_rounds(self, params: LearningParams) -> int:
        return params.rounds + 2  # moments, training rounds, evaluation

    def dp_rounds(self, params: LearningParams) -> int:
        """The rounds that release under DP: moments (if any), training, evaluation."""
        return params.rounds + 1 + (sec.first_phase(params) == "moments")

    def round_deadline_seconds(self, params: LearningParams) -> float | None:
        return params.round_deadline_seconds

    # -- node ---------------------------------------------------------------------------------------
    def local(self, ctx: LocalContext, params: LearningParams) -> LocalStep:
        start = time.perf_counter()
        phase = ctx.state.get("phase") or sec.first_phase(params)
        f = params.features
        frame = load(
            ctx.data,
            params.table,
            params.outcome,
            f.numeric,
            dict(f.categorical),
            params.seed,
            params.held_out_fraction,
        )
        if frame.train.y.size < params.min_rows:
            raise DisclosureRefused("this hospital has fewer training rows than the study's min_rows")
        if phase == "moments":
            aggs = node.moments(ctx, params, frame)
        elif phase == "train":
            aggs = node.train(ctx, params, frame, self._check_model(ctx, params, phase))
        elif phase == "evaluate":
            aggs = node.evaluate(ctx, params, frame, self._check_model(ctx, params, phase))
        else:
            raise InputError(f"unknown phase {phase!r} in the round state", field="state")
        return LocalStep(aggs, time.perf_counter() - start)

    def _check_model(self, ctx: LocalContext, params: LearningParams, phase: str) -> np.ndarray:
        """The global model the hub sent, refused unless it is the declared start (first round) or, under
        secure aggregation, what this node's own copy of the last network sum gives."""
        shape = model_shape(params)
        start = initial_weights(params.model.kind, shape.sizes[0], params.model.hidden, params.seed)
        w = np.asarray(ctx.state.get("weights", start.tolist()), dtype=float)
        if w.shape != start.shape or not np.all(np.isfinite(w)):
            raise DisclosureRefused(f"the global model is not {start.size} finite numbers")
        if phase == "train" and int(ctx.state.get("round", 1)) == 1 and not np.array_equal(w, start):
            raise DisclosureRefused("the first global model is not the study's declared initial model")
        if ctx.secure_aggregation and phase == "evaluate":
            last = ctx.memory.recall("secagg:last")
            if last is None or int(last["round"]) != ctx.round_no - 1:
                raise DisclosureRefused("this node holds no network sum the model to evaluate follows from")
            found = self.secure_layout(params, int(last["round"]), last["state"])
            assert found is not None
            expected = self.combine_secure(
                params,
                int(last["round"]),
                last["state"],
                found.unflatten(last["sums"]),
                list(last["contributors"]),
            )
            if not isinstance(expected, NextRound) or canonical_hash(expected.state) != canonical_hash(
                dict(ctx.state)
            ):
                raise DisclosureRefused("the model to evaluate does not follow from the last network sum")
        return w

    # -- hub ----------------------------------------------------------------------------------------
    def combine(
        self,
        params: LearningParams,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        if not released:
            raise InputError("no hospital released a learning round", field="analysis")
        phase = state.get("phase") or sec.first_phase(params)
        values = {h: released_values(p) for h, p in sorted(released.items())}
        if phase == "moments":
            d = len(params.features.numeric)
            sums = {"n": np.zeros(1), "sum_x": np.zeros(d), "sum_x2": np.zeros(d)}
            for v in values.values():
                for key, block in sec.summands("moments", params, v).items():
                    sums[key] = sums[key] + np.asarray(block, dtype=float)
            return self._after_moments(params, sums, sorted(values))
        if phase == "train":
            updates = {h: v["update"] for h, v in values.items()}
            dp = {"gradient_sum" in u["values"] for u in updates.values()}
            if len(dp) != 1:
                raise InputError("hospitals released updates of different kinds", field="analysis")
            n = {h: float(u["n_obs"]["value"]) for h, u in updates.items()}
            if dp == {True}:
                g = sum(np.asarray(u["values"]["gradient_sum"], dtype=float) for u in updates.values())
                total = max(1.0, sum(max(0.0, v) for v in n.values()))
                step = -params.learning_rate * np.asarray(g) / total
                return self._after_train(params, state, step, None, sorted(values), dp=True)
            total = sum(n.values())
            move = sum(n[h] * np.asarray(u["values"]["update"], dtype=float) for h, u in updates.items())
            loss = math.fsum(n[h] * float(u["values"]["loss"]) for h, u in updates.items()) / total
            return self._after_train(params, state, np.asarray(move) / total, loss, sorted(values))
        return final(self.algorithm, params, state, values)

    def _after_moments(
        self, params: LearningParams, sums: Mapping[str, Any], hospitals: list[str]
    ) -> NextRound:
        n = float(np.asarray(sums["n"]).ravel()[0])
        if n < 2:
            raise InputError("too few training rows in the network", field="analysis.params")
        sx, sx2 = np.asarray(sums["sum_x"], dtype=float), np.asarray(sums["sum_x2"], dtype=float)
        mean = sx / n
        var = np.maximum(sx2 - n * mean**2, 0.0) / (n - 1)
        sd = np.sqrt(var)
        flat = [
            var
            for var, s, m in zip(params.features.numeric, sd, mean, strict=True)
            if not s > 1e-12 * max(1.0, abs(float(m)))
        ]
        if flat:
            raise InputError(
                f"{', '.join(map(str, flat))} do not vary in the network (under DP, noisy moments "
                "can do this: declare the means and SDs, preprocessing.standardise: declared)",
                field="analysis.params.features.numeric",
            )
        return NextRound(self._train_state(params, hospitals, mean.tolist(), sd.tolist()))

    def _train_state(
        self, params: LearningParams, hospitals: list[str], mean: list[float], sd: list[float]
    ) -> dict[str, Any]:
        shape = model_shape(params)
        start = initial_weights(params.model.kind, shape.sizes[0], params.model.hidden, params.seed)
        return {
            "phase": "train",
            "round": 1,
            "weights": start.tolist(),
            "mean": mean,
            "sd": sd,
            "hospitals": hospitals,
            "curve": [],
            "skipped": {},
            "dp": False,
        }

    def _after_train(
        self,
        params: LearningParams,
        state: Mapping[str, Any],
        move: np.ndarray,
        loss: float | None,
        hospitals: list[str],
        *,
        dp: bool = False,
    ) -> NextRound:
        current = (
            dict(state)
            if state.get("phase") == "train"
            else self._train_state(params, hospitals, *standardisation(params, state))
        )
        t = int(current["round"])
        skipped = dict(current["skipped"])
        for h in current["hospitals"]:
            if h not in hospitals and h not in skipped:
                skipped[h] = t
        w = np.asarray(current["weights"], dtype=float) + move
        entry: dict[str, Any] = {"round": t, "loss": loss, "hospitals": len(hospitals)}
        if params.model.kind == "logistic":
            entry["weights"] = w.tolist()
        current.update(
            round=t + 1,
            weights=w.tolist(),
            hospitals=hospitals,
            skipped=skipped,
            curve=[*current["curve"], entry],
            dp=dp,
        )
        if t >= params.rounds:
            current["phase"] = "evaluate"
        return NextRound(current)

    # -- secure aggregation -------------------------------------------------------------------------
    def secure_layout(
        self, params: LearningParams, round_no: int, state: Mapping[str, Any]
    ) -> SecureLayout | None:
        return sec.layout(params, state, model_shape(params).n_params)

    def secure_summands(
        self, params: LearningParams, round_no: int, state: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        phase = state.get("phase") or sec.first_phase(params)
        return sec.summands(phase, params, released_values(payload))

    def combine_secure(
        self,
        params: LearningParams,
        round_no: int,
        state: Mapping[str, Any],
        sums: Mapping[str, Any],
        contributors: list[str],
    ) -> Final | NextRound:
        phase = state.get("phase") or sec.first_phase(params)
        if phase == "moments":
            return self._after_moments(params, sums, sorted(contributors))
        n = float(np.asarray(sums["n"]).ravel()[0])
        if n <= 0:
            raise InputError("the network sum holds no rows", field="secure_aggregation")
        move = np.asarray(sums["update"], dtype=float) / n
        loss = float(np.asarray(sums["loss"]).ravel()[0]) / n
        return self._after_train(params, state, move, loss, sorted(contributors))


class FedAvg(FederatedLearning):
    """Federated averaging (McMahan et al. 2017)."""

    name: ClassVar[str] = "learning.fedavg"
    title: ClassVar[str] = "Federated learning: FedAvg"
    algorithm: ClassVar[str] = "fedavg"


class FedProx(FederatedLearning):
    """FedAvg with the proximal term μ/2 ‖w − w_global‖² (Li et al. 2020)."""

    name: ClassVar[str] = "learning.fedprox"
    title: ClassVar[str] = "Federated learning: FedProx"
    algorithm: ClassVar[str] = "fedprox"


__all__ = ["FedAvg", "FedProx", "FederatedLearning"]
