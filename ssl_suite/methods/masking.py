"""Which patches a masked objective sees: MAE's random masking and I-JEPA's multi-block masks.

Indices here count patches (0 .. n-1, row-major over the patch grid), never prefix tokens;
``with_prefix`` converts them to token indices for a ViT with a class token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.types import Device


def check_ratio(mask_ratio: float) -> float:
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask ratio must lie in (0, 1), got {mask_ratio}")
    return mask_ratio


@dataclass
class RandomMask:
    keep: Tensor  # (B, n_keep) visible patches, in noise order
    masked: Tensor  # (B, n - n_keep) hidden patches


def random_masking(
    batch_size: int,
    num_patches: int,
    mask_ratio: float = 0.75,
    device: Device = None,
    generator: torch.Generator | None = None,
) -> RandomMask:
    """MAE: keep round(n (1 - ratio)) patches per image, chosen by sorting uniform noise."""
    check_ratio(mask_ratio)
    n_keep = max(1, round(num_patches * (1 - mask_ratio)))
    noise = torch.rand(batch_size, num_patches, device=device, generator=generator)  # (B, n)
    shuffle = noise.argsort(dim=1)  # ascending: the first n_keep are kept
    return RandomMask(shuffle[:, :n_keep], shuffle[:, n_keep:])


@dataclass
class MultiBlockMask:
    context: Tensor  # (B, n_context) patches the context encoder sees, ascending
    targets: list[Tensor]  # num_targets x (B, h * w): patches of each target block, ascending


def block_size(scale: float, aspect: float, grid: tuple[int, int]) -> tuple[int, int]:
    """(h, w) in patches of a block covering ``scale`` of the grid with h / w = ``aspect``."""
    area = scale * grid[0] * grid[1]
    # Strictly smaller than the grid, as I-JEPA's sampler: a block never covers a whole side.
    h = max(1, min(grid[0] - 1, round(math.sqrt(area * aspect))))
    w = max(1, min(grid[1] - 1, round(math.sqrt(area / aspect))))
    return h, w


def _place_blocks(
    batch_size: int, size: tuple[int, int], grid: tuple[int, int], generator: torch.Generator | None, device: Device
) -> Tensor:
    """A (B, H, W) boolean mask with one ``size`` block at a uniform position in each image."""
    h, w = size
    top = torch.randint(0, grid[0] - h + 1, (batch_size, 1, 1), generator=generator, device=device)
    left = torch.randint(0, grid[1] - w + 1, (batch_size, 1, 1), generator=generator, device=device)
    rows = torch.arange(grid[0], device=device).view(1, -1, 1)
    cols = torch.arange(grid[1], device=device).view(1, 1, -1)
    return (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)


def _uniform(bounds: Sequence[float], generator: torch.Generator | None, device: Device) -> float:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand((), generator=generator, device=device).item()


def _indices(mask: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """k patch indices per row of the (B, n) boolean ``mask``: a random subset of its True
    entries, ascending (rows with exactly k True give all of them)."""
    noise = torch.rand(mask.shape, generator=generator, device=mask.device) - mask.float() * 2
    return noise.argsort(dim=1)[:, :k].sort(dim=1).values


def multiblock_masks(
    batch_size: int,
    grid: tuple[int, int],
    num_targets: int = 4,
    target_scale: Sequence[float] = (0.15, 0.2),
    target_aspect: Sequence[float] = (0.75, 1.5),
    context_scale: Sequence[float] = (0.85, 1.0),
    min_context: int = 10,
    max_tries: int = 20,
    device: Device = None,
    generator: torch.Generator | None = None,
) -> MultiBlockMask:
    """I-JEPA: ``num_targets`` target blocks and one context block (aspect 1) per image, target
    patches removed from the context. Block sizes are drawn once per batch, positions per image;
    images whose context keeps fewer than ``min_context`` patches are redrawn, and every context
    is cut to the smallest one in the batch (a random subset) so the batch stacks."""
    n = grid[0] * grid[1]
    if not 0 < min_context <= n:
        raise ValueError(f"min_context must lie in [1, {n}] for a {grid[0]}x{grid[1]} patch grid, got {min_context}")
    t_size = block_size(_uniform(target_scale, generator, device), _uniform(target_aspect, generator, device), grid)
    c_size = block_size(_uniform(context_scale, generator, device), 1.0, grid)
    targets = torch.zeros(batch_size, num_targets, *grid, dtype=torch.bool, device=device)
    context = torch.zeros(batch_size, *grid, dtype=torch.bool, device=device)
    redo = torch.ones(batch_size, dtype=torch.bool, device=device)
    for _ in range(max_tries):
        m = int(redo.sum())
        t = torch.stack([_place_blocks(m, t_size, grid, generator, device) for _ in range(num_targets)], 1)
        c = _place_blocks(m, c_size, grid, generator, device) & ~t.any(1)
        targets[redo], context[redo] = t, c
        redo = context.flatten(1).sum(1) < min_context
        if not redo.any():
            break
    else:
        raise ValueError(
            f"could not keep {min_context} context patches in a {grid[0]}x{grid[1]} grid with "
            f"{num_targets} targets of {t_size[0]}x{t_size[1]} patches; lower min_context or the target scale"
        )
    k = int(context.flatten(1).sum(1).min())
    return MultiBlockMask(
        _indices(context.flatten(1), k, generator),
        [_indices(targets[:, i].flatten(1), t_size[0] * t_size[1], generator) for i in range(num_targets)],
    )


def with_prefix(patch_idx: Tensor, num_prefix_tokens: int = 1) -> Tensor:
    """Token indices for a sequence [prefix tokens, patches]: the prefix always included first."""
    prefix = torch.arange(num_prefix_tokens, device=patch_idx.device).expand(len(patch_idx), -1)
    return torch.cat([prefix, patch_idx + num_prefix_tokens], dim=1)
