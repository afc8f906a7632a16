"""BYOL (Grill et al., NeurIPS 2020) with the EMA scaling rule (Busbridge et al., NeurIPS 2023).

Online: backbone -> projector (4096 hidden, BN + ReLU -> 256) -> predictor (256 -> 4096 -> 256),
lightly's heads. Target: an EMA of backbone + projector, momentum
rho(p) = 1 - (1 - rho_base)(cos(pi p) + 1) / 2 at the fraction p of samples seen, raised to
kappa = effective batch / base batch (the rule; ``method.ema_scaling_rule=false`` turns it off).
Loss: 2 - 2 cos(prediction, target projection), averaged over both view orders.
The target moves once per optimizer step, not per micro-batch.
"""
from __future__ import annotations

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from ..ema import EMATarget
from ..errors import UserError
from .base import SSLMethod


class BYOL(SSLMethod):
    def __init__(self, cfg: DictConfig, num_classes: int) -> None:
        super().__init__(cfg, num_classes)
        m = cfg.method
        if cfg.data.num_views != 2:
            raise UserError(f"byol takes 2 views, got data.num_views={cfg.data.num_views}")
        self.projection_head = BYOLProjectionHead(self.backbone.num_features, m.proj_hidden_dim, m.proj_output_dim)
        self.prediction_head = BYOLPredictionHead(m.proj_output_dim, m.pred_hidden_dim, m.proj_output_dim)
        self.target = EMATarget(self.online_network(), m.momentum_base, "cosine")
        self.criterion = NegativeCosineSimilarity()

    def online_network(self) -> nn.Module:
        return nn.Sequential(self.backbone, self.projection_head)

    def configure_optimizers(self):
        out = super().configure_optimizers()
        self.target.kappa = self.scaled.kappa if self.cfg.method.ema_scaling_rule else 1.0
        rank_zero_info(f"[scaling] EMA momentum: rho(p)^{self.target.kappa:g}, rho_base {self.target.rho_base} "
                       f"-> {self.target.momentum_at(0.0):.6g} at the start")
        return out

    def on_train_start(self) -> None:
        super().on_train_start()
        if self.logger is not None:
            self.logger.log_metrics({"scaling/ema_kappa": self.target.kappa,
                                     "scaling/ema_momentum_start": self.target.momentum_at(0.0)})

    def training_step(self, batch, batch_idx: int):
        views, targets = batch
        x = torch.cat(views)
        features = self.backbone(x)
        p0, p1 = self.prediction_head(self.projection_head(features)).chunk(2)
        t0, t1 = self.target(x).chunk(2)
        # NegativeCosineSimilarity is -cos: 2 - 2 cos = 2 + 2 * (-cos).
        loss = 2 + (self.criterion(p0, t1) + self.criterion(p1, t0))
        momentum = self.target.momentum_at(self.training_progress())
        self.log_dict({"train_loss": loss, "ema_momentum": momentum}, prog_bar=True, sync_dist=True,
                      batch_size=len(targets))
        return loss + self.online_probe(features[: len(targets)], targets, batch_idx)

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        # Lightning calls this once per optimizer step (after all accumulated micro-batches).
        self.target.update(self.online_network(), self.target.momentum_at(self.training_progress()))
