"""Batch-size scaling rules: hyperparameters set once at a base batch follow the effective batch.

kappa = effective batch / base batch, the effective batch being
per-device batch x devices x nodes x gradient accumulation. When the batch grows by kappa:

- learning rate: linear for SGD and LARS (Goyal et al. 2017); square root for Adam/AdamW, with
  beta_i -> 1 - kappa (1 - beta_i) and eps -> eps / sqrt(kappa) (Malladi et al. 2022);
- model EMA momentum: rho -> rho^kappa (the EMA scaling rule, Busbridge et al., NeurIPS 2023),
  applied to the momentum *schedule*: rho(n)^kappa at every point n of training.

Schedules are functions of the fraction of samples seen, never of steps, so they survive a
change of batch size, device count or accumulation.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

from .errors import UserError

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
    raise UserError(f"no learning-rate scaling rule for optimizer {optimizer!r}: expected one of "
                    f"{', '.join(LINEAR_LR + SQRT_LR)}")


def check_momentum(rho: float, name: str = "EMA momentum") -> float:
    if not 0.0 <= rho < 1.0:
        raise UserError(f"{name} must lie in [0, 1), got {rho}")
    return rho


def scaled_momentum(rho: float, k: float) -> float:
    """The EMA scaling rule: k EMA steps toward a fixed target at rho == one step at rho^k."""
    return check_momentum(rho) ** k


@dataclass(frozen=True)
class Scaled:
    """Every hyperparameter the rules derived, for the start-up summary and TensorBoard."""
    effective_batch: int
    base_batch: int
    kappa: float
    optimizer: str
    lr: float
    betas: Optional[tuple[float, float]] = None
    eps: Optional[float] = None
    rule: bool = True  # False: kappa reported, nothing scaled

    def summary(self) -> str:
        parts = [f"effective batch {self.effective_batch} = kappa {self.kappa:g} x base {self.base_batch}",
                 f"{self.optimizer} lr {self.lr:.4g}"]
        if self.betas is not None:
            parts.append(f"betas ({self.betas[0]:.6g}, {self.betas[1]:.6g}) eps {self.eps:.3g}")
        return "; ".join(parts) + ("" if self.rule else " (optimizer scaling rule off)")

    def as_metrics(self) -> dict[str, float]:
        out = {f"scaling/{k}": float(v) for k, v in asdict(self).items() if isinstance(v, (int, float))}
        if self.betas is not None:
            out.update({"scaling/beta1": self.betas[0], "scaling/beta2": self.betas[1]})
        return out


def scale(optimizer: str, lr: float, effective_batch: int, base_batch: int, *,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, rule: bool = True) -> Scaled:
    """Apply the optimizer's rule (``rule=False``: kappa is reported but nothing is scaled)."""
    k = kappa(effective_batch, base_batch)
    kr = k if rule else 1.0
    lr_k = scaled_lr(lr, optimizer, kr)
    if optimizer in SQRT_LR:
        betas_k = tuple(1.0 - kr * (1.0 - b) for b in betas)
        if min(betas_k) < 0:
            raise UserError(f"kappa {kr:g} is too large for Adam betas {betas}: 1 - kappa (1 - beta) < 0")
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
