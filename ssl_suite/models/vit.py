"""Sigmoid-attention ViTs registered under timm names (``timm.create_model`` finds them).

Each name is timm's ``VisionTransformer`` with ``attn_layer=SigmoidAttention``, QK-norm and
LayerScale on (the sigmoid-attention paper's stabilisers), so the state dict is a stock timm
ViT's: ``VisionTransformer(qk_norm=True, init_values=...)`` of the same shape loads it strictly.
``attention="softmax"`` builds the identical network with softmax attention, for comparisons.
"""

from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

from .attention import SigmoidAttention, set_attention

LAYER_SCALE_INIT = 1e-4
WIDTHS = {  # embed_dim, depth, heads
    "nano": (128, 6, 4),
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
}
# (width, patch, image size): ImageNet-scale models and small-image variants for 28-32 px data.
VARIANTS = [
    ("tiny", 16, 224),
    ("small", 16, 224),
    ("base", 16, 224),
    ("nano", 7, 28),
    ("nano", 4, 28),
    ("tiny", 4, 28),
    ("small", 4, 28),
    ("nano", 4, 32),
    ("tiny", 4, 32),
    ("small", 4, 32),
]


def variant_name(width: str, patch: int, img_size: int) -> str:
    return f"vit_{width}_patch{patch}_{img_size}_sigmoid"


def create_sigmoid_vit(
    variant: str, pretrained: bool = False, attention: str = "sigmoid", sigmoid_bias: float | None = None, **kwargs: Any
) -> VisionTransformer:
    model = build_model_with_cfg(
        VisionTransformer,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        attn_layer=SigmoidAttention,
        **kwargs,
    )
    return set_attention(model, attention, sigmoid_bias)


def _cfg(img_size: int) -> dict[str, Any]:
    """The fields timm's own ViT configs carry. No URL: weights come from a local file, e.g.
    pretrained_cfg_overlay=dict(file="backbone.safetensors"). num_classes 0: SSL backbones are
    headless, so an exported backbone loads strictly via pretrained=True. The position table is
    learned at one size: fixed_input_size. crop_pct is the suite's eval transform (ImageNet:
    resize to size / 0.875 and centre-crop, MAE's probe; 28-32 px data: the image as it is)."""
    small = img_size <= 32
    return dict(
        url="",
        num_classes=0,
        input_size=(3, img_size, img_size),
        fixed_input_size=True,
        pool_size=None,
        crop_pct=1.0 if small else 0.875,
        crop_mode="center",
        interpolation="bicubic",
        mean=(0.5, 0.5, 0.5) if small else (0.485, 0.456, 0.406),
        std=(0.5, 0.5, 0.5) if small else (0.229, 0.224, 0.225),
        first_conv="patch_embed.proj",
        classifier="head",
        license="apache-2.0",
    )


default_cfgs = generate_default_cfgs({variant_name(*v): _cfg(v[2]) for v in VARIANTS})


def _build(width: str, patch: int, img_size: int, pretrained: bool, **kwargs: Any) -> VisionTransformer:
    embed_dim, depth, num_heads = WIDTHS[width]
    args = dict(
        img_size=img_size,
        patch_size=patch,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        qk_norm=True,
        init_values=LAYER_SCALE_INIT,
    )
    return create_sigmoid_vit(variant_name(width, patch, img_size), pretrained=pretrained, **{**args, **kwargs})


# One entry point per name, written out so that a reader can grep for it.
@register_model
def vit_tiny_patch16_224_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Tiny/16 at 224 px, sigmoid attention, QK-norm, LayerScale."""
    return _build("tiny", 16, 224, pretrained, **kwargs)


@register_model
def vit_small_patch16_224_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Small/16 at 224 px, sigmoid attention, QK-norm, LayerScale."""
    return _build("small", 16, 224, pretrained, **kwargs)


@register_model
def vit_base_patch16_224_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Base/16 at 224 px, sigmoid attention, QK-norm, LayerScale."""
    return _build("base", 16, 224, pretrained, **kwargs)


@register_model
def vit_nano_patch7_28_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Nano/7 at 28 px (Fashion-MNIST: 4 x 4 patches), sigmoid attention."""
    return _build("nano", 7, 28, pretrained, **kwargs)


@register_model
def vit_nano_patch4_28_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Nano/4 at 28 px (7 x 7 patches), sigmoid attention."""
    return _build("nano", 4, 28, pretrained, **kwargs)


@register_model
def vit_tiny_patch4_28_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Tiny/4 at 28 px, sigmoid attention."""
    return _build("tiny", 4, 28, pretrained, **kwargs)


@register_model
def vit_small_patch4_28_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Small/4 at 28 px, sigmoid attention."""
    return _build("small", 4, 28, pretrained, **kwargs)


@register_model
def vit_nano_patch4_32_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Nano/4 at 32 px (CIFAR: 8 x 8 patches), sigmoid attention."""
    return _build("nano", 4, 32, pretrained, **kwargs)


@register_model
def vit_tiny_patch4_32_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Tiny/4 at 32 px, sigmoid attention."""
    return _build("tiny", 4, 32, pretrained, **kwargs)


@register_model
def vit_small_patch4_32_sigmoid(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Small/4 at 32 px, sigmoid attention."""
    return _build("small", 4, 32, pretrained, **kwargs)


MODEL_NAMES = [variant_name(*v) for v in VARIANTS]
