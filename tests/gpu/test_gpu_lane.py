"""The GPU lane: what only a CUDA machine can prove. Skipped without CUDA (tests/conftest.py);
run with ``pytest -m gpu`` on the first machine that has one.

- the Triton kernels in real fp16/bf16 (the interpreter upcasts tiles to fp32) against the
  float64 reference, within twice the same-dtype reference's error;
- one bf16-mixed training step of each objective on the GPU, and each shipped ImageNet config
  on a tiny ImageFolder (CUDA autocast's real dtype rules: LayerNorm in fp32);
- DDP over NCCL against one process at the same global batch, when two GPUs are visible.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from flash_sigmoid import check

from ssl_suite.config import load_config
from ssl_suite.train import pretrain
from tests.conftest import TINY_OBJECTIVES as OBJECTIVES

# A stuck case fails with its stack (pytest-timeout) instead of eating the lane's time: the
# first GPU run (H200) spent minutes in one ImageNet config's compiled step.
pytestmark = [pytest.mark.gpu, pytest.mark.timeout(240)]


@pytest.mark.parametrize("dtype", ["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("shape", check.ODD_SHAPES, ids=str)
def test_triton_kernels_match_float64_in_real_half_precision(shape, dtype):
    row = check.check_case(shape, dtype, "triton", "cuda")
    assert row["ok"], row


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_bf16_mixed_step_of_each_objective_on_the_gpu(objective, fake_fashion_mnist, tmp_path):
    cfg = load_config(
        "configs/demo.yaml",
        [
            "trainer.accelerator=gpu",
            "trainer.devices=1",
            "trainer.precision=bf16-mixed",
            "data.num_workers=0",
            "data.batch_size=16",
            "data.augment_on=device",
            "model.name=vit_nano_patch4_28_sigmoid",
            "trainer.max_steps=2",
            "trainer.max_epochs=1",
            "method.proj_output_dim=32",
            f"data.root={fake_fashion_mnist}",
            f"output_dir={tmp_path}",
            *OBJECTIVES[objective],
        ],
    )
    state = torch.load(pretrain(cfg, limit_val_batches=1), map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize("config", sorted(Path("configs/pretrain").glob("*imagenet.yaml")), ids=str)
def test_imagenet_config_bf16_step_on_the_gpu(config, tiny_image_folder, tmp_path):
    # eager: compiling a ViT-B/16 step took the first GPU run's whole time box (MAE); compilation
    # itself is covered by the five objectives' step above, on a small ViT
    cfg = load_config(
        config,
        [
            "trainer.devices=1",
            "trainer.num_nodes=1",
            "data.batch_size=4",
            "data.num_workers=0",
            "trainer.max_steps=1",
            "trainer.compile=false",
            f"data.root={tiny_image_folder}",
            f"output_dir={tmp_path}",
        ],
    )
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accelerator == "gpu"
    state = torch.load(pretrain(cfg, limit_val_batches=1), map_location="cpu", weights_only=True)
    assert state["global_step"] == 1


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP over NCCL needs two GPUs")
def test_ddp_over_nccl_matches_one_process():
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/test_distributed.py", "-k", "simclr or byol"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "SSL_SUITE_TEST_ACCELERATOR": "gpu"},
    )
    assert run.returncode == 0, run.stdout[-3000:]
