"""Export that the ecosystem loads: a Hub-style folder (model.safetensors, config.json, README.md
model card) that timm.create_model("local-dir:...", pretrained=True) loads strictly and offline,
with the same features as the checkpoint's backbone; the card names the objective and results."""

import json

import pytest
import timm
import torch

from ssl_suite.cli import main
from ssl_suite.config import load_config
from ssl_suite.eval.run import backbone_from
from ssl_suite.train import pretrain


@pytest.fixture
def trained(fake_fashion_mnist, tmp_path):
    args = [
        "configs/demo.yaml",
        "trainer.accelerator=cpu",
        "data.num_workers=0",
        "data.batch_size=16",
        "trainer.max_steps=2",
        "trainer.max_epochs=1",
        "model.attention=softmax",
        f"data.root={fake_fashion_mnist}",
        f"output_dir={tmp_path / 'run'}",
    ]
    ckpt = pretrain(load_config(args[0], args[1:]), limit_val_batches=1)
    return ckpt, args


def test_hub_folder_loads_in_timm_with_the_checkpoints_features(trained, tmp_path, monkeypatch, capsys):
    ckpt, args = trained
    assert main(["eval", "linear,knn", *args, "--no-baseline", "eval.linear_epochs=2", "eval.knn_k=[5]"]) == 0
    out = tmp_path / "hub"
    assert main(["export", str(ckpt), str(out)]) == 0
    assert f"timm.create_model('local-dir:{out}', pretrained=True)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "vit_nano_patch7_28_sigmoid" and config["model_args"]["attention"] == "softmax"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert loaded.blocks[0].attn.attention == "softmax"  # the trained attention, not the name's default
    reference, _ = backbone_from(load_config(args[0], args[1:]), str(ckpt))
    images = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), reference.eval()(images))
    card = (out / "README.md").read_text()
    assert "simclr" in card and "https://arxiv.org/abs/2002.05709" in card
    assert "| pretrained (vit_nano_patch7_28_sigmoid, softmax) |" in card  # the saved eval results
    assert f'timm.create_model("local-dir:{out}", pretrained=True)' in card


def test_an_existing_export_is_kept_unless_overwrite(trained, tmp_path, capsys):
    ckpt, _ = trained
    out = tmp_path / "hub"
    assert main(["export", str(ckpt), str(out)]) == 0
    before = (out / "model.safetensors").read_bytes()
    assert main(["export", str(ckpt), str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    assert main(["export", str(ckpt), str(out), "--overwrite"]) == 0
    assert not list(tmp_path.glob(".hub*"))  # no temporary or old folder left behind
