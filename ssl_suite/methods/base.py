"""What every SSL method shares: the backbone, an online linear probe, optimizer and schedule.

A method subclasses ``SSLMethod`` and writes ``training_step``; everything a Trainer needs
(param groups, learning-rate scaling by the effective batch, warm-up + cosine schedule counted
in epochs) lives here once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from lightly.utils.benchmarking import OnlineLinearClassifier
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler, cosine_schedule
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor, nn

from .. import scaling
from ..checkpoints import BACKBONE_PREFIX, ENCODERS_KEY
from ..data import device_views
from ..ema import EMATarget
from ..errors import UserError
from ..models.backbone import build_backbone, check_image_size
from ..resume import seed_batch

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig

OPTIMIZERS = ("adamw", "sgd", "lars")  # what configure_optimizers builds (optim.name)


class SSLMethod(pl.LightningModule):
    # Where each encoder's backbone lives in the state dict, and the one the method's paper
    # evaluates; written into every checkpoint for export and eval (checkpoints.read_backbone).
    encoder_prefixes: dict[str, str] = {"online": BACKBONE_PREFIX}
    eval_encoder = "online"

    def __init__(self, cfg: DictConfig, num_classes: int) -> None:
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters({"config": OmegaConf.to_container(cfg, resolve=True), "num_classes": num_classes})
        self.cfg = cfg
        self.backbone = build_backbone(cfg.model)
        check_image_size(self.backbone, cfg.data.image_size, cfg.model.name)
        self.device_views = device_views(cfg.data)
        self.online_classifier = None
        if num_classes > 0:
            self.online_classifier = OnlineLinearClassifier(
                self.backbone.num_features, num_classes, topk=(1, min(5, num_classes))
            )
        else:
            rank_zero_info("[data] no labels: the online linear probe is off")

    @classmethod
    def view_range(cls, name: str) -> tuple[int, int | None]:
        """(fewest, most) views per image ``method.name`` takes; None: no upper limit."""
        return (2, 2)

    @classmethod
    def check_views(cls, cfg: DictConfig) -> None:
        lo, hi = cls.view_range(cfg.method.name)
        if not lo <= cfg.data.num_views <= (hi or cfg.data.num_views):
            want = f"{lo}" if lo == hi else f"at least {lo}"
            hint = "; use method.name=polyview for more" if cfg.method.name == "simclr" else ""
            raise UserError(
                f"method.name={cfg.method.name} takes {want} view(s) per image, "
                f"got data.num_views={cfg.data.num_views}{hint}"
            )

    @classmethod
    def check_section(cls, method_cfg: DictConfig) -> None:
        """One-line errors for the ``method`` keys this objective owns (none here)."""

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone(images)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[ENCODERS_KEY] = {"prefixes": dict(self.encoder_prefixes), "default": self.eval_encoder}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Each training batch first seeds this rank's random streams (views, masks, drop path)
        from (seed, rank, batch number); with ``data.augment_on=device`` it becomes M views here."""
        if self._trainer is None or not self.trainer.training:
            return batch
        seed_batch(
            self.cfg.seed, self.trainer.global_rank, self.trainer.fit_loop.epoch_loop.batch_progress.total.ready
        )  # this batch's number
        if self.device_views is not None:
            images, targets = batch
            batch = (self.device_views(images), targets)
        return batch

    def online_probe(self, features: Tensor, targets: Tensor, batch_idx: int) -> Tensor:
        """Train the monitoring probe on detached features; returns its loss to add to the SSL loss
        (0 without labels)."""
        if self.online_classifier is None:
            return features.new_zeros(())
        loss, logs = self.online_classifier.training_step((features.detach(), targets), batch_idx)
        self.log_dict(logs, sync_dist=True, batch_size=len(targets))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        if self.online_classifier is None:
            return
        images, targets = batch
        _, logs = self.online_classifier.validation_step((self.backbone(images), targets), batch_idx)
        self.log_dict(logs, prog_bar=True, sync_dist=True, batch_size=len(targets))

    # -- optimisation -------------------------------------------------------------------------
    def effective_batch_size(self) -> int:
        t = self.trainer
        return self.cfg.data.batch_size * t.world_size * t.accumulate_grad_batches

    def training_progress(self) -> float:
        """Fraction of the run's training samples seen so far. Steps x effective batch over
        total steps x effective batch: the same point of training at any batch size,
        device count or accumulation."""
        return self.trainer.global_step / max(1, self.trainer.estimated_stepping_batches)

    ema_schedule: str | None = None  # EMA-target methods: the momentum schedule to 1

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        optim_cfg = self.cfg.optim
        self.scaled = scaling.recipe(self.cfg, self.trainer.world_size, self.ema_schedule)
        # No weight decay on biases, norms, tokens, or the online probe (standard ViT practice).
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            skip = p.ndim <= 1 or name.startswith("online_classifier") or "token" in name or "pos_embed" in name
            (no_decay if skip else decay).append(p)
        groups = [
            {"params": decay, "weight_decay": optim_cfg.weight_decay, "decayed": True},
            {"params": no_decay, "weight_decay": 0.0, "decayed": False},
        ]
        lr = self.scaled.lr
        optimizer: torch.optim.Optimizer
        if optim_cfg.name == "adamw":
            # scaling.scale sets betas and eps for Adam-type optimizers.
            assert self.scaled.betas is not None and self.scaled.eps is not None
            optimizer = torch.optim.AdamW(groups, lr=lr, betas=self.scaled.betas, eps=self.scaled.eps)
        elif optim_cfg.name == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=optim_cfg.momentum)
        else:  # lightly's LARS adapts only groups with weight decay: biases and norms are excluded (SimCLR, BYOL)
            optimizer = LARS(groups, lr=lr, momentum=optim_cfg.momentum)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = total / max(1, self.trainer.max_epochs or 1)
        warmup = min(total - 1, int(optim_cfg.warmup_epochs * steps_per_epoch))
        # lightly's schedule takes fractions of the peak lr.
        scheduler = CosineWarmupScheduler(
            optimizer,
            warmup_epochs=warmup,
            max_epochs=total,
            warmup_start_value=self.scaled.warmup_start_lr / lr,
            end_value=self.scaled.final_lr / lr,
        )
        rank_zero_info(f"[scaling] {self.scaled.summary()}; warm-up {warmup} of {total} steps")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """The weight-decay schedule (I-JEPA: cosine from weight_decay to weight_decay_end)."""
        if self.scaled.weight_decay_end is None:
            return
        total = max(1, int(self.trainer.estimated_stepping_batches))
        wd = cosine_schedule(
            min(self.trainer.global_step, total), total + 1, self.scaled.weight_decay, self.scaled.weight_decay_end
        )
        for group in self.trainer.optimizers[0].param_groups:
            if group["decayed"]:
                group["weight_decay"] = wd
        self.log("weight_decay", wd, batch_size=1)

    def on_train_start(self) -> None:
        if self.logger is not None:  # the derived hyperparameters, visible in TensorBoard
            self.logger.log_metrics(self.scaled.as_metrics(), step=self.trainer.global_step)


class EMATargetMethod(SSLMethod):
    """A method with an EMA target network (BYOL, I-JEPA). The subclass sets ``self.target``
    (an ``EMATarget`` of ``online_network()``); here: kappa from the EMA scaling rule, rho -> rho^kappa
    (Busbridge et al., "How to Scale Your EMA", NeurIPS 2023, https://arxiv.org/abs/2307.13813),
    momentum by fraction of samples seen, one update per optimizer step (not per micro-batch)."""

    target: EMATarget

    def online_network(self) -> nn.Module:
        raise NotImplementedError

    def ema_momentum(self) -> float:
        return self.target.momentum_at(self.training_progress())

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        out = super().configure_optimizers()
        # Set whenever ema_schedule is (every EMA-target method: its EMATarget needs the schedule).
        assert self.scaled.ema_kappa is not None
        self.target.kappa = self.scaled.ema_kappa
        rank_zero_info(
            f"[scaling] EMA momentum: rho(p)^{self.target.kappa:g}, rho_base {self.target.rho_base} "
            f"-> {self.target.momentum_at(0.0):.6g} at the start ({self.target.schedule} to 1)"
        )
        return out

    def on_train_start(self) -> None:
        super().on_train_start()
        if self.logger is not None:
            self.logger.log_metrics(
                {"scaling/ema_kappa": self.target.kappa, "scaling/ema_momentum_start": self.target.momentum_at(0.0)}
            )

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Lightning calls this once per optimizer step (after all accumulated micro-batches).
        self.target.update(self.online_network(), self.ema_momentum())
