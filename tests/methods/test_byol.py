"""BYOL through the Lightning Trainer: EMA cadence, momentum by samples seen, kappa under DDP."""

import subprocess
import sys

import pytest
import torch

from ssl_suite.config import load_config
from ssl_suite.ema import EMATarget
from ssl_suite.train import pretrain

BASE = [
    "method.name=byol",
    "model.name=vit_nano_patch7_28_sigmoid",
    "trainer.accelerator=cpu",
    "data.num_workers=0",
    "method.proj_hidden_dim=64",
    "method.pred_hidden_dim=64",
    "method.proj_output_dim=32",
    "optim.base_batch_size=16",
    "trainer.max_epochs=1",
]


def run(root, tmp_path, monkeypatch, *extra):
    """Train one epoch; return (samples seen before it, momentum) for every EMA update, and micro-batches."""
    updates, micro = [], []
    original_update = EMATarget.update

    def update(self, online, momentum):
        updates.append(momentum)
        original_update(self, online, momentum)

    monkeypatch.setattr(EMATarget, "update", update)
    cfg = load_config(None, [*BASE, f"data.root={root}", f"output_dir={tmp_path}", *extra])

    import pytorch_lightning as pl

    class Count(pl.Callback):
        def on_train_batch_end(self, *args):
            micro.append(1)

    pretrain(cfg, callbacks=[Count()], limit_val_batches=1)
    effective = cfg.data.batch_size * cfg.trainer.accumulate_grad_batches
    return [(i * effective, m) for i, m in enumerate(updates)], len(micro)  # samples seen before the update


def test_accumulation_updates_ema_once_per_optimizer_step(fake_fashion_mnist, tmp_path, monkeypatch):
    updates, micro = run(
        fake_fashion_mnist, tmp_path, monkeypatch, "data.batch_size=8", "trainer.accumulate_grad_batches=4"
    )
    assert micro == 12 and len(updates) == 3  # 96 images / 8 = 12 micro-batches, 3 optimizer steps


def test_momentum_depends_on_samples_seen_not_on_batching(fake_fashion_mnist, tmp_path, monkeypatch):
    # Same effective batch (16) reached two ways: equal kappa, equal momentum at equal samples.
    plain, _ = run(fake_fashion_mnist, tmp_path / "a", monkeypatch, "data.batch_size=16")
    accum, _ = run(
        fake_fashion_mnist, tmp_path / "b", monkeypatch, "data.batch_size=4", "trainer.accumulate_grad_batches=4"
    )
    assert [s for s, _ in plain] == [s for s, _ in accum]
    assert [m for _, m in plain] == pytest.approx([m for _, m in accum])
    # A 2x batch without the rule: at the samples both runs reach, the schedule agrees.
    double, _ = run(
        fake_fashion_mnist, tmp_path / "c", monkeypatch, "data.batch_size=32", "method.ema_scaling_rule=false"
    )
    at = dict(plain)
    for samples, momentum in double:
        assert momentum == pytest.approx(at[samples])


def test_rule_raises_momentum_to_kappa(fake_fashion_mnist, tmp_path, monkeypatch):
    off, _ = run(fake_fashion_mnist, tmp_path / "a", monkeypatch, "data.batch_size=32", "method.ema_scaling_rule=false")
    on, _ = run(fake_fashion_mnist, tmp_path / "b", monkeypatch, "data.batch_size=32")
    for (_, m_off), (_, m_on) in zip(off, on):
        assert m_on == pytest.approx(m_off**2)  # kappa = 32 / 16


def test_ddp_two_processes_report_kappa_of_the_real_effective_batch(fake_fashion_mnist, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "ssl_suite.cli",
        "pretrain",
        "configs/demo.yaml",
        *BASE,
        f"data.root={fake_fashion_mnist}",
        f"output_dir={tmp_path}",
        "data.batch_size=8",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.accumulate_grad_batches=2",
        "trainer.max_steps=1",
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # 8 per device x 2 devices x 2 accumulation = 32 = kappa 2 x base 16
    assert "effective batch 32 = kappa 2 x base 16" in out.stdout + out.stderr  # printed by rank 0
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 1
