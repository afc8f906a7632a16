"""Backbones from a config's ``model`` section: any timm name, the suite's sigmoid ViTs included.

Shared by pretraining (``methods/``) and evaluation (``eval/run.py``), so evaluation never
imports the training objectives to build a network.
"""

from __future__ import annotations

import timm
from lightly.models.modules import MaskedVisionTransformerTIMM
from omegaconf import DictConfig
from torch import nn

from ..errors import UserError
from .vit import MODEL_NAMES


def build_backbone(model_cfg: DictConfig) -> nn.Module:
    """A headless timm ViT (``num_classes=0``: forward returns the pooled class token)."""
    kwargs = dict(num_classes=0, drop_path_rate=model_cfg.drop_path_rate)
    if model_cfg.name.endswith("_sigmoid"):
        kwargs.update(attention=model_cfg.attention, sigmoid_bias=model_cfg.sigmoid_bias)
    try:
        return timm.create_model(model_cfg.name, pretrained=False, **kwargs)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise UserError(
                f"model.name={model_cfg.name!r} is not a timm model; sigmoid ViTs: {', '.join(MODEL_NAMES)}"
            ) from None
        raise


def check_image_size(backbone: nn.Module, image_size: int, model_name: str) -> None:
    """The data's image size must tile into the ViT's patches and match its position table."""
    patch_embed = getattr(backbone, "patch_embed", None)
    if patch_embed is None:
        return
    patch = patch_embed.patch_size[0]
    if image_size % patch:
        raise UserError(f"data.image_size={image_size} is not divisible by the patch size {patch} of {model_name}")
    expected = patch_embed.img_size[0] if patch_embed.img_size is not None else image_size
    if image_size != expected and not getattr(patch_embed, "dynamic_img_size", False):
        raise UserError(
            f"data.image_size={image_size} but {model_name} takes {expected} px images; "
            f"choose a model built for {image_size} px"
        )


def masked_encoder(vit: nn.Module) -> MaskedVisionTransformerTIMM:
    """lightly's token-dropping wrapper around our ViT (shares its parameters). Its mask token
    is frozen: the encoder gets visible tokens only, so it would never receive a gradient."""
    encoder = MaskedVisionTransformerTIMM(vit, weight_initialization="skip", pos_embed_initialization="skip")
    encoder.mask_token.requires_grad_(False)
    return encoder
