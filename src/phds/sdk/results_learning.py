"""The typed result of ``learning.fedavg`` / ``learning.fedprox``: :class:`FitResult`.

    fit = hub.fit(dataset="cnsim", outcome="DIS_DIAB", numeric=["LAB_HDL", "LAB_GLUC_ADJUSTED"])
    fit.to_frame()            # coefficients on the features' scale (logistic), or the layers of an MLP
    fit.metrics               # AUROC, AUPRC, Brier per hospital and pooled
    fit.curve                 # the network training loss at each round's global model
    fit.plot("roc.png", kind="roc")          # or "calibration", "convergence"
    fit.predict_proba(frame)  # the released model's risk for rows of a DataFrame

Only what the gates released is here: the model (when every evaluating hospital accepted it), the
gated metrics and the binned counts they were pooled from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from phds.errors import InputError
from phds.protocol.studies import StudyView
from phds.sdk.results import StudyResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PlotKind = Literal["roc", "calibration", "convergence"]


class FitResult(StudyResult):
    """A federated model, its evaluation and its training curve."""

    analysis = "learning.fedavg"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        raw = self.raw
        self.algorithm: str = str(raw.get("algorithm") or "")
        self.rounds: int = int(raw.get("rounds") or 0)
        self.hospitals: list[str] = list(raw.get("hospitals") or [])
        self.skipped: dict[str, int] = dict(raw.get("skipped") or {})
        self.model: dict[str, Any] = dict(raw.get("model") or {})
        self.coefficients: dict[str, float] | None = raw.get("coefficients")
        self.roc: list[tuple[float, float]] = [(float(a), float(b)) for a, b in raw.get("roc") or []]
        self.notes: list[str] = list(raw.get("notes") or [])
        self._metrics: dict[str, Any] = dict(raw.get("metrics") or {})
        self._params: dict[str, Any] = dict(study.spec.analysis.params)

    @property
    def released(self) -> bool:
        """Whether the model itself left the gates (every evaluating hospital accepted it)."""
        return self.model.get("weights") is not None

    def to_frame(self, what: Literal["model", "metrics"] = "model") -> pd.DataFrame:
        """``model``: the logistic coefficients on the features' own scale (``term``, ``estimate``), or
        for an MLP one row per layer (``inputs``, ``outputs``, ``n_params``, ``weight_norm``);
        ``metrics``: :attr:`metrics`."""
        if what == "metrics":
            return self.metrics
        if not self.released:
            return pd.DataFrame(columns=["estimate"]).rename_axis("term")
        if self.coefficients is not None:
            rows = [{"term": k, "estimate": float(v)} for k, v in self.coefficients.items()]
            return pd.DataFrame(rows).set_index("term")
        shape, w = self._shape_and_weights()
        layers = []
        for i, (weights, bias) in enumerate(shape.unpack(w)):
            layers.append({"layer": i + 1, "inputs": weights.shape[0], "outputs": weights.shape[1],
                           "n_params": weights.size + bias.size,
                           "weight_norm": float(np.linalg.norm(weights))})  # fmt: skip
        return pd.DataFrame(layers).set_index("layer")

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per hospital and a ``pooled`` row: n, AUROC, AUPRC, Brier score, and whether the
        values come from the risk bins (``from_bins``) rather than the node's exact computation."""
        cols = ["n", "auroc", "auprc", "brier", "from_bins"]
        rows = [{"hospital": h, **{c: m.get(c) for c in cols}}
                for h, m in sorted(self._metrics.get("per_hospital", {}).items())]  # fmt: skip
        pooled = self._metrics.get("pooled") or {}
        rows.append({"hospital": "pooled", **{c: pooled.get(c) for c in cols[:4]}, "from_bins": True})
        return pd.DataFrame(rows, columns=["hospital", *cols]).set_index("hospital")

    @property
    def calibration(self) -> pd.DataFrame:
        """The pooled calibration: per risk bin its range, rows and observed rate of the outcome."""
        return pd.DataFrame((self._metrics.get("pooled") or {}).get("calibration") or [])

    @property
    def curve(self) -> pd.DataFrame:
        """Per training round: the network's mean log-loss at that round's global model (None under DP)
        and how many hospitals trained."""
        rows = [{"round": e["round"], "loss": e.get("loss"), "hospitals": e.get("hospitals")}
                for e in self.raw.get("curve") or []]  # fmt: skip
        return pd.DataFrame(rows, columns=["round", "loss", "hospitals"])

    def weights_by_round(self) -> pd.DataFrame:
        """A logistic model's standardised weights after each round (rows: rounds; columns: terms)."""
        names = ["(Intercept)", *self.model.get("columns", [])]
        rows = {e["round"]: e["weights"] for e in self.raw.get("curve") or [] if "weights" in e}
        return pd.DataFrame.from_dict(rows, orient="index", columns=names).rename_axis("round")

    def _shape_and_weights(self) -> tuple[Any, np.ndarray]:
        from phds.analyses.learning_models import shapes

        cols = self.model.get("columns") or []
        shape = shapes(str(self.model.get("kind")), len(cols), list(self.model.get("hidden") or []))
        return shape, np.asarray(self.model["weights"], dtype=float)

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """*frame*'s rows as the model's inputs: numeric features standardised as at the nodes, then one
        indicator per non-reference declared level."""
        feats = self._params.get("features") or {}
        std = self.model.get("standardisation") or {}
        parts = []
        for var in feats.get("numeric", []):
            if var not in frame:
                raise InputError(f"the frame has no column {var!r}", field="X")
            mean, sd = float(std.get("mean", {}).get(var, 0.0)), float(std.get("sd", {}).get(var, 1.0))
            parts.append((frame[var].to_numpy(dtype=float) - mean) / sd)
        for var, levels in (feats.get("categorical") or {}).items():
            if var not in frame:
                raise InputError(f"the frame has no column {var!r}", field="X")
            values = frame[var].map(_level).astype(str)
            parts.extend((values == lv).to_numpy(dtype=float) for lv in levels[1:])
        return np.column_stack(parts) if parts else np.zeros((len(frame), 0))

    def predict_proba(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The released model's predicted risk for each row: a DataFrame with the feature columns, or an
        array already in the model's input layout (standardised, indicators)."""
        if not self.released:
            raise InputError("the model was withheld at evaluation; it cannot predict", field="model")
        from phds.analyses.learning_models import predict_proba

        shape, w = self._shape_and_weights()
        inputs = self.design(x) if isinstance(x, pd.DataFrame) else np.asarray(x, dtype=float)
        return predict_proba(shape, w, inputs)

    def plot(self, path: str | Path | None = None, *, kind: PlotKind = "roc") -> Figure:
        """The pooled ROC curve, the calibration by risk bin, or the convergence of the training loss;
        also written to *path* (.png/.svg) when given."""
        from phds.sdk.plots_learning import plot_fit

        return plot_fit(self, kind, path)

    def summary(self) -> str:
        lines = [self._header(), "", f"{self.algorithm} · {self.model.get('kind')} · {self.rounds} rounds"]
        lines += ["", self.to_frame().to_string(), "", self.metrics.to_string()]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


class FedProxResult(FitResult):
    analysis = "learning.fedprox"


def _level(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


__all__ = ["FedProxResult", "FitResult"]
