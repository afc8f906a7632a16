"""BatchNorm over the global batch under DDP, on any device.

The projection heads' BatchNorm must see the whole batch, as one device would, or a 2-process
step differs from a 1-process step at the same global batch (BN is where SimCLR's and BYOL's
negatives-by-statistics live). torch's ``SyncBatchNorm`` refuses CPU tensors, so this one sums
(x, n), then the squared deviations, across ranks with the autograd-aware all_reduce: per-feature statistics of the
global batch, gradients flowing back to every rank's samples.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce


class GlobalBatchNorm1d(nn.BatchNorm1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        # Two passes (mean, then squared deviations) as nn.BatchNorm1d: E[x^2] - mean^2 cancels badly.
        sums = all_reduce(torch.cat([x.sum(0), x.new_tensor([float(len(x))])]))  # over ranks, with gradient
        n = sums[-1]
        mean = sums[:-1] / n
        var = all_reduce(((x - mean) ** 2).sum(0)) / n
        if self.track_running_stats:
            # nn.BatchNorm1d registers these as tensors whenever it tracks running statistics.
            assert self.running_mean is not None and self.running_var is not None
            assert self.num_batches_tracked is not None
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked + 1)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)  # unbiased, as nn.BatchNorm1d
                self.num_batches_tracked += 1
        y = (x - mean) / torch.sqrt(var + self.eps)
        return y * self.weight + self.bias if self.affine else y


def globalise_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every ``nn.BatchNorm1d`` in ``module`` for ``GlobalBatchNorm1d`` sharing its parameters
    and buffers (optimizers built before or after see the same tensors)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            new = GlobalBatchNorm1d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            new.weight, new.bias = child.weight, child.bias
            for buf in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(new, buf, getattr(child, buf))
            new.train(child.training)
            setattr(module, name, new)
        else:
            globalise_batchnorm(child)
    return module
