"""Batch-size scaling rules: hyperparameters set once at a base batch follow the effective batch.

kappa = effective batch / base batch, where the effective batch is
per-device batch x devices x nodes x gradient accumulation. Learning rate: linear for SGD and
LARS (Goyal et al. 2017), square root for Adam/AdamW (Malladi et al. 2022).
"""
from __future__ import annotations

import math

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
