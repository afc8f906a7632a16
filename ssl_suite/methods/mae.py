"""MAE with the suite's attention in the encoder and the decoder.

He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, https://arxiv.org/abs/2111.06377.

The encoder (lightly's ``MaskedVisionTransformerTIMM`` over the backbone) sees the class token
and the round(n (1 - ratio)) visible patches only, so sigmoid attention's bias there is
-log(n_visible + 1), and -log(n + 1) in the decoder. Decoder: a linear map to ``decoder_dim``,
mask tokens at the hidden positions, fixed sin-cos positions, ``decoder_depth`` suite blocks,
a linear map to patch pixels. A random ``method.mask_ratio`` (default 0.75, as MAE) of the patches
is hidden per image. Loss: MSE on the hidden patches only, L = mean over hidden patches and pixels
of (x_hat - x)^2, each target patch x normalised by its own mean and variance (``method.norm_pix_loss``).
The backbone keeps timm's initialisation (MAE's code uses xavier_uniform), as under every other
objective here, so comparisons between objectives differ in the objective only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
import torchvision
from lightly.models.utils import get_at_index, normalize_mean_var, patchify, repeat_token, set_at_index, unpatchify
from omegaconf import DictConfig
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor, nn

from ..errors import UserError
from ..models.backbone import masked_encoder
from ..models.decoder import decoder_from_config
from .base import SSLMethod
from .masking import RandomMask, random_masking, with_prefix

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

RECONSTRUCTIONS = 8  # images of a fixed batch shown in TensorBoard each epoch


def mae_loss(pred: Tensor, images: Tensor, masked: Tensor, patch_size: int, norm_pix: bool = True) -> Tensor:
    """Mean squared error between ``pred`` (B, n_masked, p*p*C) and the hidden patches ``masked``."""
    target = get_at_index(patchify(images, patch_size), masked)
    if norm_pix:
        target = normalize_mean_var(target, eps=1e-6)
    return F.mse_loss(pred, target)


class MAE(SSLMethod):
    @classmethod
    def view_range(cls, name: str) -> tuple[int, int | None]:
        return (1, 1)  # one crop + flip per image

    @classmethod
    def check_section(cls, method_cfg: DictConfig) -> None:
        if not 0 < method_cfg.mask_ratio < 1:
            raise UserError(f"config method.mask_ratio must lie in (0, 1), got {method_cfg.mask_ratio}")

    def __init__(self, cfg: DictConfig, num_classes: int) -> None:
        super().__init__(cfg, num_classes)
        method_cfg, vit = cfg.method, cast("VisionTransformer", self.backbone)  # MAE needs a timm ViT backbone
        self.mask_ratio, self.norm_pix = method_cfg.mask_ratio, method_cfg.norm_pix_loss
        self.patch_size = vit.patch_embed.patch_size[0]
        self.num_patches, self.num_prefix = vit.patch_embed.num_patches, vit.num_prefix_tokens
        self.encoder = masked_encoder(vit)
        self.decoder_embed = nn.Linear(vit.embed_dim, method_cfg.decoder_dim)
        self.decoder = decoder_from_config(self.num_patches, self.num_prefix, cfg)
        self.prediction = nn.Linear(method_cfg.decoder_dim, self.patch_size**2 * vit.patch_embed.proj.in_channels)
        self.shown_images: Tensor | None = None  # the fixed batch for reconstructions

    def forward_encoder(self, images: Tensor, keep: Tensor) -> Tensor:
        """(B, prefix + n_keep, D): the class token and the visible patches, encoded."""
        return self.encoder.encode(images, idx_keep=with_prefix(keep, self.num_prefix))

    def forward_decoder(self, tokens: Tensor, keep: Tensor, masked: Tensor) -> Tensor:
        """Pixel predictions (B, n_masked, p*p*C) for the hidden patches."""
        x = self.decoder_embed(tokens)
        full = repeat_token(self.decoder.mask_token, (len(x), self.decoder.sequence_length))
        full = set_at_index(full, with_prefix(keep, self.num_prefix), x.type_as(full))
        decoded = self.decoder(full)  # + sin-cos positions, blocks, norm
        return self.prediction(get_at_index(decoded, masked + self.num_prefix))

    def draw_mask(self, images: Tensor) -> RandomMask:
        return random_masking(len(images), self.num_patches, self.mask_ratio, device=images.device)

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        (images,), targets = batch
        if self.shown_images is None:
            self.shown_images = images[:RECONSTRUCTIONS].detach().clone()
        mask = self.draw_mask(images)
        tokens = self.forward_encoder(images, mask.keep)
        pred = self.forward_decoder(tokens, mask.keep, mask.masked)
        loss = mae_loss(pred, images, mask.masked, self.patch_size, self.norm_pix)
        self.log("train_loss", loss, prog_bar=True, sync_dist=True, batch_size=len(targets))
        return loss + self.online_probe(tokens[:, 0], targets, batch_idx)

    @torch.no_grad()
    def reconstruct(self, images: Tensor, seed: int = 0) -> Tensor:
        """Rows of originals, masked inputs and reconstructions (visible patches pasted back),
        in [0, 1], as one image grid. The mask is seeded: the same patches every epoch."""
        generator = torch.Generator(images.device).manual_seed(seed)
        mask = random_masking(len(images), self.num_patches, self.mask_ratio, images.device, generator)
        pred = self.forward_decoder(self.forward_encoder(images, mask.keep), mask.keep, mask.masked)
        patches = patchify(images, self.patch_size)
        if self.norm_pix:  # back to pixels with each hidden patch's own statistics
            target = get_at_index(patches, mask.masked)
            pred = pred * (target.var(-1, keepdim=True) + 1e-6).sqrt() + target.mean(-1, keepdim=True)
        masked = set_at_index(patches, mask.masked, torch.zeros_like(pred))
        filled = set_at_index(patches, mask.masked, pred.to(patches.dtype))
        channels = images.shape[1]
        rows = [images, unpatchify(masked, self.patch_size, channels), unpatchify(filled, self.patch_size, channels)]
        mean = images.new_tensor(self.cfg.data.mean).view(1, -1, 1, 1)
        std = images.new_tensor(self.cfg.data.std).view(1, -1, 1, 1)
        pixels = torch.cat(rows).mul(std).add(mean).clamp(0, 1)
        return torchvision.utils.make_grid(pixels, nrow=len(images), padding=1)

    def on_train_epoch_end(self) -> None:
        if self.shown_images is not None and isinstance(self.logger, TensorBoardLogger):
            was_training = self.training
            self.eval()
            grid = self.reconstruct(self.shown_images)
            self.train(was_training)
            self.logger.experiment.add_image("mae/reconstructions", grid, self.global_step)
