"""Contrastive methods on M augmented views of each image, sharing one projection head.

- SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
  https://arxiv.org/abs/2002.05709): M = 2, lightly's ``NTXentLoss``, the mean over all 2N anchors of
  -log[ exp(cos(z_i, z_j) / tau) / sum_{k != i} exp(cos(z_i, z_k) / tau) ] (2N-2 negatives per anchor),
  tau = ``method.temperature``.
- Poly-view (Shidani et al., "Poly-View Contrastive Learning", ICLR 2024, https://arxiv.org/abs/2403.05490):
  M >= 2 views per sample and the geometric, arithmetic or multi-crop objective of
  ``ssl_suite.losses.polyview``. SimCLR is its M = 2 case: the same module with a different
  criterion, not a second copy.

Negatives come from every device: both criteria gather embeddings with gradient.
"""

from __future__ import annotations

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from omegaconf import DictConfig
from torch import Tensor

from ..losses import PolyViewLoss
from .base import SSLMethod


class Contrastive(SSLMethod):
    @classmethod
    def view_range(cls, name: str) -> tuple[int, int | None]:
        return (2, 2) if name == "simclr" else (2, None)  # poly-view: any M >= 2

    def __init__(self, cfg: DictConfig, num_classes: int) -> None:
        super().__init__(cfg, num_classes)
        method_cfg = cfg.method
        self.num_views = cfg.data.num_views
        self.projection_head = SimCLRProjectionHead(
            self.backbone.num_features, method_cfg.proj_hidden_dim, method_cfg.proj_output_dim
        )
        if method_cfg.name == "simclr":  # 2 views (view_range above)
            self.criterion = NTXentLoss(temperature=method_cfg.temperature, gather_distributed=True)
        else:
            self.criterion = PolyViewLoss(method_cfg.objective, method_cfg.temperature, gather_distributed=True)

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        views, targets = batch
        features = self.backbone(torch.cat(views))  # one pass over all M views
        z = self.projection_head(features).chunk(self.num_views)
        loss = self.criterion(*z) if isinstance(self.criterion, NTXentLoss) else self.criterion(z)
        self.log("train_loss", loss, prog_bar=True, sync_dist=True, batch_size=len(targets))
        return loss + self.online_probe(features[: len(targets)], targets, batch_idx)


SimCLR = Contrastive  # the M = 2 case, by its paper's name
