"""MAE random masking and I-JEPA multi-block masks against their definitions."""

import math

import pytest
import torch

from ssl_suite.methods.masking import block_size, multiblock_masks, random_masking, with_prefix


@pytest.mark.parametrize("n,ratio", [(49, 0.75), (196, 0.75), (10, 0.5), (16, 0.9), (7, 0.3)])
def test_random_masking_keeps_round_n_and_partitions_the_patches(n, ratio):
    mask = random_masking(5, n, ratio, generator=torch.Generator().manual_seed(n))
    n_keep = round(n * (1 - ratio))
    assert mask.keep.shape == (5, n_keep) and mask.masked.shape == (5, n - n_keep)
    both = torch.cat([mask.keep, mask.masked], dim=1)
    assert (both.sort(dim=1).values == torch.arange(n)).all()  # a partition of the patches
    assert len({tuple(r) for r in mask.keep.tolist()}) > 1  # per-image masks differ


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, 1.5])
def test_mask_ratio_outside_open_interval_is_refused(ratio):
    with pytest.raises(ValueError, match=r"mask ratio must lie in \(0, 1\)"):
        random_masking(2, 16, ratio)


def _box(idx, width):
    rows, cols = idx // width, idx % width
    return rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()


def _side_bounds(scale, aspect, n, grid_side):
    """Smallest and largest block height and width the ranges allow, rounding as the sampler."""
    hs = [round(math.sqrt(s * n * a)) for s in scale for a in aspect]
    ws = [round(math.sqrt(s * n / a)) for s in scale for a in aspect]
    clip = lambda v: max(1, min(grid_side - 1, v))  # noqa: E731
    return (clip(min(hs)), clip(max(hs))), (clip(min(ws)), clip(max(ws)))


@pytest.mark.parametrize(
    "grid,scale,aspect", [((7, 7), (0.1, 0.15), (0.75, 1.5)), ((14, 14), (0.15, 0.2), (0.75, 1.5))]
)
@pytest.mark.parametrize("seed", range(4))
def test_multiblock_masks_are_disjoint_rectangles_of_the_asked_size_and_stack(grid, scale, aspect, seed):
    n, B = grid[0] * grid[1], 16
    masks = multiblock_masks(
        B,
        grid,
        num_targets=4,
        target_scale=scale,
        target_aspect=aspect,
        min_context=10,
        generator=torch.Generator().manual_seed(seed),
    )
    assert len(masks.targets) == 4
    assert all(t.shape == masks.targets[0].shape for t in masks.targets)  # one block size per batch
    assert masks.context.shape[0] == B and masks.context.shape[1] >= 10
    (h_lo, h_hi), (w_lo, w_hi) = _side_bounds(scale, aspect, n, grid[0])
    for b in range(B):
        context = set(masks.context[b].tolist())
        assert len(context) == masks.context.shape[1]  # no repeats
        for t in masks.targets:
            idx = t[b]
            assert not context & set(idx.tolist())  # target patches removed from the context
            r0, r1, c0, c1 = _box(idx, grid[1])
            h, w = r1 - r0 + 1, c1 - c0 + 1
            assert h * w == len(idx) == len(set(idx.tolist()))  # a filled rectangle
            assert h_lo <= h <= h_hi and w_lo <= w <= w_hi
        r0, r1, c0, c1 = _box(masks.context[b], grid[1])
        side = max(1, min(grid[0] - 1, round(math.sqrt(1.0 * n))))  # the largest context block (scale 1)
        assert r1 - r0 + 1 <= side and c1 - c0 + 1 <= side


def test_multiblock_masks_reproducible_by_generator():
    a = multiblock_masks(8, (7, 7), generator=torch.Generator().manual_seed(3))
    b = multiblock_masks(8, (7, 7), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.context, b.context) and all(torch.equal(x, y) for x, y in zip(a.targets, b.targets))


def test_impossible_context_floor_is_a_clear_error():
    with pytest.raises(ValueError, match="could not keep 40 context patches"):
        multiblock_masks(4, (7, 7), min_context=40, max_tries=3)


def test_block_size_never_covers_a_whole_side():
    assert block_size(1.0, 1.0, (7, 7)) == (6, 6)
    assert block_size(0.01, 1.0, (7, 7)) == (1, 1)


def test_with_prefix_prepends_class_token_and_shifts():
    assert with_prefix(torch.tensor([[3, 0, 5]])).tolist() == [[0, 4, 1, 6]]
