"""Faults injected on purpose: non-finite losses and weights, a kill inside a checkpoint save, a
checkpoint that carries code."""

import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import pytorch_lightning as pl
import torch

from ssl_suite.checkpoints import read_state_dict
from ssl_suite.config import load_config
from ssl_suite.errors import UserError
from ssl_suite.methods import Contrastive
from ssl_suite.train import pretrain
from tests.conftest import TINY_OBJECTIVES

BASE = [
    "trainer.accelerator=cpu",
    "data.num_workers=0",
    "data.batch_size=16",
    "trainer.log_every_n_steps=1",
    "data.augment_on=device",
    "model.name=vit_nano_patch7_28_sigmoid",
    "trainer.max_epochs=3",
]


def config(root, out, *extra):
    return load_config("configs/demo.yaml", [*BASE, f"data.root={root}", f"output_dir={out}", *extra])


def nan_loss_at(monkeypatch, step):
    original = Contrastive.training_step

    def training_step(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        return loss * float("nan") if self.trainer.global_step == step else loss

    monkeypatch.setattr(Contrastive, "training_step", training_step)


def test_nonfinite_loss_stops_in_one_line_and_keeps_the_last_good_checkpoint(fake_fashion_mnist, tmp_path, monkeypatch):
    first = pretrain(config(fake_fashion_mnist, tmp_path, "trainer.max_steps=2"), limit_val_batches=1)
    nan_loss_at(monkeypatch, 3)
    with pytest.raises(UserError, match=r"^non-finite loss at step 3 \(simclr\): stopped") as err:
        pretrain(config(fake_fashion_mnist, tmp_path, "trainer.max_steps=5"), resume="last", limit_val_batches=1)
    assert "\n" not in str(err.value)
    assert torch.load(first, weights_only=True, map_location="cpu")["global_step"] == 2  # the good one is kept


class Poison(pl.Callback):
    """Makes the first block's attention produce NaN at one step; records weights around it."""

    def __init__(self, step):
        self.step, self.around = step, {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.around["before"] = module.backbone.patch_embed.proj.weight.detach().clone()
            self.saved = module.backbone.blocks[0].attn.qkv.bias.detach().clone()
            with torch.no_grad():
                module.backbone.blocks[0].attn.qkv.bias.fill_(float("nan"))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if "before" in self.around and "after" not in self.around:
            self.around["after"] = module.backbone.patch_embed.proj.weight.detach().clone()
            with torch.no_grad():
                module.backbone.blocks[0].attn.qkv.bias.copy_(self.saved)


def test_nonfinite_attention_is_named_and_skip_mode_drops_the_update(fake_fashion_mnist, tmp_path):
    with pytest.raises(UserError, match=r"non-finite attention output \(backbone.blocks.0.attn\) at step 1 \(simclr\)"):
        pretrain(
            config(fake_fashion_mnist, tmp_path / "stop", "trainer.max_steps=3"),
            callbacks=[Poison(1)],
            limit_val_batches=1,
        )
    poison = Poison(1)
    last = pretrain(
        config(fake_fashion_mnist, tmp_path / "skip", "trainer.max_steps=3", "trainer.nonfinite=skip"),
        callbacks=[poison],
        limit_val_batches=1,
    )
    assert torch.equal(poison.around["before"], poison.around["after"])  # that step changed nothing
    state = torch.load(last, weights_only=True, map_location="cpu")
    assert state["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_grad_norm_and_attention_row_sums_are_logged(fake_fashion_mnist, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pretrain(config(fake_fashion_mnist, tmp_path, "trainer.max_steps=2"), limit_val_batches=1)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    tags = events.Tags()["scalars"]
    assert "grad_norm" in tags
    rows = [t for t in tags if t.startswith("attention_row_sum/backbone_blocks_")]
    assert len(rows) == 6  # one per block of ViT-nano
    # b = -log n keeps a fresh network's row sums of order 1: n E[sigmoid(s - log n)] ~ E[e^s] =
    # e^(Var(s) / 2) for small e^s / n, with Var(s) ~ 1 under QK-norm: about 1 to 1.7 (no bias: ~n / 2 = 8.5).
    first = events.Scalars("attention_row_sum/backbone_blocks_0_attn")[0].value
    assert 0.5 < first < 2.0


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = None


def test_checkpoint_with_embedded_code_is_refused_and_never_runs(tmp_path):
    global MARKER
    MARKER = tmp_path / "payload_ran"
    evil = tmp_path / "evil.ckpt"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": {"backbone.x": Payload()}}, f)
    with pytest.raises(UserError, match="evil.ckpt was refused: it is not a weights-only PyTorch file") as err:
        read_state_dict(evil)
    assert "weights_only=False" not in str(err.value)  # never advice to load an untrusted pickle
    from ssl_suite.eval.features import extract_features  # the feature cache loads the same way

    torch.save({"meta": {}, "x": torch.zeros(1)}, tmp_path / "cache.pt")
    evil.replace(tmp_path / "cache.pt")
    ds = torch.utils.data.TensorDataset(torch.zeros(2, 3, 28, 28), torch.zeros(2, dtype=torch.long))
    model = torch.nn.Module()
    model.forward_features = lambda x: torch.zeros(len(x), 2, 4)
    model.num_prefix_tokens = 1
    extract_features(model, ds, cache_path=tmp_path / "cache.pt", cache_meta={"k": 1}, progress=False)
    assert not MARKER.exists()


KILL_IN_SAVE = textwrap.dedent("""
    import os, signal, sys
    from fsspec.implementations.local import LocalFileOpener
    from ssl_suite.config import load_config
    from ssl_suite.train import pretrain

    def write(self, data):  # half the bytes reach the disk, then the process dies
        self.f.write(data[: len(data) // 2]); self.f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    LocalFileOpener.write = write
    cfg = load_config("configs/demo.yaml", sys.argv[1:])
    pretrain(cfg, resume="last", limit_val_batches=1)
""")


def test_kill_inside_a_checkpoint_save_leaves_the_previous_one_loadable(fake_fashion_mnist, tmp_path):
    args = [*BASE, f"data.root={fake_fashion_mnist}", f"output_dir={tmp_path}"]
    last = pretrain(load_config("configs/demo.yaml", [*args, "trainer.max_steps=2"]), limit_val_batches=1)
    before = last.read_bytes()
    run = subprocess.run(
        [sys.executable, "-c", KILL_IN_SAVE, *args, "trainer.max_steps=4"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == -9, run.stderr[-1500:]  # killed inside the save
    assert last.read_bytes() == before
    assert torch.load(last, weights_only=True, map_location="cpu")["global_step"] == 2


KILL_AT_STEP = textwrap.dedent("""
    import os, signal, sys
    import pytorch_lightning as pl
    from ssl_suite.config import load_config
    from ssl_suite.train import pretrain

    class Die(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == int(sys.argv[1]):
                os.kill(os.getpid(), signal.SIGKILL)

    pretrain(load_config(None, sys.argv[2:]), callbacks=[Die()], limit_val_batches=1)
""")


@pytest.mark.parametrize(
    "method",
    [
        ["method.name=byol", "method.proj_hidden_dim=64", "method.pred_hidden_dim=64", "data.augment_on=cpu"],
        [
            *TINY_OBJECTIVES["ijepa"],
            "model.name=vit_nano_patch4_28_sigmoid",
            "method.target_scale=[0.1,0.15]",
            "data.augment_on=device",
            "model.drop_path_rate=0.1",
        ],
    ],
    ids=["byol-cpu-views", "ijepa-device-views-masks-droppath"],
)
def test_sigkill_mid_epoch_then_resume_ends_with_the_same_weights(fake_fashion_mnist, tmp_path, method):
    common = [
        "trainer.accelerator=cpu",
        "data.num_workers=0",
        "data.batch_size=16",
        "trainer.max_epochs=2",
        "optim.base_batch_size=16",
        "model.name=vit_nano_patch7_28_sigmoid",
        *method,
        f"data.root={fake_fashion_mnist}",
        "trainer.checkpoint_every_n_steps=4",
    ]
    whole = pretrain(load_config(None, [*common, f"output_dir={tmp_path / 'whole'}"]), limit_val_batches=1)
    killed = [*common, f"output_dir={tmp_path / 'killed'}"]
    run = subprocess.run(
        [sys.executable, "-c", KILL_AT_STEP, "10", *killed], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == -9, run.stderr[-1500:]  # 6 steps per epoch: killed mid-way through the second
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True, map_location="cpu")["global_step"] == 8  # mid-epoch checkpoint
    resumed = pretrain(load_config(None, killed), resume="last", limit_val_batches=1)
    a = torch.load(whole, weights_only=True, map_location="cpu")
    b = torch.load(resumed, weights_only=True, map_location="cpu")
    assert a["global_step"] == b["global_step"] == 12
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key  # backbone, heads, EMA target, probe: bit for bit
