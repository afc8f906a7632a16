"""Pretraining: config -> data + method -> Lightning Trainer -> checkpoints in ``output_dir``.

Lightning does the loop, devices (DDP via ``trainer.devices``/``num_nodes``/``strategy``),
precision, logging (TensorBoard) and checkpoints (``last.ckpt`` plus one every
``trainer.checkpoint_every_n_epochs``); nothing here re-implements those.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Sequence, Sized
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, Dataset

from .checkpoints import checkpoint_dir, suite_config
from .compilation import CompileTimer, compile_in_place, wants_compile
from .config import to_yaml
from .data import eval_dataset, has_labels, num_classes, ssl_train_dataset
from .errors import UserError
from .files import atomic_write_text
from .guards import NonFiniteGuard
from .methods import SSLMethod, build_method
from .resume import EpochSampler, ResumeState, SeededItems
from .sync_bn import globalise_batchnorm


class RunStats(pl.Callback):
    """``output_dir/train_stats.json``: training seconds (summed over resumed sessions), samples
    seen, throughput and peak memory (GPU allocator peak, else the process's peak RSS).

    The seconds so far travel in every checkpoint (the callback's state), so a session killed
    before it could write the file still counts up to its last checkpoint when resumed; the
    steps after that checkpoint are lost and redone, so is their time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start: float | None = None
        self.before = 0.0
        self.resumed: float | None = None  # seconds carried by the checkpoint resumed from

    def state_dict(self) -> dict[str, float]:
        running = time.perf_counter() - self.start if self.start is not None else 0.0
        return {"train_seconds": self.before + running}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.resumed = float(state_dict.get("train_seconds", 0.0))

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.resumed is not None:
            self.before = self.resumed
        elif self.path.is_file():  # checkpoints from before the seconds were carried in them
            self.before = json.loads(self.path.read_text()).get("train_seconds", 0.0)
        self.start = time.perf_counter()
        self.first_step = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        method = cast(SSLMethod, module)  # the suite's modules only
        seconds = time.perf_counter() - cast(float, self.start)
        samples = trainer.global_step * method.effective_batch_size()
        session = (trainer.global_step - self.first_step) * method.effective_batch_size()
        if torch.cuda.is_available() and module.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(module.device) / 2**20
        else:  # ru_maxrss is KiB on Linux
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        atomic_write_text(
            self.path,
            json.dumps(
                {
                    "train_seconds": self.before + seconds,
                    "samples_seen": samples,
                    "steps": trainer.global_step,
                    "samples_per_second": session / seconds if seconds > 0 else 0.0,
                    "peak_memory_mib": peak,
                },
                indent=2,
            ),
        )


def step_checkpoints(cfg: DictConfig) -> list:
    """last.ckpt also every N optimizer steps and/or every M minutes (mid-epoch, for exact resume)."""
    trainer_cfg = cfg.trainer
    triggers = (
        [dict(every_n_train_steps=trainer_cfg.checkpoint_every_n_steps)] if trainer_cfg.checkpoint_every_n_steps else []
    )
    if trainer_cfg.checkpoint_every_n_minutes:
        triggers.append(dict(train_time_interval=timedelta(minutes=trainer_cfg.checkpoint_every_n_minutes)))
    return [
        ModelCheckpoint(
            dirpath=checkpoint_dir(cfg), save_last=True, save_top_k=0, enable_version_counter=False, **trigger
        )
        for trigger in triggers
    ]


# The trainer section's keys that are Lightning Trainer arguments of the same name.
LIGHTNING_TRAINER_KEYS = (
    "max_epochs",
    "max_steps",
    "accelerator",
    "devices",
    "num_nodes",
    "strategy",
    "precision",
    "accumulate_grad_batches",
    "gradient_clip_val",
    "log_every_n_steps",
    "limit_train_batches",
    "deterministic",
)


def build_trainer(cfg: DictConfig, **overrides: Any) -> pl.Trainer:
    trainer_cfg = cfg.trainer
    out = Path(cfg.output_dir)
    callbacks = [
        # No version counter: last.ckpt is always the newest, never a stale one beside last-v1.ckpt.
        ModelCheckpoint(
            dirpath=checkpoint_dir(cfg),
            filename="epoch{epoch:03d}",
            auto_insert_metric_name=False,
            save_last=True,
            save_top_k=-1,
            every_n_epochs=trainer_cfg.checkpoint_every_n_epochs,
            enable_version_counter=False,
        ),
        *step_checkpoints(cfg),
        LearningRateMonitor(logging_interval="step"),
        TQDMProgressBar(refresh_rate=10),
        RunStats(out / "train_stats.json"),
        NonFiniteGuard(trainer_cfg.nonfinite, cfg.method.name, trainer_cfg.log_every_n_steps),
    ]
    kwargs = {key: trainer_cfg[key] for key in LIGHTNING_TRAINER_KEYS}
    kwargs.update(
        default_root_dir=str(out),
        logger=TensorBoardLogger(str(out), name="tensorboard", version=""),
        callbacks=callbacks,
        enable_model_summary=False,
        use_distributed_sampler=False,  # EpochSampler splits the data across ranks itself
    )
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


def resume_path(cfg: DictConfig, resume: str | None, overwrite: bool = False) -> str | None:
    """``--resume`` alone means this run's last.ckpt; a path means that checkpoint. A fresh run
    never silently replaces another run's checkpoints: it needs ``overwrite``."""
    if resume is None:
        existing = sorted(checkpoint_dir(cfg).glob("*.ckpt"))
        if existing and not overwrite:
            raise UserError(
                f"{checkpoint_dir(cfg)} already holds checkpoints ({existing[-1].name}, ...): "
                "pass --resume to continue that run, --overwrite to start again, or another output_dir="
            )
        return None
    path = checkpoint_dir(cfg) / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise UserError(f"cannot resume: checkpoint not found: {path}")
    suite_config(path)  # missing, empty, truncated, foreign or code-carrying: one line, before training starts
    return str(path)


def loader(dataset: Dataset, cfg: DictConfig, sampler: EpochSampler | None = None) -> DataLoader:
    """Training (with an ``EpochSampler``: resumable order, per-sample seeded augmentation) or
    validation (in order) batches."""
    data_cfg = cfg.data
    if sampler is not None:  # per-item seeds only for random (CPU-side) views
        dataset = SeededItems(dataset, cfg.seed if data_cfg.augment_on == "cpu" else None)
    # Its own generator: making an iterator (worker seeds) never draws from the global RNG stream.
    generator = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(
        dataset,
        batch_size=data_cfg.batch_size,
        sampler=sampler,
        drop_last=sampler is not None,
        num_workers=data_cfg.num_workers,
        persistent_workers=data_cfg.num_workers > 0,
        pin_memory=False,
        generator=generator,
    )


def pretrain(
    cfg: DictConfig,
    resume: str | None = None,
    callbacks: Sequence[pl.Callback] = (),
    overwrite: bool = False,
    **trainer_overrides: Any,
) -> Path:
    """Train ``cfg.method`` and return the path of the last checkpoint; ``callbacks`` are
    added to the standard ones (checkpoints, learning-rate monitor, progress bar)."""
    ckpt = resume_path(cfg, resume, overwrite)
    pl.seed_everything(cfg.seed, workers=True)
    train_set = ssl_train_dataset(cfg.data)
    val_set = eval_dataset(cfg.data, cfg.data.eval_split) if has_labels(cfg.data) else None
    n_train = len(cast(Sized, train_set))
    if n_train < cfg.data.batch_size:
        raise UserError(f"training set has {n_train} images, fewer than one batch ({cfg.data.batch_size})")
    method = build_method(cfg, num_classes(train_set))
    trainer = build_trainer(cfg, **trainer_overrides)
    if cfg.trainer.sync_batchnorm and trainer.world_size > 1:
        globalise_batchnorm(method)  # heads' BatchNorm over the global batch (CPU and GPU alike)
    timer = (
        [CompileTimer(compile_in_place(method))]
        if wants_compile(cfg.trainer.compile, trainer.strategy.root_device.type)
        else []
    )
    sampler = EpochSampler(n_train, cfg.seed, num_replicas=trainer.world_size, rank=trainer.global_rank)
    # Trainer.callbacks is set by Lightning's callback connector, invisible to type checkers.
    trainer.callbacks.extend([*timer, ResumeState(sampler, cfg.data.batch_size), *callbacks])  # type: ignore[attr-defined]
    if trainer.is_global_zero:
        if ckpt is None:  # everything built: only now drop the old run's checkpoints (overwrite)
            for path in checkpoint_dir(cfg).glob("*.ckpt"):
                path.unlink()
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(cfg.output_dir) / "config.yaml", to_yaml(cfg))
    # weights_only: resuming never runs code from a checkpoint file.
    val = loader(val_set, cfg) if val_set is not None else None
    trainer.fit(method, loader(train_set, cfg, sampler), val, ckpt_path=ckpt, weights_only=True)
    return checkpoint_dir(cfg) / "last.ckpt"
