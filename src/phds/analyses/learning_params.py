"""The study parameters of ``learning.fedavg`` and ``learning.fedprox`` (requester-facing errors).

Everything the node runs is declared here: the table, the binary outcome, the features (numeric, and
categorical with their levels), the preprocessing, the model and the optimiser. No researcher code
runs at a node.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from phds.analyses.learning_eval import DEFAULT_BINS
from phds.analyses.tables import VARIABLE_PATTERN, TableSpec

Variable = Annotated[str, StringConstraints(pattern=VARIABLE_PATTERN, max_length=100)]
Level = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Features(_Strict):
    """The model's inputs: numeric variables, and categorical ones with their declared levels (the first
    is the reference; a value outside the levels is an error at the node)."""

    numeric: list[Variable] = Field(default_factory=list, max_length=200)
    categorical: dict[Variable, list[Level]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Features:
        if not self.numeric and not self.categorical:
            raise ValueError("declare at least one feature")
        if len(set(self.numeric)) != len(self.numeric) or set(self.numeric) & set(self.categorical):
            raise ValueError("each feature may be declared once")
        for var, levels in self.categorical.items():
            if len(levels) < 2 or len(set(levels)) != len(levels):
                raise ValueError(f"declare at least two distinct levels of {var}")
        return self


class Preprocessing(_Strict):
    """``network``: standardise numeric features with the network's means and SDs, computed in a first
    round of gated sums; ``declared``: with the ``means`` and ``sds`` given here; ``none``: as they are."""

    standardise: Literal["network", "declared", "none"] = "network"
    means: dict[Variable, float] = Field(default_factory=dict)
    sds: dict[Variable, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Preprocessing:
        if self.standardise != "declared" and (self.means or self.sds):
            raise ValueError("means and sds are declared only with standardise: declared")
        if any(v <= 0 for v in self.sds.values()):
            raise ValueError("a declared SD must be positive")
        return self


class ModelSpec(_Strict):
    """``logistic`` regression or a small ``mlp`` (tanh hidden layers, logistic output) in numpy;
    ``torch_mlp`` is the same MLP trained by PyTorch at the node (the optional ``phds[torch]`` extra)."""

    kind: Literal["logistic", "mlp", "torch_mlp"] = "logistic"
    hidden: list[Annotated[int, Field(ge=1, le=64)]] = Field(default_factory=list, max_length=2)
    l2: float = Field(0.0, ge=0, le=100, description="λ of the penalty λ/2 ‖β‖² (biases not penalised)")

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.kind == "logistic" and self.hidden:
            raise ValueError("logistic regression has no hidden layers")
        if self.kind in ("mlp", "torch_mlp") and not self.hidden:
            raise ValueError("an mlp needs one or two hidden layer sizes, e.g. hidden: [8]")
        return self


class LearningParams(_Strict):
    """A federated-learning study (docs/howto/federated-learning.md)."""

    table: TableSpec
    outcome: Variable = Field(description="A 0/1 variable")
    features: Features
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    model: ModelSpec = Field(default_factory=ModelSpec)
    rounds: int = Field(20, ge=1, le=150, description="Training rounds (the global model's updates)")
    local_epochs: int = Field(1, ge=1, le=50, description="Passes over the node's training rows per round")
    learning_rate: float = Field(0.1, gt=0, le=10)
    batch_size: int = Field(64, ge=0, le=1_000_000, description="Rows per SGD step; 0: the whole split")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Initial MLP weights, batches and the split")
    mu: float = Field(0.0, ge=0, le=100, description="FedProx's proximal weight μ")
    clip_norm: float = Field(
        10.0, gt=0, le=1000, description="L2 bound on a node's update (per-row under DP)"
    )
    held_out_fraction: float = Field(0.2, ge=0.05, le=0.5, description="Rows each node keeps for evaluation")
    min_rows: int = Field(
        50, ge=5, description="The fewest training rows a node may train on (with the policy's)"
    )
    round_deadline_seconds: float | None = Field(
        None, gt=0, le=24 * 3600, description="A hospital that has not answered a round this long is skipped"
    )
    eval_bins: list[float] = Field(
        default_factory=lambda: list(DEFAULT_BINS),
        max_length=50,
        description="Cut points of predicted risk for the pooled metrics and calibration; [] for none",
    )

    @field_validator("eval_bins")
    @classmethod
    def _bins(cls, v: list[float]) -> list[float]:
        if any(not 0 < c < 1 for c in v) or any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError("eval_bins are increasing cut points of predicted risk inside (0, 1)")
        return v

    @model_validator(mode="after")
    def _check(self) -> LearningParams:
        if self.outcome in self.features.numeric or self.outcome in self.features.categorical:
            raise ValueError("the outcome cannot also be a feature")
        pre = self.preprocessing
        if pre.standardise == "declared":
            missing = [v for v in self.features.numeric if v not in pre.means or v not in pre.sds]
            if missing:
                raise ValueError(f"declare the mean and SD of {', '.join(missing)}")
        return self

    @property
    def dataset(self) -> str | None:
        """The tabular dataset, if any; the node's audit log records it as the task's source."""
        return self.table.dataset


__all__ = ["Features", "LearningParams", "ModelSpec", "Preprocessing"]
