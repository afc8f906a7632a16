"""Pretraining through the Lightning Trainer: one step on ImageNet-style data, exact resume."""

import json
import math
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ssl_suite.config import load_config
from ssl_suite.recipe import derive
from ssl_suite.train import pretrain
from tests.conftest import TINY_OBJECTIVES

QUICK = [
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.strategy=auto",
    "trainer.precision=32-true",
    "data.num_workers=0",
    "trainer.log_every_n_steps=1",
]


class RecordOptimizer(pl.Callback):
    def on_train_start(self, trainer, module):
        self.groups = [{k: v for k, v in g.items() if k != "params"} for g in trainer.optimizers[0].param_groups]
        self.optimizer = type(trainer.optimizers[0]).__name__


@pytest.mark.parametrize("config", sorted(Path("configs/pretrain").glob("*imagenet.yaml")), ids=str)
def test_imagenet_config_runs_one_step_on_tiny_image_folder(config, tiny_image_folder, tmp_path):
    cfg = load_config(
        config,
        QUICK
        + [
            f"data.root={tiny_image_folder}",
            f"output_dir={tmp_path / 'run'}",
            "data.batch_size=4",
            "trainer.max_steps=1",
            "trainer.num_nodes=1",
        ],
    )
    seen = RecordOptimizer()
    last = pretrain(cfg, callbacks=[seen], limit_val_batches=1)
    # The optimizer is built from what ``ssl-suite recipe`` prints for this machine (1 device x 4).
    recipe = derive(cfg)
    assert recipe["effective_batch"] == 4
    assert seen.optimizer == {"adamw": "AdamW", "lars": "LARS"}[recipe["optimizer"]]
    decayed = next(g for g in seen.groups if g["decayed"])
    assert decayed["initial_lr"] == pytest.approx(recipe["lr"])
    assert decayed["weight_decay"] == pytest.approx(recipe["weight_decay"])
    if recipe["betas"] is not None:
        assert list(decayed["betas"]) == pytest.approx(recipe["betas"]) and decayed["eps"] == pytest.approx(
            recipe["eps"]
        )
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 1
    assert ckpt["state_dict"]["backbone.pos_embed"].shape[:2] == (1, 197)  # class token + 14 x 14 patches
    assert (tmp_path / "run" / "config.yaml").exists()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


class RecordStart(pl.Callback):
    def on_train_start(self, trainer, module):
        self.step = trainer.global_step
        self.optimizer = {k: v.clone() for k, v in trainer.optimizers[0].state_dict()["state"][0].items()}
        self.weights = module.backbone.cls_token.detach().clone()


def test_resume_continues_from_saved_step_with_saved_optimizer_state(fake_fashion_mnist, tmp_path):
    args = QUICK + [
        f"data.root={fake_fashion_mnist}",
        f"output_dir={tmp_path / 'run'}",
        "data.batch_size=16",
        "model.name=vit_nano_patch7_28_sigmoid",
        "model.attention=sigmoid",
    ]
    first = pretrain(load_config(None, args + ["trainer.max_steps=3"]), limit_val_batches=1)
    saved = torch.load(first, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 3

    probe = RecordStart()
    pretrain(load_config(None, args + ["trainer.max_steps=5"]), resume="last", callbacks=[probe], limit_val_batches=1)
    assert probe.step == 3
    for key, value in saved["optimizer_states"][0]["state"][0].items():
        torch.testing.assert_close(probe.optimizer[key], value)
    torch.testing.assert_close(probe.weights, saved["state_dict"]["backbone.cls_token"])
    after = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert after["global_step"] == 5


def test_training_seconds_survive_a_session_killed_before_it_wrote_its_stats(fake_fashion_mnist, tmp_path):
    # a first session of 3 steps whose checkpoint claims 1000 s of training, then killed before writing
    # train_stats.json: the resumed session must add its own seconds to those 1000, not restart at 0
    run = tmp_path / "run"
    args = QUICK + [f"data.root={fake_fashion_mnist}", f"output_dir={run}", "data.batch_size=16"]
    args += ["model.name=vit_nano_patch7_28_sigmoid", "model.attention=sigmoid"]
    last = pretrain(load_config(None, args + ["trainer.max_steps=3"]), limit_val_batches=1)
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert 0 < checkpoint["callbacks"]["RunStats"]["train_seconds"] < 1000
    checkpoint["callbacks"]["RunStats"]["train_seconds"] = 1000.0
    torch.save(checkpoint, last)
    (run / "train_stats.json").unlink()

    started = time.perf_counter()
    pretrain(load_config(None, args + ["trainer.max_steps=5"]), resume="last", limit_val_batches=1)
    stats = json.loads((run / "train_stats.json").read_text())
    assert 1000 < stats["train_seconds"] < 1000 + (time.perf_counter() - started)
    assert stats["steps"] == 5


class RecordSchedules(pl.Callback):
    def __init__(self):
        self.lr, self.wd = [], []

    def on_train_batch_end(self, trainer, module, *args):  # the values this step trained with
        group = trainer.optimizers[0].param_groups[0]
        self.wd.append(group["weight_decay"])

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.lr.append(optimizer.param_groups[0]["lr"])


def test_ijepa_schedules_warm_up_from_start_lr_and_raise_weight_decay_by_cosine(fake_fashion_mnist, tmp_path):
    """I-JEPA's schedulers (facebookresearch/ijepa src/utils/schedulers.py), written out: lr linear
    from start_lr to lr over the warm-up, then cosine to final_lr; weight decay
    wd_end + (wd - wd_end) (1 + cos(pi t / T)) / 2 over all T steps."""
    args = QUICK + [
        f"data.root={fake_fashion_mnist}",
        f"output_dir={tmp_path}",
        "data.batch_size=16",
        *TINY_OBJECTIVES["ijepa"],
        "model.name=vit_nano_patch4_28_sigmoid",
        "trainer.max_epochs=2",
        "optim.lr=1e-3",
        "optim.warmup_start_lr=2e-4",
        "optim.final_lr=1e-6",
        "optim.warmup_epochs=1",
        "optim.weight_decay=0.04",
        "optim.weight_decay_end=0.4",
        "optim.base_batch_size=16",
    ]
    seen = RecordSchedules()
    pretrain(load_config(None, args), callbacks=[seen], limit_val_batches=1)
    total, warmup = 12, 6  # 96 images / 16 per step, 2 epochs
    assert len(seen.lr) == len(seen.wd) == total
    expected_wd = [0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * t / total)) / 2 for t in range(total)]
    assert seen.wd == pytest.approx(expected_wd)
    # lightly's warm-up reaches the peak at its last step ((t + 1) / warm-up), then cosine over the rest.
    expected_lr = [2e-4 + (1e-3 - 2e-4) * (t + 1) / warmup for t in range(warmup)]
    expected_lr += [
        1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi * t / (total - warmup - 1))) / 2 for t in range(total - warmup)
    ]
    assert seen.lr == pytest.approx(expected_lr)
