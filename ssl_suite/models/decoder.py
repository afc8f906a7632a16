"""Transformer stacks outside the backbone (MAE's decoder, I-JEPA's predictor) with the suite's attention.

lightly's ``MaskedVisionTransformerDecoderTIMM`` owns what these share (mask token, fixed 2-D
sin-cos positions, final norm, ``preprocess``/``decode``) but builds timm's softmax ``Block``s;
``SuiteDecoder`` keeps all of it and swaps in timm Blocks whose attention is ``SigmoidAttention``
(the same QK-norm and LayerScale as the backbone), so one config key flips every layer.
"""

from __future__ import annotations

from functools import partial

from lightly.models.modules.masked_vision_transformer_decoder_timm import MaskedVisionTransformerDecoderTIMM
from omegaconf import DictConfig
from timm.models.vision_transformer import Block
from torch import nn

from .attention import SigmoidAttention, set_attention
from .vit import LAYER_SCALE_INIT


def suite_blocks(
    dim: int,
    depth: int,
    num_heads: int,
    attention: str = "sigmoid",
    sigmoid_bias: float | None = None,
    mlp_ratio: float = 4.0,
) -> nn.Sequential:
    """``depth`` pre-norm timm Blocks with QK-norm, LayerScale and the suite's attention."""
    blocks = nn.Sequential(
        *[  # timm wants the attention class itself, so the mode is set after
            Block(
                dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=True,
                qk_norm=True,
                init_values=LAYER_SCALE_INIT,
                norm_layer=partial(nn.LayerNorm, eps=1e-6),  # type: ignore[arg-type]  # timm takes any factory
                attn_layer=SigmoidAttention,
            )
            for _ in range(depth)
        ]
    )
    set_attention(blocks, attention, sigmoid_bias)
    return blocks


class SuiteDecoder(MaskedVisionTransformerDecoderTIMM):
    def __init__(
        self,
        num_patches: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        num_prefix_tokens: int = 1,
        attention: str = "sigmoid",
        sigmoid_bias: float | None = None,
        mlp_ratio: float = 4.0,
    ) -> None:
        if embed_dim % num_heads:
            raise ValueError(f"decoder width {embed_dim} is not divisible by its {num_heads} heads")
        super().__init__(
            num_patches,
            embed_dim,
            depth=0,
            num_heads=num_heads,
            num_prefix_tokens=num_prefix_tokens,
            initialize_weights=False,
        )
        self.blocks = suite_blocks(embed_dim, depth, num_heads, attention, sigmoid_bias, mlp_ratio)
        # lightly's MAE init: normal mask token, sin-cos positions, xavier linears (LayerScale untouched).
        self._initialize_weights()


__all__ = ["SuiteDecoder", "suite_blocks"]


def decoder_from_config(num_patches: int, num_prefix_tokens: int, cfg: DictConfig) -> SuiteDecoder:
    """MAE's decoder / I-JEPA's predictor core as the config sets it (``method.decoder_*``, and the
    backbone's attention in every block)."""
    method, model = cfg.method, cfg.model
    return SuiteDecoder(
        num_patches,
        method.decoder_dim,
        method.decoder_depth,
        method.decoder_heads,
        num_prefix_tokens,
        model.attention,
        model.sigmoid_bias,
    )
