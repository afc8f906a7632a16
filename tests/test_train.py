"""Pretraining through the Lightning Trainer: one step on ImageNet-style data, exact resume."""
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ssl_suite.config import load_config
from ssl_suite.train import pretrain

QUICK = ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.strategy=auto", "trainer.precision=32-true",
         "data.num_workers=0", "trainer.log_every_n_steps=1"]


@pytest.mark.parametrize("config", sorted(Path("configs/pretrain").glob("*imagenet.yaml")), ids=str)
def test_imagenet_config_runs_one_step_on_tiny_image_folder(config, tiny_image_folder, tmp_path):
    cfg = load_config(config, QUICK + [
        f"data.root={tiny_image_folder}", f"output_dir={tmp_path / 'run'}", "data.batch_size=4",
        "trainer.max_steps=1", "trainer.max_epochs=1"])
    last = pretrain(cfg, limit_val_batches=1)
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
    args = QUICK + [f"data.root={fake_fashion_mnist}", f"output_dir={tmp_path / 'run'}", "data.batch_size=16",
                    "model.name=vit_nano_patch7_28_sigmoid", "model.attention=sigmoid"]
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
