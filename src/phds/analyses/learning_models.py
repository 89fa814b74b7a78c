"""The models a node trains for ``learning.fedavg`` / ``learning.fedprox``: numpy, no researcher code.

Every model is a flat parameter vector ``w`` (float64) and three functions of it: predicted
probabilities, the mean log-loss gradient over a batch and the per-row gradients (which the gate uses
to refuse a global model that makes one row dominate an update). Hub and nodes derive the same
initial vector from the declared seed (:func:`initial_weights`), so nobody chooses it.

* ``logistic`` — ``p = σ(b + xᵀβ)``; the gradient of the mean log-loss is ``Xᵀ(p − y)/n``
  (e.g. Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*, §4.4.1). Starts at 0.
* ``mlp`` — one or two tanh hidden layers and a logistic output, trained by backpropagation
  (Rumelhart, Hinton & Williams 1986); Glorot-uniform initial weights (Glorot & Bengio 2010), biases 0.

Local training (:func:`local_train`) is mini-batch SGD on the mean log-loss plus, for FedProx, the
proximal term ``μ/2 ‖w − w_global‖²`` (Li et al. 2020, "Federated Optimization in Heterogeneous
Networks", MLSys, eq. 2), and an optional L2 penalty ``λ/2 ‖β‖²`` on the non-bias weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def sigmoid(z: Array) -> Array:
    """The logistic function, computed without overflow for either sign."""
    out = np.empty_like(z, dtype=float)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


@dataclass(frozen=True)
class Shapes:
    """The layer sizes of a model over *d* inputs: ``(d, h1, …, 1)``; logistic is ``(d, 1)``."""

    sizes: tuple[int, ...]

    @property
    def n_params(self) -> int:
        return sum((a + 1) * b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    def unpack(self, w: Array) -> list[tuple[Array, Array]]:
        """``[(W, b), …]`` views of *w*, W of shape (in, out); the bias is stored first."""
        layers: list[tuple[Array, Array]] = []
        at = 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            bias = w[at : at + b]
            at += b
            weights = w[at : at + a * b].reshape(a, b)
            at += a * b
            layers.append((weights, bias))
        return layers


def shapes(kind: str, n_inputs: int, hidden: Sequence[int]) -> Shapes:
    if kind == "logistic":
        return Shapes((n_inputs, 1))
    return Shapes((n_inputs, *hidden, 1))


def initial_weights(kind: str, n_inputs: int, hidden: Sequence[int], seed: int) -> Array:
    """The declared starting point: 0 for logistic regression, Glorot-uniform for an MLP (from *seed*)."""
    shape = shapes(kind, n_inputs, hidden)
    w = np.zeros(shape.n_params)
    if kind == "logistic":
        return w
    rng = np.random.default_rng([seed, 0x1A17])
    for weights, _ in shape.unpack(w):
        fan_in, fan_out = weights.shape
        limit = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot & Bengio 2010, eq. 16
        weights[...] = rng.uniform(-limit, limit, size=weights.shape)
    return w


def bias_mask(shape: Shapes) -> Array:
    """1 for weights, 0 for biases (the L2 penalty leaves biases alone)."""
    mask = np.ones(shape.n_params)
    at = 0
    for a, b in zip(shape.sizes[:-1], shape.sizes[1:], strict=True):
        mask[at : at + b] = 0.0
        at += b + a * b
    return mask


def forward(shape: Shapes, w: Array, x: Array) -> tuple[Array, list[Array]]:
    """The output's linear predictor η (n,) and each hidden layer's activations."""
    layers = shape.unpack(w)
    acts: list[Array] = []
    h = x
    for weights, bias in layers[:-1]:
        h = np.tanh(h @ weights + bias)
        acts.append(h)
    weights, bias = layers[-1]
    return (h @ weights + bias)[:, 0], acts


def predict_proba(shape: Shapes, w: Array, x: Array) -> Array:
    eta, _ = forward(shape, w, x)
    return sigmoid(eta)


def row_gradients(shape: Shapes, w: Array, x: Array, y: Array) -> Array:
    """The log-loss gradient of every row (n × n_params), in the layout of *w*."""
    eta, acts = forward(shape, w, x)
    delta = (sigmoid(eta) - y)[:, None]  # ∂ℓ/∂η of the log-loss
    inputs = [x, *acts]
    layers = shape.unpack(w)
    parts: list[Array] = []
    for i in range(len(layers) - 1, -1, -1):
        a_in = inputs[i]
        grad_w = (a_in[:, :, None] * delta[:, None, :]).reshape(x.shape[0], -1)
        parts.append(np.hstack([delta, grad_w]))  # bias first, as in unpack
        if i > 0:
            delta = (delta @ layers[i][0].T) * (1.0 - acts[i - 1] ** 2)  # tanh' = 1 − tanh²
    return np.hstack(parts[::-1])


def mean_gradient(shape: Shapes, w: Array, x: Array, y: Array) -> Array:
    """The gradient of the mean log-loss over the rows of *x* (backpropagation without per-row arrays)."""
    n = max(1, x.shape[0])
    eta, acts = forward(shape, w, x)
    delta = ((sigmoid(eta) - y) / n)[:, None]
    inputs = [x, *acts]
    layers = shape.unpack(w)
    parts: list[Array] = []
    for i in range(len(layers) - 1, -1, -1):
        parts.append(np.concatenate([delta.sum(axis=0), (inputs[i].T @ delta).ravel()]))
        if i > 0:
            delta = (delta @ layers[i][0].T) * (1.0 - acts[i - 1] ** 2)
    return np.concatenate(parts[::-1])


def log_loss(shape: Shapes, w: Array, x: Array, y: Array) -> float:
    """The mean log-loss (cross-entropy) of the rows, computed from η (stable for large |η|)."""
    eta, _ = forward(shape, w, x)
    losses = np.logaddexp(0.0, eta) - y * eta
    return float(np.mean(losses)) if losses.size else 0.0


@dataclass(frozen=True)
class Training:
    """The local optimiser's settings, as the study declared them."""

    epochs: int
    learning_rate: float
    batch_size: int  # 0: full batch
    mu: float = 0.0  # FedProx proximal weight
    l2: float = 0.0


def local_train(shape: Shapes, w_global: Array, x: Array, y: Array, how: Training, seed: list[int]) -> Array:
    """Mini-batch SGD from the global model; returns the local model (module docstring)."""
    w = np.array(w_global, dtype=float, copy=True)
    mask = bias_mask(shape)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    batch = how.batch_size if 0 < how.batch_size < n else n
    for _ in range(how.epochs):
        order = rng.permutation(n) if batch < n else np.arange(n)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            grad = mean_gradient(shape, w, x[idx], y[idx])
            if how.l2:
                grad += how.l2 * mask * w
            if how.mu:
                grad += how.mu * (w - w_global)  # ∇ of μ/2 ‖w − w_global‖² (Li et al. 2020)
            w -= how.learning_rate * grad
    return w


def clip_l2(v: Array, bound: float) -> tuple[Array, bool]:
    """*v* scaled down to L2 norm *bound* when it is longer; and whether it was (Abadi et al. 2016)."""
    norm = float(np.linalg.norm(v))
    if norm <= bound or norm == 0.0:
        return v, False
    return v * (bound / norm), True


__all__ = [
    "Shapes",
    "Training",
    "clip_l2",
    "initial_weights",
    "local_train",
    "log_loss",
    "mean_gradient",
    "predict_proba",
    "row_gradients",
    "shapes",
    "sigmoid",
]
