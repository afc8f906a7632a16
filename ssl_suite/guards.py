"""Training health: stop (or skip) on a non-finite loss or gradient, and log the signals that show
trouble early (gradient norm; for sigmoid attention, the mean attention row sum per block, the
paper's early-training norm signal: with b = -log n it starts of order 1 and drifts if attention
saturates).

The loss and the gradient norm get finiteness flags on the device; the host reads them once
per optimizer step, before the update (one synchronisation). Only when one is non-finite is the
step's forward replayed with per-block hooks, so the message names the first component that
went non-finite (an attention block, else the loss, else the gradients) while ordinary steps
carry no hooks (and compiled blocks are never recompiled for them). ``stop`` raises
a one-line error and writes no checkpoint, so the last good one stays the newest; ``skip``
drops that step's update (gradients cleared) and continues, counting skips.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

from .errors import UserError
from .models import SigmoidAttention
from .resume import rng_states, set_rng_states

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch.utils.hooks import RemovableHandle

    # A forward hook: (module, positional inputs, output) -> None.
    _Hook = Callable[[torch.nn.Module, tuple[Any, ...], Any], None]

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
        self.skipped = 0
        self.bad: str | None = None  # the non-finite component of a skipped step
        self.row_sums: dict[str, torch.Tensor] = {}
        self.hooks: list[RemovableHandle] = []
        self.loss_finite: torch.Tensor | None = None  # all micro-batches' losses finite so far

    # -- forward: row sums on logging steps; the step kept for a replay if it goes wrong ----------
    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self.bad, self.row_sums = None, {}
        self.batch, self.batch_idx, self.rng = batch, batch_idx, rng_states()  # references: no copies
        if self.mode == "skip":  # BatchNorm statistics a bad forward pass would poison
            self.buffers = [b.detach().clone() for b in module.buffers()]
        if trainer.global_step % self.every == 0 and self._attach(module, self._row_sum_hook):
            # Hooks inside compiled blocks would recompile them: this one step runs eagerly.
            torch.compiler.set_stance("force_eager")

    def _attach(self, module: torch.nn.Module, make_hook: Callable[[str, SigmoidAttention], _Hook]) -> bool:
        for name, m in module.named_modules():
            if isinstance(m, SigmoidAttention) and not name.startswith("target."):
                self.hooks.append(m.register_forward_hook(make_hook(name, m)))
        return bool(self.hooks)

    def _row_sum_hook(self, name: str, attn: SigmoidAttention) -> _Hook:
        def hook(_module: torch.nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if attn.attention == "sigmoid" and name not in self.row_sums:
                with torch.no_grad():
                    self.row_sums[name] = attention_row_sum(attn, inputs[0].detach())

        return hook

    def _remove_hooks(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks = []
        torch.compiler.set_stance("default")

    def on_before_backward(self, trainer: pl.Trainer, module: pl.LightningModule, loss: torch.Tensor) -> None:
        # No host sync here: the flag is read once, with the gradient norm, before the update.
        self._remove_hooks()
        finite = torch.isfinite(loss.detach())
        self.loss_finite = finite if self.loss_finite is None else self.loss_finite & finite

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else None
        loss_ok, self.loss_finite = self.loss_finite, None
        checks = [t for t in (loss_ok, None if norm is None else torch.isfinite(norm)) if t is not None]
        if self.bad is None and checks and not bool(torch.stack(checks).all()):  # the step's one host sync
            self._trouble(trainer, self._culprit(module, loss_ok))
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

    def _culprit(self, module: pl.LightningModule, loss_ok: torch.Tensor | None) -> str:
        """The first component that went non-finite. Found by replaying the (last micro-)batch's
        forward eagerly, with the same random numbers, under per-block finiteness hooks: nothing
        is hooked on ordinary steps, so the hot path pays nothing for this."""
        flags: dict[str, torch.Tensor] = {}

        def flag_hook(name: str, _attn: SigmoidAttention) -> _Hook:
            def hook(_module: torch.nn.Module, _inputs: tuple[Any, ...], output: torch.Tensor) -> None:
                flags.setdefault(name, torch.isfinite(output).all())

            return hook

        log, log_dict = module.log, module.log_dict
        # The replay logs nothing.
        module.log = module.log_dict = lambda *a, **k: None  # type: ignore[method-assign, assignment]
        set_rng_states(self.rng)
        try:
            self._attach(module, flag_hook)
            with torch.no_grad(), torch.compiler.set_stance("force_eager"):
                module.training_step(self.batch, self.batch_idx)
        finally:
            self._remove_hooks()
            module.log, module.log_dict = log, log_dict  # type: ignore[method-assign]
        first = next((name for name, ok in flags.items() if not bool(ok)), None)
        if first is not None:
            return f"attention output ({first})"
        return "loss" if loss_ok is not None and not bool(loss_ok) else "gradient norm"

    def _trouble(self, trainer: pl.Trainer, component: str) -> None:
        where = f"non-finite {component} at step {trainer.global_step}" + (
            f" ({self.objective})" if self.objective else ""
        )
        if self.mode == "stop":
            raise UserError(
                f"{where}: stopped; the last good checkpoint is kept (trainer.nonfinite=skip drops such steps instead)"
            )
        self.bad, self.skipped = component, self.skipped + 1
        rank_zero_warn(f"{where}: update skipped ({self.skipped} so far)")

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._remove_hooks()
