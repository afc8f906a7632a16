"""Each DDP rank draws its own random numbers (MAE's official code seeds seed + rank), and a
resumed run draws the same ones again: 2 CPU processes (gloo), MAE with device-side views.

What is compared is the randomness itself, not its effect on data (the ranks hold different
images anyway): the indices of MAE's masks and the crop boxes kornia drew for the views."""

import json
import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    import pytorch_lightning as pl
    from ssl_suite.config import load_config
    from ssl_suite.methods import MAE
    from ssl_suite.train import pretrain

    drawn = {}
    original = MAE.draw_mask

    def recording_mask(self, images):
        mask = original(self, images)
        step = self.trainer.global_step
        drawn.setdefault(step, {})["mask"] = mask.keep[:2].tolist()
        return mask

    MAE.draw_mask = recording_mask

    class Views(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            crop = module.device_views.view[0]._params["src"]  # the boxes RandomResizedCrop drew
            drawn.setdefault(trainer.global_step, {})["crop"] = crop[:2].tolist()

        def on_train_batch_end(self, trainer, *args):
            if sys.argv[2] == f"kill:{trainer.global_step}":  # every rank dies here, mid-epoch
                os.kill(os.getpid(), signal.SIGKILL)

        def on_train_end(self, trainer, module):
            out = Path(sys.argv[1]) / f"rank{trainer.global_rank}-{trainer.global_step}.json"
            out.write_text(json.dumps(drawn))

    cfg = load_config(None, sys.argv[3:])
    pretrain(cfg, callbacks=[Views()], resume="last" if sys.argv[2] == "resume" else None, limit_val_batches=1)
""")


def test_two_ranks_draw_different_masks_and_views_and_the_same_again_after_resume(fake_fashion_mnist, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    common = [
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "data.num_workers=0",
        "data.augment_on=device",
        "data.batch_size=8",
        "data.num_views=1",
        "method.name=mae",
        "model.name=vit_nano_patch4_28_sigmoid",
        "method.decoder_dim=32",
        "method.decoder_depth=1",
        "method.decoder_heads=2",
        "trainer.max_epochs=1",
        f"data.root={fake_fashion_mnist}",
    ]

    def run(name, mode="fresh", status=0):
        args = [*common, "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=2", f"output_dir={tmp_path / name}"]
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path), mode, *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == status, done.stderr[-2000:]

    run("whole")
    whole = [json.loads((tmp_path / f"rank{r}-4.json").read_text()) for r in (0, 1)]
    for r in (0, 1):
        (tmp_path / f"rank{r}-4.json").unlink()
    run("split", "kill:3", status=-9)  # 6 steps per epoch: last.ckpt at step 2, mid-epoch
    run("split", "resume")
    resumed = [json.loads((tmp_path / f"rank{r}-4.json").read_text()) for r in (0, 1)]

    for step in ("0", "1", "2", "3"):
        assert whole[0][step]["mask"] != whole[1][step]["mask"], f"step {step}: both ranks drew the same masks"
        assert whole[0][step]["crop"] != whole[1][step]["crop"], f"step {step}: both ranks drew the same crops"
    assert whole[0]["0"]["mask"] != whole[0]["1"]["mask"]  # and each step draws anew
    for r in (0, 1):
        assert set(resumed[r]) == {"2", "3"}
        for step in ("2", "3"):
            assert resumed[r][step] == whole[r][step], f"rank {r} step {step} differs after the resume"
