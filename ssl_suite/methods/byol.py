"""BYOL with the EMA scaling rule.

BYOL: Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning", NeurIPS 2020,
https://arxiv.org/abs/2006.07733.
EMA scaling rule: Busbridge et al., "How to Scale Your EMA", NeurIPS 2023, https://arxiv.org/abs/2307.13813.

Online: backbone -> projector (``proj_hidden_dim``, BN + ReLU -> ``proj_output_dim``; the paper's 4096 -> 256)
-> predictor (same shape, ``pred_hidden_dim``), lightly's heads. Target: an EMA of backbone + projector,
momentum rho(p) = 1 - (1 - rho_base)(cos(pi p) + 1) / 2 at the fraction p of samples seen, raised to
kappa = effective batch / base batch (the rule; ``method.ema_scaling_rule=false`` turns it off).
Loss: 2 - 2 cos(prediction, target projection), averaged over both view orders (the paper sums them).
The target moves once per optimizer step, not per micro-batch.
"""

from __future__ import annotations

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from omegaconf import DictConfig
from torch import Tensor, nn

from ..ema import EMATarget
from .base import EMATargetMethod


class BYOL(EMATargetMethod):
    # The paper evaluates the online encoder; its EMA target (backbone of the target's
    # Sequential(backbone, projector)) can be chosen with eval.encoder=target.
    ema_schedule = "cosine"
    encoder_prefixes = {"online": "backbone.", "target": "target.model.0."}

    def __init__(self, cfg: DictConfig, num_classes: int) -> None:
        super().__init__(cfg, num_classes)
        method_cfg = cfg.method
        self.projection_head = BYOLProjectionHead(
            self.backbone.num_features, method_cfg.proj_hidden_dim, method_cfg.proj_output_dim
        )
        self.prediction_head = BYOLPredictionHead(
            method_cfg.proj_output_dim, method_cfg.pred_hidden_dim, method_cfg.proj_output_dim
        )
        self.target = EMATarget(self.online_network(), method_cfg.momentum_base, self.ema_schedule)
        self.criterion = NegativeCosineSimilarity()

    def online_network(self) -> nn.Module:
        return nn.Sequential(self.backbone, self.projection_head)

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        views, targets = batch
        x = torch.cat(views)
        features = self.backbone(x)
        p0, p1 = self.prediction_head(self.projection_head(features)).chunk(2)
        t0, t1 = self.target(x).chunk(2)
        # NegativeCosineSimilarity is -cos: 2 - 2 cos = 2 + 2 * (-cos).
        loss = 2 + (self.criterion(p0, t1) + self.criterion(p1, t0))
        self.log_dict(
            {"train_loss": loss, "ema_momentum": self.ema_momentum()},
            prog_bar=True,
            sync_dist=True,
            batch_size=len(targets),
        )
        return loss + self.online_probe(features[: len(targets)], targets, batch_idx)
