"""FlashSigmoid: sigmoid attention, out = sigmoid(q k^T * scale + b) v, b = -log(n_keys).

One entry point, ``sigmoid_attention(q, k, v, bias=None, scale=None)``, for tensors shaped
(batch, heads, n, d). Usable without ssl_suite.
"""
from __future__ import annotations

from torch import Tensor

from . import reference
from .reference import default_bias

__all__ = ["sigmoid_attention", "default_bias", "reference"]


def sigmoid_attention(q: Tensor, k: Tensor, v: Tensor, bias: float | None = None,
                      scale: float | None = None) -> Tensor:
    """Sigmoid attention with autograd; see ``reference.sigmoid_attention`` for the definition."""
    return reference.sigmoid_attention(q, k, v, bias=bias, scale=scale)
