"""The on-the-fly (augmented) linear probe and the ImageNet linear-probe script, end to end on tiny data."""

import json
import subprocess
import sys

import torch

from ssl_suite.config import load_config
from ssl_suite.eval.run import backbone_from, run_probes


def test_augmented_probe_trains_on_the_fly_and_leaves_the_backbone_frozen(fake_fashion_mnist, tmp_path):
    cfg = load_config(
        "configs/demo.yaml",
        [
            f"data.root={fake_fashion_mnist}",
            f"output_dir={tmp_path}",
            "eval.linear_augment=true",
            "eval.linear_epochs=2",
            "eval.linear_batch_size=16",
            "data.num_workers=0",
        ],
    )
    model, identity = backbone_from(cfg, None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = run_probes(cfg, model, identity, probes=("linear",), name="random init")["linear"]
    assert 0 <= result["top1"] <= result["top5"] <= 100 and "on the fly" in result["protocol"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not (tmp_path / "features").exists()  # nothing cached on this path
    assert list((tmp_path / "tensorboard" / "linear_augmented").rglob("events.out.tfevents.*"))


def test_linear_probe_script_takes_an_imagenet_root(tiny_image_folder, tmp_path):
    import timm

    import ssl_suite.models  # noqa: F401

    torch.save(timm.create_model("vit_tiny_patch16_224_sigmoid", num_classes=1000).state_dict(), tmp_path / "w.pth")
    run = subprocess.run(
        [
            sys.executable,
            "scripts/linear_probe.py",
            "--data",
            str(tiny_image_folder),
            "--probe",
            "knn",
            "--checkpoint",
            str(tmp_path / "w.pth"),
            f"output_dir={tmp_path}",
            "eval.knn_k=[3]",
            "eval.batch_size=8",
            "model.name=vit_tiny_patch16_224_sigmoid",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| pretrained (vit_tiny_patch16_224_sigmoid, sigmoid) |" in run.stdout
    results = json.loads((tmp_path / "w.pth.eval.json").read_text())
    assert set(results) == {"pretrained", "random init", "raw pixels"} and "k=3" in results["pretrained"]["knn"]
    assert results["raw pixels"]["features"] == "raw pixels (area-downsampled to 32 x 32)"  # the config's floor
