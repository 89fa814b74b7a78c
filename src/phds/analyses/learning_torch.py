"""``model: {kind: torch_mlp}``: the tanh MLP of :mod:`phds.analyses.learning_models`, trained by PyTorch.

PyTorch is an optional extra (``pip install 'phds[torch]'``, the CPU wheel); it is imported only here, and
only when a node trains a ``torch_mlp`` round, so nothing in the base install loads it. The model, its
flat parameter layout, the initial weights and the batches (numpy's generator from the study's seed)
are those of ``mlp``: PyTorch's autograd replaces the hand-written backpropagation in the local
optimiser only, so the gate's checks (per-row gradients, the global model) and the hub's averaging are
unchanged, and a full-batch ``torch_mlp`` round gives the ``mlp`` round's update to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phds.analyses.learning_models import Array, Shapes, Training, bias_mask
from phds.errors import InputError


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise InputError(
            "this node has no PyTorch (pip install 'phds[torch]'); ask for model kind mlp",
            field="analysis.params.model.kind",
        ) from None
    return torch


def local_train_torch(
    shape: Shapes, w_global: Array, x: Array, y: Array, how: Training, seed: list[int]
) -> Array:
    """Mini-batch SGD from the global model with PyTorch autograd; returns the local model."""
    torch = _torch()
    w = torch.tensor(np.asarray(w_global, dtype=float), dtype=torch.float64, requires_grad=True)
    w0 = torch.tensor(np.asarray(w_global, dtype=float), dtype=torch.float64)
    mask = torch.tensor(bias_mask(shape), dtype=torch.float64)
    xt = torch.tensor(np.asarray(x, dtype=float), dtype=torch.float64)
    yt = torch.tensor(np.asarray(y, dtype=float), dtype=torch.float64)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    batch = how.batch_size if 0 < how.batch_size < n else n
    for _ in range(how.epochs):
        order = rng.permutation(n) if batch < n else np.arange(n)
        for start in range(0, n, batch):
            idx = torch.as_tensor(order[start : start + batch])
            eta = _forward(torch, shape, w, xt[idx])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(eta, yt[idx])
            if how.l2:
                loss = loss + how.l2 / 2 * torch.sum(mask * w * w)
            if how.mu:
                loss = loss + how.mu / 2 * torch.sum((w - w0) ** 2)  # FedProx (Li et al. 2020, eq. 2)
            (grad,) = torch.autograd.grad(loss, w)
            with torch.no_grad():
                w -= how.learning_rate * grad
    return np.asarray(w.detach().numpy(), dtype=float)


def _forward(torch: Any, shape: Shapes, w: Any, x: Any) -> Any:
    """η of the MLP with the flat layout of :meth:`Shapes.unpack` (bias first per layer)."""
    at, h = 0, x
    layers = list(zip(shape.sizes[:-1], shape.sizes[1:], strict=True))
    for i, (a, b) in enumerate(layers):
        bias = w[at : at + b]
        at += b
        weights = w[at : at + a * b].reshape(a, b)
        at += a * b
        h = h @ weights + bias
        if i < len(layers) - 1:
            h = torch.tanh(h)
    return h[:, 0]


__all__ = ["local_train_torch"]
