"""timm-compatible attention layer with a sigmoid/softmax switch.

Same constructor keywords, forward signature and parameter names (``qkv``, ``q_norm``,
``k_norm``, ``norm``, ``proj``) as ``timm.layers.Attention``, so a state dict moves strictly
between this layer and stock timm. ``attention="sigmoid"`` computes
sigmoid(q k^T * scale + bias) v through ``flash_sigmoid.sigmoid_attention`` (bias None means
-log(n_keys) at run time); ``attention="softmax"`` is timm's computation through SDPA.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import flash_sigmoid
import torch
import torch.nn.functional as F
from flash_sigmoid import reference
from torch import nn

ATTENTION_MODES = ("sigmoid", "softmax")

ModuleT = TypeVar("ModuleT", bound=nn.Module)


class SigmoidAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        attn_head_dim: int | None = None,
        dim_out: int | None = None,
        qkv_bias: bool = False,
        qk_norm: bool = False,
        scale_norm: bool = False,
        proj_bias: bool = True,
        gated: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        norm_layer: type[nn.Module] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        attention: str = "sigmoid",
        sigmoid_bias: float | None = None,
    ) -> None:
        super().__init__()
        if gated:  # timm's keyword, accepted so timm can pass it; an unknown keyword is a TypeError
            raise ValueError("SigmoidAttention: gated attention (timm's gated=True) is not supported")
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        head_dim = attn_head_dim or dim // num_heads
        if attn_head_dim is None and dim % num_heads:
            raise ValueError(f"SigmoidAttention: dim={dim} is not divisible by num_heads={num_heads}")
        if (qk_norm or scale_norm) and norm_layer is None:
            raise ValueError("SigmoidAttention: qk_norm/scale_norm need a norm_layer")
        norm = cast("type[nn.Module]", norm_layer)  # only called under qk_norm/scale_norm: not None (checked above)
        self.num_heads, self.head_dim = num_heads, head_dim
        self.attn_dim = num_heads * head_dim
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, self.attn_dim * 3, bias=qkv_bias, **dd)
        self.q_norm = norm(head_dim, **dd) if qk_norm else nn.Identity()
        self.k_norm = norm(head_dim, **dd) if qk_norm else nn.Identity()
        self.attn_drop = nn.Dropout(attn_drop)
        self.norm = norm(self.attn_dim, **dd) if scale_norm else nn.Identity()
        self.proj = nn.Linear(self.attn_dim, dim_out or dim, bias=proj_bias, **dd)
        self.proj_drop = nn.Dropout(proj_drop)
        self.set_attention(attention, sigmoid_bias)

    def set_attention(self, attention: str, sigmoid_bias: float | None = None) -> None:
        """Flip between sigmoid and softmax without touching the weights."""
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        if attention == "sigmoid" and self.attn_drop.p > 0:
            raise ValueError("attn_drop > 0 is not supported with sigmoid attention (the fused kernels keep no P)")
        self.attention, self.sigmoid_bias = attention, sigmoid_bias

    def extra_repr(self) -> str:
        bias = "-log(n)" if self.sigmoid_bias is None else self.sigmoid_bias
        return f"attention={self.attention}, heads={self.num_heads}" + (
            f", bias={bias}" if self.attention == "sigmoid" else ""
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.attention == "softmax":
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=self.attn_drop.p if self.training else 0.0
            )
        elif attn_mask is not None or is_causal:
            # Masks are rare in ViTs: the materialised path handles them exactly.
            if is_causal:
                attn_mask = torch.ones(N, N, dtype=torch.bool, device=x.device).tril()
            x = reference.sigmoid_attention(q, k, v, bias=self.sigmoid_bias, scale=self.scale, attn_mask=attn_mask)
        else:
            x = flash_sigmoid.sigmoid_attention(q, k, v, bias=self.sigmoid_bias, scale=self.scale)
        x = self.norm(x.transpose(1, 2).reshape(B, N, self.attn_dim))
        return self.proj_drop(self.proj(x))


def set_attention(model: ModuleT, attention: str, sigmoid_bias: float | None = None) -> ModuleT:
    """Switch every SigmoidAttention layer in ``model``; returns the model."""
    for module in model.modules():
        if isinstance(module, SigmoidAttention):
            module.set_attention(attention, sigmoid_bias)
    return model
