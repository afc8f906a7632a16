"""A model EMA (BYOL's target network, I-JEPA's target encoder), in one place.

theta' <- rho theta' + (1 - rho) theta for parameters (lightly's ``update_momentum``); buffers
(BatchNorm statistics) are copied, so the target's normalisation follows the online network.
The target gets no gradient. ``momentum_at`` gives rho for a fraction of samples seen, with the
EMA scaling rule applied: rho(p)^kappa, kappa = effective batch / base batch (Busbridge et al.,
"How to Scale Your EMA", NeurIPS 2023, https://arxiv.org/abs/2307.13813).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn

from .scaling import MOMENTUM_SCHEDULES, check_momentum, scaled_momentum


class EMATarget(nn.Module):
    def __init__(self, online: nn.Module, rho_base: float, schedule: str = "cosine", kappa: float = 1.0) -> None:
        super().__init__()
        if schedule not in MOMENTUM_SCHEDULES:
            raise ValueError(f"momentum schedule must be one of {', '.join(MOMENTUM_SCHEDULES)}, got {schedule!r}")
        self.rho_base, self.schedule, self.kappa = check_momentum(rho_base), schedule, kappa
        self.model = copy.deepcopy(online)
        deactivate_requires_grad(self.model)

    def momentum_at(self, progress: float) -> float:
        """rho at ``progress`` (fraction of training samples seen), raised to kappa."""
        return scaled_momentum(MOMENTUM_SCHEDULES[self.schedule](progress, self.rho_base), self.kappa)

    @torch.no_grad()
    def update(self, online: nn.Module, momentum: float) -> None:
        update_momentum(online, self.model, momentum)
        for target_buf, online_buf in zip(self.model.buffers(), online.buffers()):
            target_buf.copy_(online_buf)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return self.model(*args, **kwargs)
