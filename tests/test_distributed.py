"""2 CPU processes (Lightning DDP, gloo) against 1 process at the same global batch: the same loss
and the same parameters after one step, EMA target included, for each objective.

The data path makes this a fair test: rank r takes every other sample of the epoch's order
(together the 1-process batch) with per-sample seeded augmentation; heads' BatchNorm is synced.
MAE's masks are made a function of each image for the test, as the real ones are per-rank random
draws; I-JEPA is left out: its context is cut to the shortest one in each rank's batch, so a
2-rank step is a different (equally valid) computation from a 1-process step.
The runs are float64 with SGD, so that what is left is summation order (1e-9 holds): in float32
a 2 x 8 batch sums LayerScale gradients in another order than a 16 batch, which moved them by
up to 4e-5 after one step; AdamW's first step (about lr x sign(g)) would hide real errors."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.conftest import TINY_OBJECTIVES

CHILD = textwrap.dedent("""
    import json, sys, torch
    import pytorch_lightning as pl
    from ssl_suite.config import load_config
    from ssl_suite.methods.masking import RandomMask
    from ssl_suite.methods import MAE
    from ssl_suite.train import pretrain

    def content_mask(self, images):  # per image, from its pixels: the same whichever rank holds it
        noise = torch.stack([torch.rand(self.num_patches, generator=torch.Generator().manual_seed(
            int(img.double().abs().sum() * 1000) % 2**31)) for img in images])
        order = noise.argsort(1)
        keep = round(self.num_patches * (1 - self.mask_ratio))
        return RandomMask(order[:, :keep], order[:, keep:])

    MAE.draw_mask = content_mask

    class Loss(pl.Callback):
        def on_train_end(self, trainer, module):
            if trainer.is_global_zero:
                out = {"loss": float(trainer.callback_metrics["train_loss"])}
                open(sys.argv[1], "w").write(json.dumps(out))

    pretrain(load_config(None, sys.argv[2:]), callbacks=[Loss()], limit_val_batches=1)
""")

# MAE on 4 px patches: 7 px patches leave it too few to mask.
OBJECTIVES = {name: TINY_OBJECTIVES[name] for name in ("simclr", "polyview", "byol")}
OBJECTIVES["mae"] = [*TINY_OBJECTIVES["mae"], "model.name=vit_nano_patch4_28_sigmoid"]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_two_ddp_processes_match_one_process_at_the_same_global_batch(objective, fake_fashion_mnist, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    # gloo on CPU here; the GPU lane reruns this file over NCCL (tests/gpu/test_gpu_lane.py).
    common = [
        f"trainer.accelerator={os.environ.get('SSL_SUITE_TEST_ACCELERATOR', 'cpu')}",
        "data.num_workers=0",
        "data.augment_on=cpu",
        "trainer.max_steps=1",
        "trainer.max_epochs=1",
        "optim.base_batch_size=16",
        "model.name=vit_nano_patch7_28_sigmoid",
        "optim.name=sgd",
        "trainer.precision=64-true",
        "method.proj_output_dim=32",
        f"data.root={fake_fashion_mnist}",
        *OBJECTIVES[objective],
    ]
    results = {}
    for name, extra in {
        "one": ["data.batch_size=16"],
        "ddp": ["data.batch_size=8", "trainer.devices=2", "trainer.strategy=ddp"],
    }.items():
        out = tmp_path / name
        run = subprocess.run(
            [sys.executable, str(script), str(tmp_path / f"{name}.json"), *common, *extra, f"output_dir={out}"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert run.returncode == 0, run.stderr[-2000:]
        ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        results[name] = (json.loads((tmp_path / f"{name}.json").read_text())["loss"], ckpt["state_dict"])
    (loss_one, one), (loss_ddp, ddp) = results["one"], results["ddp"]
    assert set(one) == set(ddp)
    for key in one:
        torch.testing.assert_close(ddp[key], one[key], atol=1e-9, rtol=1e-9, msg=key)
    assert loss_ddp == pytest.approx(loss_one, abs=1e-9)
    if objective == "byol":
        assert any(k.startswith("target.") for k in one)  # the EMA target is compared too
