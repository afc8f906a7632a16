"""The shipped ImageNet recipes against their papers, at the papers' batch (where the scaling
rules must be the identity) and at 1/4 and 4x that batch (where they must stay sane).

Sources (each number below is the paper's or its official code's):
- MAE: He et al. 2022, https://arxiv.org/abs/2111.06377; facebookresearch/mae PRETRAIN.md
  (64 GPUs x 64 = 4096, blr 1.5e-4, 800 epochs, 40 warm-up) and main_pretrain.py
  (lr = blr x batch / 256, AdamW betas (0.9, 0.95), weight decay 0.05, cosine to min_lr 0).
- SimCLR: Chen et al. 2020, https://arxiv.org/abs/2002.05709, section 2.3 (LARS 0.3 x B / 256 = 4.8
  at 4096, weight decay 1e-6, 10 warm-up epochs, cosine, 100 epochs) and Table 5 (temperature 0.1
  best at 4096); projection head 2048 -> 128.
- BYOL: Grill et al. 2020, https://arxiv.org/abs/2006.07733; google-deepmind/deepmind-research
  byol/configs/byol.py, 300-epoch preset: LARS base 0.3 x B / 256 (4.8 at 4096), weight decay 1e-6,
  tau_base 0.99, 10 warm-up epochs. (Appendix C's 1000-epoch run: 0.2, 1.5e-6, 0.996.)
- I-JEPA: Assran et al. 2023, https://arxiv.org/abs/2301.08243; facebookresearch/ijepa
  configs/in1k_vith14_ep300.yaml (16 GPUs x 128 = 2048, lr 1e-3 from start_lr 2e-4 over 40
  warm-up epochs, final_lr 1e-6, 300 epochs, weight decay 0.04 -> 0.4, ema [0.996, 1.0]) and
  src/helper.py (AdamW with PyTorch's default betas (0.9, 0.999)).
- Poly-view: Shidani et al. 2024, https://arxiv.org/abs/2403.05490, abstract: 128 epochs at batch
  256 (samples), here with M = 8 views; its optimizer values are SimCLR's (the appendix could not
  be read here; the config says so).
"""

import json
import math
from pathlib import Path

import pytest

from ssl_suite.cli import main
from ssl_suite.config import load_config
from ssl_suite.recipe import derive

PAPERS = {
    "mae_vit_b16_imagenet.yaml": dict(
        effective_batch=4096,
        optimizer="adamw",
        lr=1.5e-4 * 4096 / 256,
        betas=[0.9, 0.95],
        eps=1e-8,
        weight_decay=0.05,
        weight_decay_end=None,
        warmup_epochs=40,
        warmup_start_lr=0.0,
        final_lr=0.0,
        max_epochs=800,
        ema_momentum=None,
    ),
    "simclr_vit_s16_imagenet.yaml": dict(
        effective_batch=4096,
        optimizer="lars",
        lr=0.3 * 4096 / 256,
        betas=None,
        weight_decay=1e-6,
        weight_decay_end=None,
        warmup_epochs=10,
        warmup_start_lr=0.0,
        final_lr=0.0,
        max_epochs=100,
        ema_momentum=None,
    ),
    "byol_vit_s16_imagenet.yaml": dict(
        effective_batch=4096,
        optimizer="lars",
        lr=0.3 * 4096 / 256,
        betas=None,
        weight_decay=1e-6,
        weight_decay_end=None,
        warmup_epochs=10,
        warmup_start_lr=0.0,
        final_lr=0.0,
        max_epochs=300,
        ema_momentum=0.99,
    ),
    "ijepa_vit_b16_imagenet.yaml": dict(
        effective_batch=2048,
        optimizer="adamw",
        lr=1e-3,
        betas=[0.9, 0.999],
        eps=1e-8,
        weight_decay=0.04,
        weight_decay_end=0.4,
        warmup_epochs=40,
        warmup_start_lr=2e-4,
        final_lr=1e-6,
        max_epochs=300,
        ema_momentum=0.996,
    ),
    "polyview_vit_s16_imagenet.yaml": dict(
        effective_batch=256,
        optimizer="lars",
        lr=0.3,
        betas=None,
        weight_decay=1e-6,
        weight_decay_end=None,
        warmup_epochs=10,
        warmup_start_lr=0.0,
        final_lr=0.0,
        max_epochs=128,
        ema_momentum=None,
    ),
}
METHOD = {
    "mae_vit_b16_imagenet.yaml": dict(mask_ratio=0.75, decoder_dim=512, decoder_depth=8, norm_pix_loss=True),
    "simclr_vit_s16_imagenet.yaml": dict(temperature=0.1, proj_hidden_dim=2048, proj_output_dim=128),
    "byol_vit_s16_imagenet.yaml": dict(proj_hidden_dim=4096, proj_output_dim=256, pred_hidden_dim=4096),
    "ijepa_vit_b16_imagenet.yaml": dict(
        decoder_dim=384,
        decoder_depth=12,
        num_targets=4,
        target_scale=[0.15, 0.2],
        target_aspect=[0.75, 1.5],
        context_scale=[0.85, 1.0],
        min_context=10,
    ),
    "polyview_vit_s16_imagenet.yaml": dict(objective="geometric", temperature=0.1),
}


def test_every_imagenet_config_is_pinned():
    assert sorted(p.name for p in Path("configs/pretrain").glob("*imagenet.yaml")) == sorted(PAPERS)


def _approx(expected):
    return pytest.approx(expected, rel=1e-9, abs=1e-15) if expected is not None else None


@pytest.mark.parametrize("name", PAPERS)
def test_recipe_at_the_papers_batch_is_the_paper(name):
    cfg = load_config(Path("configs/pretrain") / name)
    got = derive(cfg)
    assert got["kappa"] == 1.0  # the config's hardware gives the paper's batch: no rule applies
    for key, expected in PAPERS[name].items():
        assert got[key] == (_approx(expected) if isinstance(expected, (float, list)) else expected), key
    for key, expected in METHOD[name].items():
        value = cfg.method[key]
        assert (list(value) if isinstance(expected, list) else value) == expected, key
    if name.startswith("polyview"):
        assert cfg.data.num_views == 8 and got["effective_batch"] * 8 == 2048  # K = 256 samples x M = 8 views


@pytest.mark.parametrize("factor", [0.25, 4])
@pytest.mark.parametrize("name", PAPERS)
def test_recipe_at_a_quarter_and_four_times_the_batch_stays_sane(name, factor):
    cfg = load_config(Path("configs/pretrain") / name)
    paper = PAPERS[name]
    per_device = int(cfg.data.batch_size * factor)
    got = derive(load_config(Path("configs/pretrain") / name, [f"data.batch_size={per_device}"]))
    assert got["effective_batch"] == paper["effective_batch"] * factor and got["kappa"] == factor
    rule = factor if paper["optimizer"] == "lars" else math.sqrt(factor)
    assert got["lr"] == pytest.approx(paper["lr"] * rule)
    assert got["warmup_start_lr"] == pytest.approx(paper["warmup_start_lr"] * rule)
    if got["betas"] is not None:
        assert all(0 < b < 1 for b in got["betas"])
        assert got["betas"] == pytest.approx([1 - factor * (1 - b) for b in paper["betas"]])
    if paper["ema_momentum"] is not None:
        assert got["ema_momentum"] == pytest.approx(paper["ema_momentum"] ** factor)
    assert got["weight_decay"] == paper["weight_decay"] and got["max_epochs"] == paper["max_epochs"]


def test_recipe_command_prints_json_with_the_documented_keys(capsys):
    assert main(["recipe", "configs/pretrain/ijepa_vit_b16_imagenet.yaml", "trainer.num_nodes=1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    for key in (
        "effective_batch",
        "optimizer",
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "warmup_epochs",
        "max_epochs",
        "ema_momentum",
    ):
        assert key in got
    assert got["effective_batch"] == 1024 and got["kappa"] == 0.5
    assert got["ema_momentum"] == pytest.approx(0.996**0.5)
    assert main(["recipe", "configs/pretrain/byol_vit_s16_imagenet.yaml"]) == 0
    text = capsys.readouterr().out
    assert "effective batch 4096 = 128 per device x 8 devices x 4 nodes x 1 accumulation" in text


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["data.batch_size=640"], "kappa 10 is too large for Adam betas (0.9, 0.95)"),  # MAE at 10 x 4096
        (["trainer.devices=auto"], "trainer.devices='auto': give the number of devices"),
        (["optim.warmup_epochs=900"], "optim.warmup_epochs=900.0 exceeds trainer.max_epochs=800"),
    ],
)
def test_bad_scaling_is_one_line_before_any_gpu_is_rented(overrides, match, capsys):
    assert main(["recipe", "configs/pretrain/mae_vit_b16_imagenet.yaml", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err and "Traceback" not in err
