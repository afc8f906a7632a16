"""Sigmoid attention in plain PyTorch: the definition every faster path is tested against.

    out = sigmoid(q k^T * scale + bias) v

Ramapuram et al., "Theory, Analysis, and Best Practices for Sigmoid Self-Attention" (ICLR 2025).
``bias`` defaults to -log(n_keys), with n_keys read from ``k`` at call time, so an encoder
that sees only the visible tokens (MAE) gets the bias of the keys it actually attends to.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def default_bias(n_keys: int) -> float:
    """The paper's bias b = -log(n): keeps the attention row sums near 1 at initialisation."""
    return -math.log(n_keys)


def check_inputs(q: Tensor, k: Tensor, v: Tensor) -> None:
    """One clear ValueError for inputs no sigmoid-attention path can take."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise ValueError(f"sigmoid_attention: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"sigmoid_attention: {name} must be a floating-point tensor, got {t.dtype}")
        if t.dim() != 4:
            raise ValueError(f"sigmoid_attention: {name} must be shaped (batch, heads, n, d), got {tuple(t.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"sigmoid_attention: q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"sigmoid_attention: q, k, v devices differ: {q.device}, {k.device}, {v.device}")
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3]:
        raise ValueError(
            "sigmoid_attention: expected q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"sigmoid_attention: q and k head dims differ: {q.shape[-1]} vs {k.shape[-1]}")
    if q.shape[-1] > 256 or v.shape[-1] > 256:
        raise ValueError(f"sigmoid_attention: head dim must be at most 256, got {max(q.shape[-1], v.shape[-1])}")


def resolve(q: Tensor, k: Tensor, bias: float | None, scale: float | None) -> tuple[float, float]:
    """Defaults resolved at call time: bias -log(n_keys), scale d^-1/2."""
    bias = default_bias(k.shape[-2]) if bias is None else float(bias)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    return bias, scale


def sigmoid_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias: float | None = None,
    scale: float | None = None,
    attn_mask: Tensor | None = None,
) -> Tensor:
    """Materialised sigmoid attention, shapes (B, H, Nq, D), (B, H, Nk, D), (B, H, Nk, Dv).

    ``attn_mask`` (optional, broadcastable to (B, H, Nq, Nk)): a boolean mask keeps the keys
    where it is True (the others contribute exactly 0); a float mask is added to the logits.
    """
    check_inputs(q, k, v)
    bias, scale = resolve(q, k, bias, scale)
    logits = torch.matmul(q, k.transpose(-2, -1)) * scale + bias
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        logits = logits + attn_mask
    p = torch.sigmoid(logits)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        p = p.masked_fill(~attn_mask, 0.0)
    return torch.matmul(p, v)
