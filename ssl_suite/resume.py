"""Exact resume: a run killed mid-epoch and resumed from its last checkpoint ends with the same
weights as a run that was never interrupted.

Lightning restores weights, optimizer, schedulers and loop counters but restarts a plain
DataLoader from the top of the epoch and leaves the random number generators wherever the new
process put them. So here:

- ``EpochSampler`` draws each epoch's order from (seed, epoch) alone, splits it across ranks
  like ``DistributedSampler``, and after a resume skips the samples the epoch already consumed;
- ``SeededItems`` seeds the RNGs from (seed, epoch, index) before each item's transform, so a
  sample's augmentation is the same whichever worker, process or resume loads it;
- ``ResumeState`` saves the main process's RNG states (device-side augmentation, masks, drop
  path) with every checkpoint and puts them back on restore; the loaders get generators of
  their own so that creating an iterator (and the sanity check) draws nothing from them.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset, Sampler


def _mix(*values: int) -> int:
    """A 63-bit seed from a few integers (order matters; no Python hash randomisation)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & 0x7FFFFFFFFFFFFFFF
    return h


class EpochSampler(Sampler):
    """Yields (epoch, index): this rank's share of the epoch's permutation, minus what was consumed."""

    def __init__(self, n: int, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0,
                 drop_last: bool = True) -> None:
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
        mine = order[self.rank::self.num_replicas].tolist()
        start, self.skip = self.skip, 0  # the skip applies to the resumed epoch only
        return iter([(self.epoch, i) for i in mine[start:]])

    def __len__(self) -> int:
        return self.per_rank  # the whole epoch: Lightning's step counts must not shrink on resume


class SeededItems(Dataset):
    """``base[index]`` with torch, numpy and random seeded from (seed, epoch, index) first."""

    def __init__(self, base: Dataset, seed: int) -> None:
        self.base, self.seed = base, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        epoch, index = key
        s = _mix(self.seed, epoch, index)
        outer = rng_states(cuda=False)  # the caller's streams (main process: drop path, masks) stay untouched
        torch.manual_seed(s)
        random.seed(s)
        np.random.seed(s % 2**32)
        try:
            return self.base[index]
        finally:
            set_rng_states(outer)


def rng_states(cuda: bool = True) -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if cuda and torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumeState(pl.Callback):
    """Checkpoints carry where the epoch stood and the RNG states; a resume puts both back."""

    def __init__(self, sampler: EpochSampler, batch_size: int) -> None:
        self.sampler, self.batch_size = sampler, batch_size

    def setup(self, trainer, module, stage) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict:  # called while a checkpoint is written
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        rng = rng_states()
        return {"epoch": self.trainer.current_epoch, "batches_done": done,
                "torch": rng["torch"], "numpy": _np_state(rng["numpy"]), "python": _py_state(rng["python"]),
                **({"cuda": rng["cuda"]} if "cuda" in rng else {})}

    def load_state_dict(self, state: dict) -> None:
        # Restored before the resumed epoch's data iterator exists (Lightning calls no epoch-start
        # hook when it resumes mid-epoch): the sampler's next pass skips what was consumed.
        # The RNG streams go back now: nothing between here and the first resumed batch draws from
        # them (the loaders have their own generators; SeededItems restores what it touches).
        self.sampler.skip = state["batches_done"] * self.batch_size
        set_rng_states({"torch": state["torch"], "numpy": _np_unstate(state["numpy"]),
                        "python": _py_unstate(state["python"]), **({"cuda": state["cuda"]} if "cuda" in state else {})})


# numpy's and Python's RNG states as plain containers and tensors (weights-only checkpoints).
def _np_state(s) -> dict:
    return {"keys": torch.from_numpy(s[1].astype(np.int64)), "pos": s[2], "has_gauss": s[3], "gauss": s[4]}


def _np_unstate(d: dict):
    return ("MT19937", d["keys"].numpy().astype(np.uint32), int(d["pos"]), int(d["has_gauss"]), float(d["gauss"]))


def _py_state(s) -> dict:
    return {"version": s[0], "state": torch.tensor(s[1], dtype=torch.int64), "gauss": s[2]}


def _py_unstate(d: dict):
    return (int(d["version"]), tuple(int(v) for v in d["state"].tolist()), d["gauss"])
