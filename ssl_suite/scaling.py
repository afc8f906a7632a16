"""Batch-size scaling rules: hyperparameters set once at a base batch follow the effective batch.

kappa = effective batch / base batch, the effective batch being
per-device batch x devices x nodes x gradient accumulation. When the batch grows by kappa:

- learning rate: linear for SGD and LARS, lr -> kappa lr (Goyal et al., "Accurate, Large Minibatch SGD:
  Training ImageNet in 1 Hour", 2017, https://arxiv.org/abs/1706.02677); square root for Adam/AdamW,
  lr -> sqrt(kappa) lr, beta_i -> 1 - kappa (1 - beta_i) and eps -> eps / sqrt(kappa) (Malladi et al.,
  "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms", NeurIPS 2022,
  https://arxiv.org/abs/2205.10287);
- model EMA momentum: rho -> rho^kappa (the EMA scaling rule, Busbridge et al., "How to Scale Your
  EMA", NeurIPS 2023, https://arxiv.org/abs/2307.13813), applied to the momentum *schedule*:
  rho(n)^kappa at every point n of training.

Schedules are functions of the fraction of samples seen, never of steps, so they survive a
change of batch size, device count or accumulation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, cast

from .errors import UserError

if TYPE_CHECKING:
    from omegaconf import DictConfig

LINEAR_LR = ("sgd", "lars")
SQRT_LR = ("adam", "adamw")


def kappa(effective_batch: int, base_batch: int) -> float:
    if base_batch <= 0:
        raise UserError(f"base batch size must be positive, got {base_batch}")
    if effective_batch <= 0:
        raise UserError(f"effective batch size must be positive, got {effective_batch}")
    return effective_batch / base_batch


def scaled_lr(lr: float, optimizer: str, k: float) -> float:
    """The learning rate at kappa ``k`` for an optimizer tuned with ``lr`` at kappa 1."""
    if optimizer in LINEAR_LR:
        return lr * k
    if optimizer in SQRT_LR:
        return lr * math.sqrt(k)
    raise UserError(
        f"no learning-rate scaling rule for optimizer {optimizer!r}: expected one of {', '.join(LINEAR_LR + SQRT_LR)}"
    )


def check_momentum(rho: float, name: str = "EMA momentum") -> float:
    if not 0.0 <= rho < 1.0:
        raise UserError(f"{name} must lie in [0, 1), got {rho}")
    return rho


def scaled_momentum(rho: float, k: float) -> float:
    """The EMA scaling rule: k EMA steps toward a fixed target at rho == one step at rho^k."""
    return check_momentum(rho) ** k


@dataclass(frozen=True)
class Scaled:
    """Every hyperparameter the rules derived, for the start-up summary, TensorBoard and
    ``ssl-suite recipe``. Learning rates are peak / warm-up start / final values at this batch."""

    effective_batch: int
    base_batch: int
    kappa: float
    optimizer: str
    lr: float
    betas: tuple[float, float] | None = None
    eps: float | None = None
    rule: bool = True  # False: kappa reported, nothing scaled
    warmup_start_lr: float = 0.0
    final_lr: float = 0.0
    weight_decay: float = 0.0
    weight_decay_end: float | None = None  # cosine schedule weight_decay -> weight_decay_end
    warmup_epochs: float = 0.0
    max_epochs: int = 0
    ema_momentum: float | None = None  # the target's momentum at the start, rule applied
    ema_kappa: float | None = None

    def summary(self) -> str:
        parts = [
            f"effective batch {self.effective_batch} = kappa {self.kappa:g} x base {self.base_batch}",
            f"{self.optimizer} lr {self.lr:.4g} (warm-up from {self.warmup_start_lr:.3g} over "
            f"{self.warmup_epochs:g} of {self.max_epochs} epochs, cosine to {self.final_lr:.3g})",
        ]
        if self.betas is not None:
            parts.append(f"betas ({self.betas[0]:.6g}, {self.betas[1]:.6g}) eps {self.eps:.3g}")
        wd_end = "" if self.weight_decay_end is None else f" -> {self.weight_decay_end:g} (cosine)"
        parts.append(f"weight decay {self.weight_decay:g}{wd_end}")
        if self.ema_momentum is not None:
            parts.append(f"EMA momentum {self.ema_momentum:.6g} at the start (rho^{self.ema_kappa:g})")
        return "; ".join(parts) + ("" if self.rule else " (optimizer scaling rule off)")

    def as_metrics(self) -> dict[str, float]:
        out = {f"scaling/{k}": float(v) for k, v in asdict(self).items() if isinstance(v, (int, float))}
        if self.betas is not None:
            out.update({"scaling/beta1": self.betas[0], "scaling/beta2": self.betas[1]})
        return out

    def as_json(self) -> dict:
        out = asdict(self)
        out["betas"] = None if self.betas is None else list(self.betas)
        return out


def scale(
    optimizer: str,
    lr: float,
    effective_batch: int,
    base_batch: int,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    rule: bool = True,
) -> Scaled:
    """Apply the optimizer's rule (``rule=False``: kappa is reported but nothing is scaled)."""
    k = kappa(effective_batch, base_batch)
    kr = k if rule else 1.0
    lr_k = scaled_lr(lr, optimizer, kr)
    if optimizer in SQRT_LR:
        betas_k = cast("tuple[float, float]", tuple(1.0 - kr * (1.0 - b) for b in betas))
        if min(betas_k) <= 1e-9:  # 0 up to rounding: no momentum left
            raise UserError(
                f"kappa {kr:g} is too large for Adam betas {tuple(betas)}: 1 - kappa (1 - beta) = "
                f"{min(betas_k):.3g} is not in (0, 1); lower the batch (or use accumulation at "
                f"the base batch), or set optim.base_batch_size nearer the effective batch"
            )
        return Scaled(effective_batch, base_batch, k, optimizer, lr_k, betas_k, eps / math.sqrt(kr), rule)
    return Scaled(effective_batch, base_batch, k, optimizer, lr_k, rule=rule)


def cosine_to_one(progress: float, rho_base: float) -> float:
    """BYOL's momentum: rho(p) = 1 - (1 - rho_base)(cos(pi p) + 1) / 2, p = fraction of samples seen."""
    p = min(max(progress, 0.0), 1.0)
    return 1.0 - (1.0 - check_momentum(rho_base)) * (math.cos(math.pi * p) + 1.0) / 2.0


def linear_to_one(progress: float, rho_base: float) -> float:
    """I-JEPA's momentum: linear from rho_base to 1 over training."""
    p = min(max(progress, 0.0), 1.0)
    return check_momentum(rho_base) + (1.0 - rho_base) * p


MOMENTUM_SCHEDULES = {"cosine": cosine_to_one, "linear": linear_to_one}


def recipe(cfg: DictConfig, world_size: int, ema_schedule: str | None = None) -> Scaled:
    """Everything a run of ``cfg`` derives on ``world_size`` processes (devices x nodes): the
    effective batch, the optimizer's rule applied to lr (warm-up start and final lr follow the
    peak), betas and eps, the schedules in epochs, and the EMA momentum at the start
    (``ema_schedule``: the method's, None for methods without an EMA target)."""
    optim_cfg, method_cfg = cfg.optim, cfg.method
    effective = cfg.data.batch_size * world_size * cfg.trainer.accumulate_grad_batches
    s = scale(
        optim_cfg.name,
        optim_cfg.lr,
        effective,
        optim_cfg.base_batch_size,
        betas=tuple(optim_cfg.betas),
        eps=optim_cfg.eps,
        rule=optim_cfg.scaling_rule,
    )
    ratio = s.lr / optim_cfg.lr
    # final_lr None: lightly's default, 1e-3 x peak
    final = 1e-3 * optim_cfg.lr if optim_cfg.final_lr is None else optim_cfg.final_lr
    if optim_cfg.warmup_epochs > cfg.trainer.max_epochs:
        raise UserError(
            f"optim.warmup_epochs={optim_cfg.warmup_epochs} exceeds trainer.max_epochs={cfg.trainer.max_epochs}"
        )
    ema_kappa: float | None = None
    ema: float | None = None
    if ema_schedule:
        ema_kappa = s.kappa if method_cfg.ema_scaling_rule else 1.0
        ema = MOMENTUM_SCHEDULES[ema_schedule](0.0, method_cfg.momentum_base) ** ema_kappa
    return replace(
        s,
        warmup_start_lr=optim_cfg.warmup_start_lr * ratio,
        final_lr=final * ratio,
        weight_decay=optim_cfg.weight_decay,
        weight_decay_end=optim_cfg.weight_decay_end,
        warmup_epochs=optim_cfg.warmup_epochs,
        max_epochs=cfg.trainer.max_epochs,
        ema_momentum=ema,
        ema_kappa=ema_kappa,
    )
