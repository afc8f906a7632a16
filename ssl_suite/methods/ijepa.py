"""I-JEPA with the suite's attention in both encoders and the predictor.

Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture",
CVPR 2023, https://arxiv.org/abs/2301.08243.

Per image: one context block and ``num_targets`` target blocks (``methods/masking.py``).
The target encoder, an EMA of the context encoder (linear schedule ``momentum_base`` -> 1,
raised to kappa by the EMA scaling rule, ``ssl_suite.scaling``), encodes the whole image without gradient; its patch
outputs, layer-normed without affine parameters, at the target blocks are the targets. The
context encoder sees the class token (I-JEPA's ViT has none) and the context patches only; the
predictor, a narrow stack of suite blocks, gets them with mask tokens at the target positions and
predicts the targets. Loss: smooth L1 between predictions and targets, averaged over target blocks,
patches and channels, as the official code does (the paper writes the squared L2 distance).
Sigmoid attention's bias follows each call's number of keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from lightly.models.utils import apply_masks, get_at_index
from omegaconf import DictConfig
from torch import Tensor, nn

from ..ema import EMATarget
from ..errors import UserError
from ..models.backbone import masked_encoder
from ..models.decoder import SuiteDecoder, decoder_from_config
from .base import EMATargetMethod
from .masking import multiblock_masks, with_prefix

if TYPE_CHECKING:
    from lightly.models.modules import MaskedVisionTransformerTIMM
    from timm.models.vision_transformer import VisionTransformer


class Predictor(nn.Module):
    """Context tokens + one query per target patch -> predicted target-encoder outputs."""

    def __init__(self, dim: int, decoder: SuiteDecoder) -> None:
        super().__init__()
        width = decoder.pos_embed.shape[-1]
        self.embed = nn.Linear(dim, width)
        self.decoder = decoder
        self.proj = nn.Linear(width, dim)

    def forward(self, context: Tensor, context_idx: Tensor, target_idx: list[Tensor]) -> Tensor:
        """context (B, Nc, D) at token positions context_idx (B, Nc); target_idx: T x (B, Nt)
        token positions. Returns (T * B, Nt, D), target block major (as ``apply_masks``)."""
        positions = self.decoder.pos_embed.expand(len(context), -1, -1)
        x = self.embed(context) + get_at_index(positions, context_idx)
        queries = torch.cat([get_at_index(positions, idx) for idx in target_idx]) + self.decoder.mask_token
        x = torch.cat([x.repeat(len(target_idx), 1, 1), queries], dim=1)
        return self.proj(self.decoder.decode(x)[:, context.shape[1] :])


class IJEPA(EMATargetMethod):
    RANGES = ("target_scale", "target_aspect", "context_scale")  # [low, high] pairs of the method section

    @classmethod
    def view_range(cls, name: str) -> tuple[int, int | None]:
        return (1, 1)  # one image: context and targets are blocks of it

    @classmethod
    def check_section(cls, method_cfg: DictConfig) -> None:
        for key in cls.RANGES:
            lo_hi = list(method_cfg[key])
            if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
                raise UserError(f"config method.{key} must be [low, high] with 0 < low <= high, got {lo_hi}")

    # "We use the target-encoder for evaluation and average pool its output" (Assran et al. 2023,
    # https://arxiv.org/abs/2301.08243, appendix A.1).
    ema_schedule = "linear"
    encoder_prefixes = {"online": "backbone.", "target": "target.model.vit."}
    eval_encoder = "target"

    def __init__(self, cfg: DictConfig, num_classes: int) -> None:
        super().__init__(cfg, num_classes)
        method_cfg, vit = cfg.method, cast("VisionTransformer", self.backbone)  # I-JEPA needs a timm ViT backbone
        self.grid = tuple(vit.patch_embed.grid_size)
        self.num_prefix = vit.num_prefix_tokens
        self.encoder = masked_encoder(vit)
        self.predictor = Predictor(
            vit.embed_dim, decoder_from_config(vit.patch_embed.num_patches, self.num_prefix, cfg)
        )
        self.target = EMATarget(self.encoder, method_cfg.momentum_base, self.ema_schedule)
        self.mask_args = dict(
            num_targets=method_cfg.num_targets,
            target_scale=tuple(method_cfg.target_scale),
            target_aspect=tuple(method_cfg.target_aspect),
            context_scale=tuple(method_cfg.context_scale),
            min_context=method_cfg.min_context,
        )

    def online_network(self) -> nn.Module:
        return self.encoder

    @torch.no_grad()
    def targets(self, images: Tensor, target_idx: list[Tensor]) -> Tensor:
        h = cast("MaskedVisionTransformerTIMM", self.target.model).encode(images)  # the EMA copy of self.encoder
        h = F.layer_norm(h, h.shape[-1:])
        return apply_masks(h, target_idx)

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        (images,), labels = batch
        masks = multiblock_masks(len(images), self.grid, device=images.device, **self.mask_args)
        context_idx = with_prefix(masks.context, self.num_prefix)
        target_idx = [idx + self.num_prefix for idx in masks.targets]
        target = self.targets(images, target_idx)
        context = self.encoder.encode(images, idx_keep=context_idx)
        pred = self.predictor(context, context_idx, target_idx)
        loss = F.smooth_l1_loss(pred, target)
        # Collapse shows first as a shrinking spread of the predictions across patches and images.
        self.log_dict(
            {
                "train_loss": loss,
                "ema_momentum": self.ema_momentum(),
                "pred_std": pred.detach().flatten(0, 1).std(0).mean(),
                "context_patches": float(masks.context.shape[1]),
            },
            prog_bar=True,
            sync_dist=True,
            batch_size=len(labels),
        )
        return loss + self.online_probe(context[:, 0], labels, batch_idx)
