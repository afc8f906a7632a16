"""SimCLR (Chen et al., ICML 2020): NT-Xent between two augmented views, 2N-2 negatives per anchor.

lightly's ``NTXentLoss(gather_distributed=True)`` gathers embeddings from every device with
gradient, and its ``SimCLRProjectionHead`` is the MLP head.
"""
from __future__ import annotations

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from omegaconf import DictConfig

from .base import SSLMethod


class SimCLR(SSLMethod):
    def __init__(self, cfg: DictConfig, num_classes: int) -> None:
        super().__init__(cfg, num_classes)
        m = cfg.method
        self.projection_head = SimCLRProjectionHead(self.backbone.num_features, m.proj_hidden_dim, m.proj_output_dim)
        self.criterion = NTXentLoss(temperature=m.temperature, gather_distributed=True)

    def training_step(self, batch, batch_idx: int):
        views, targets = batch
        features = self.backbone(torch.cat(views))  # one pass over both views
        z0, z1 = self.projection_head(features).chunk(2)
        loss = self.criterion(z0, z1)
        self.log("train_loss", loss, prog_bar=True, sync_dist=True, batch_size=len(targets))
        return loss + self.online_probe(features[: len(targets)], targets, batch_idx)
