"""``trainer.compile``: ``torch.compile`` the transformer blocks and the heads, in place.

Blocks, not whole networks: every objective runs its encoders block by block (MAE's masked
encoder, I-JEPA's predictor, the decoder), so compiling ``Block`` modules reaches all of them
without tracing the methods' own Python (masking, gathers, loss bookkeeping); identical blocks
share one compiled graph. ``Module.compile`` keeps parameter names, so checkpoints are unchanged.
The FlashSigmoid custom ops stay single opaque nodes in the graphs. A graph that fails to
compile runs eagerly (``suppress_errors``) instead of stopping the run.

``auto`` compiles on CUDA and not on CPU: measured on 2 CPU cores (ViT-nano/7, batch 512 views),
compiled blocks step 1.07x faster after ~10 s of compiling, which a short CPU run does not repay
(``scripts/bench_train.py --compile`` measures it on the machine at hand).
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info
from timm.models.vision_transformer import Block
from torch import nn

COMPILE_MODES = ("auto", True, False)


def wants_compile(setting: str | bool, device_type: str) -> bool:
    return device_type == "cuda" if setting == "auto" else bool(setting)


def compile_in_place(method: nn.Module) -> int:
    """Compile every transformer block and every ``*_head`` child of ``method``; returns how many."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # a graph that cannot compile runs eagerly
    targets: list[nn.Module] = [m for m in method.modules() if isinstance(m, Block)]
    targets += [m for name, m in method.named_children() if name.endswith("_head")]
    for module in targets:
        module.compile()
    return len(targets)


class CompileTimer(pl.Callback):
    """Prints the compile time: how much longer the first few training steps took (compilation
    happens in them; a logging step may run eagerly) than the median step."""

    def __init__(self, modules: int, watch: int = 6) -> None:
        self.modules, self.watch, self.start = modules, watch, 0.0
        self.times: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if len(self.times) >= self.watch:
            return
        self.times.append(time.perf_counter() - self.start)
        if len(self.times) == self.watch:
            median = sorted(self.times)[self.watch // 2]
            rank_zero_info(
                f"[compile] {self.modules} modules compiled in ~{sum(self.times) - median * self.watch:.1f} s "
                f"(the first {self.watch} steps minus {self.watch} median steps of {median:.3f} s)"
            )
