"""Synthetic frozen features for probe tests and benchmarks: overlapping Gaussian classes with
per-dimension scales and offsets, so accuracy stays far from 100% and standardisation matters."""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_features(
    n_train: int,
    n_test: int,
    dim: int,
    classes: int,
    sep: float,
    seed: int,
    log_scale: float = 1.5,
    offset: float = 5.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train_x, train_y, test_x, test_y), float32 / int64: class means sep * N(0, I), unit noise,
    then each dimension scaled by exp(U(-log_scale, log_scale)) and shifted by offset * N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    means = sep * torch.randn(classes, dim, generator=g)
    scale = torch.exp(torch.empty(dim).uniform_(-log_scale, log_scale, generator=g))
    shift = offset * torch.randn(dim, generator=g)

    def draw(m: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(0, classes, (m,), generator=g)
        return (means[y] + torch.randn(m, dim, generator=g)) * scale + shift, y

    return (*draw(n_train), *draw(n_test))
