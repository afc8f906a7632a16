"""Exact resume: a run killed mid-epoch and resumed from its last checkpoint ends with the same
weights as a run that was never interrupted.

Lightning restores weights, optimizer, schedulers and loop counters but restarts a plain
DataLoader from the top of the epoch and leaves the random number generators wherever the new
process put them. So here:

- ``EpochSampler`` draws each epoch's order from (seed, epoch) alone, splits it across ranks
  like ``DistributedSampler``, and after a resume skips the samples the epoch already consumed;
- ``SeededItems`` seeds the RNGs from (seed, epoch, index) before each item's transform, so a
  sample's augmentation is the same whichever worker, process or resume loads it;
- ``seed_batch`` seeds the main process's RNGs before each training batch (device-side views,
  masks, drop path) from (seed, rank, batch number): every rank draws its own numbers (as
  MAE's official code seeds seed + rank), and a resumed run draws the same ones again without
  any RNG state in the checkpoint. The loaders get generators of their own, so creating an
  iterator (and the sanity check) draws nothing from the global streams;
- ``ResumeState`` saves where the epoch stood; a resume skips what was consumed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

if TYPE_CHECKING:
    from pytorch_lightning.loops.progress import _ProcessedTracker


def _mix(*values: int) -> int:
    """A 63-bit seed from a few integers (order matters; no Python hash randomisation)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & 0x7FFFFFFFFFFFFFFF
    return h


class EpochSampler(Sampler):
    """Yields (epoch, index): this rank's share of the epoch's permutation, minus what was consumed."""

    def __init__(
        self, n: int, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0, drop_last: bool = True
    ) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.num_replicas, self.rank = num_replicas, rank
        self.per_rank = n // num_replicas if drop_last else -(-n // num_replicas)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(_mix(self.seed, self.epoch)))
        else:
            order = torch.arange(self.n)
        order = order[: self.per_rank * self.num_replicas]
        if len(order) < self.per_rank * self.num_replicas:  # pad by wrapping, as DistributedSampler
            order = torch.cat([order, order[: self.per_rank * self.num_replicas - len(order)]])
        mine = order[self.rank :: self.num_replicas].tolist()
        start, self.skip = self.skip, 0  # the skip applies to the resumed epoch only
        return iter([(self.epoch, i) for i in mine[start:]])

    def __len__(self) -> int:
        return self.per_rank  # the whole epoch: Lightning's step counts must not shrink on resume


class SeededItems(Dataset):
    """``base[index]`` with torch, numpy and random seeded from (seed, epoch, index) first
    (``seed=None``: a deterministic transform, nothing to seed: the index is looked up as it is)."""

    def __init__(self, base: Dataset, seed: int | None) -> None:
        self.base, self.seed = base, seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]  # map-style datasets have a length

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if self.seed is None:
            return self.base[index]
        # In the main process the caller's streams (drop path, masks) must stay untouched; a
        # loader worker's own streams serve nothing else (saving and restoring them cost 7x the
        # item itself at 28 px).
        outer = rng_states() if get_worker_info() is None else None
        s = _mix(self.seed, epoch, index)
        torch.manual_seed(s)
        random.seed(s)
        np.random.seed(s % 2**32)
        try:
            return self.base[index]
        finally:
            if outer is not None:
                set_rng_states(outer)


def rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def seed_batch(seed: int, rank: int, batch_number: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy and random for one training batch.
    ``batch_number`` counts micro-batches since the start of training (restored on resume)."""
    s = _mix(seed, rank, batch_number)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2**32)


class ResumeState(pl.Callback):
    """Checkpoints carry where the epoch stood; a resume skips the samples already consumed."""

    def __init__(self, sampler: EpochSampler, batch_size: int) -> None:
        self.sampler, self.batch_size = sampler, batch_size

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict:  # called while a checkpoint is written
        # Lightning declares ``current`` as the base tracker but fills it with a _ProcessedTracker.
        done = cast("_ProcessedTracker", self.trainer.fit_loop.epoch_loop.batch_progress.current).processed
        return {"epoch": self.trainer.current_epoch, "batches_done": done}

    def load_state_dict(self, state: dict) -> None:
        # Restored before the resumed epoch's data iterator exists (Lightning calls no epoch-start
        # hook when it resumes mid-epoch): the sampler's next pass skips what was consumed.
        self.sampler.skip = state["batches_done"] * self.batch_size
