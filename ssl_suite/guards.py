"""Training health: stop (or skip) on a non-finite loss or gradient, and log the signals that show
trouble early (gradient norm; for sigmoid attention, the mean attention row sum per block, the
paper's early-training norm signal: with b = -log n it starts of order 1 and drifts if attention
saturates).

The loss is checked before backward, gradients before the optimizer step; attention outputs
are checked in the forward pass (no synchronisation: flags are read only when something is
already wrong), so the message names the first component that went non-finite. ``stop`` raises
a one-line error and writes no checkpoint, so the last good one stays the newest; ``skip``
drops that step's update (gradients cleared) and continues, counting skips.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

from .errors import UserError
from .models import SigmoidAttention

MODES = ("stop", "skip")


def attention_row_sum(attn: SigmoidAttention, x: torch.Tensor) -> torch.Tensor:
    """Mean over heads and queries of sum_j sigmoid(q_i k_j * scale + b), for the first image."""
    from flash_sigmoid import reference

    B, N, _ = x.shape
    q, k, _ = attn.qkv(x[:1]).reshape(1, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    bias, scale = reference.resolve(q, k, attn.sigmoid_bias, attn.scale)
    return torch.sigmoid(q @ k.transpose(-1, -2) * scale + bias).sum(-1).mean()


class NonFiniteGuard(pl.Callback):
    def __init__(self, mode: str = "stop", objective: str = "", log_every_n_steps: int = 20) -> None:
        if mode not in MODES:
            raise ValueError(f"non-finite mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.objective, self.every = mode, objective, max(1, log_every_n_steps)
        self.skipped, self.bad, self.flags, self.row_sums, self.hooks = 0, None, {}, {}, []

    # -- forward: per-block finiteness flags, row sums on logging steps ---------------------------
    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.bad, self.flags, self.row_sums = None, {}, {}
        if self.mode == "skip":  # BatchNorm statistics a bad forward pass would poison
            self.buffers = [b.detach().clone() for b in module.buffers()]
        logging = trainer.global_step % self.every == 0
        for name, m in module.named_modules():
            if isinstance(m, SigmoidAttention) and not name.startswith("target."):
                self.hooks.append(m.register_forward_hook(self._hook(name, m, logging)))

    def _hook(self, name, attn, logging):
        def hook(_module, inputs, output):
            self.flags.setdefault(name, []).append(torch.isfinite(output).all())
            if logging and attn.attention == "sigmoid" and name not in self.row_sums:
                with torch.no_grad():
                    self.row_sums[name] = attention_row_sum(attn, inputs[0].detach())

        return hook

    def _remove_hooks(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks = []

    def on_before_backward(self, trainer, module, loss) -> None:
        self._remove_hooks()
        if not torch.isfinite(loss):
            first = next((n for n, fs in self.flags.items() if not torch.stack(fs).all()), None)
            self._trouble(trainer, f"attention output ({first})" if first else "loss")

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads else None
        if self.bad is None and norm is not None and not torch.isfinite(norm):
            self._trouble(trainer, "gradient norm")
        if self.bad is not None:  # skip mode: drop this update entirely, statistics included
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for live, saved in zip(module.buffers(), self.buffers):
                    live.copy_(saved)
            return
        if trainer.global_step % self.every == 0:
            logs = {"grad_norm": norm} if norm is not None else {}
            logs.update({f"attention_row_sum/{n.replace('.', '_')}": v for n, v in self.row_sums.items()})
            if logs:
                module.log_dict(logs, on_step=True, on_epoch=False)

    def _trouble(self, trainer, component: str) -> None:
        where = f"non-finite {component} at step {trainer.global_step}" + (
            f" ({self.objective})" if self.objective else ""
        )
        if self.mode == "stop":
            raise UserError(
                f"{where}: stopped; the last good checkpoint is kept (trainer.nonfinite=skip drops such steps instead)"
            )
        self.bad, self.skipped = component, self.skipped + 1
        rank_zero_warn(f"{where}: update skipped ({self.skipped} so far)")

    def on_train_end(self, trainer, module) -> None:
        self._remove_hooks()
