"""The CLI end to end on tiny data, and the one-line errors it promises."""

import json

from ssl_suite.cli import main

TINY = [
    "trainer.accelerator=cpu",
    "trainer.max_steps=2",
    "trainer.max_epochs=1",
    "data.batch_size=16",
    "data.num_workers=0",
    "eval.linear_epochs=5",
    "eval.knn_k=[5]",
    "eval.batch_size=64",
]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl-suite: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_pretrain_then_eval_prints_table_beside_random_init(fake_fashion_mnist, tmp_path, capsys):
    args = ["configs/demo.yaml", f"data.root={fake_fashion_mnist}", f"output_dir={tmp_path}", *TINY]
    assert main(["pretrain", *args]) == 0
    assert main(["eval", "all", *args]) == 0
    out = capsys.readouterr().out
    assert "| pretrained (vit_nano_patch7_28_sigmoid, sigmoid) |" in out
    assert "| random init (vit_nano_patch7_28_sigmoid, sigmoid) |" in out
    assert "| raw pixels |" in out and "pretrained minus raw pixels" in out
    assert "pretrained minus random init" in out and "kNN: DINO's weighted vote, cosine, k in [5], T=0.07" in out
    for column in ("linear top-1", "logistic top-1", "kNN top-1 (k=20)", "few-shot top-1", "worst-group", "ECE"):
        assert column in out
    results = json.loads((tmp_path / "checkpoints" / "last.ckpt.eval.json").read_text())
    assert set(results["pretrained"]) == {"encoder", "linear", "logistic", "knn", "fewshot", "fairness", "calibration"}
    assert set(results["raw pixels"]) == {"features", "linear", "logistic", "knn", "fewshot", "fairness", "calibration"}
    assert results["pretrained"]["encoder"] == "online" and "the checkpoint's online encoder" in out
    assert (tmp_path / "checkpoints" / "last.ckpt.eval.md").read_text().startswith("| backbone |")
    assert (tmp_path / "eval" / "reliability_pretrained.png").is_file()
    cached = list((tmp_path / "features").iterdir())
    assert len(cached) == 12  # (train + test) x (main + fairness set) x (pretrained, random init, raw pixels)
    baselines = sorted((tmp_path / "baselines").iterdir())
    assert len(baselines) == 12  # 6 probes x 2 floors, each computed once
    assert main(["eval", "knn", *args]) == 0  # second run reads the cache
    assert sorted((tmp_path / "features").iterdir()) == sorted(cached)
    assert sorted((tmp_path / "baselines").iterdir()) == baselines  # the floors' results were reused


def test_unknown_key_is_one_line(capsys):
    assert main(["pretrain", "configs/demo.yaml", "trainer.max_epoch=1"]) == 2
    err = one_line_error(capsys)
    assert "'trainer.max_epoch'" in err and "max_epochs" in err


def test_missing_dataset_is_one_line(tmp_path, capsys, monkeypatch):
    from ssl_suite.data import datasets

    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    assert main(["pretrain", "configs/demo.yaml", f"data.root={tmp_path / 'missing'}", f"output_dir={tmp_path}"]) == 2
    err = one_line_error(capsys)
    assert str(tmp_path / "missing") in err and "dataset-fashion-mnist" in err


def test_checkpoint_of_another_architecture_names_the_mismatch(fake_fashion_mnist, tmp_path, capsys):
    base = ["configs/demo.yaml", f"data.root={fake_fashion_mnist}", f"output_dir={tmp_path}", *TINY]
    assert main(["pretrain", *base]) == 0
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")
    assert main(["eval", "linear", *base, "model.name=vit_nano_patch4_28_sigmoid", "--checkpoint", ckpt]) == 2
    err = one_line_error(capsys)
    assert "does not fit" in err and "pos_embed" in err


def test_resume_without_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["pretrain", "configs/demo.yaml", f"output_dir={tmp_path}", "--resume"]) == 2
    assert "cannot resume" in one_line_error(capsys)


def test_unknown_model_lists_the_sigmoid_names(fake_fashion_mnist, tmp_path, capsys):
    assert (
        main(
            [
                "pretrain",
                "configs/demo.yaml",
                f"data.root={fake_fashion_mnist}",
                f"output_dir={tmp_path}",
                *TINY,
                "model.name=vit_nope_sigmoid",
            ]
        )
        == 2
    )
    err = one_line_error(capsys)
    assert "vit_nope_sigmoid" in err and "vit_small_patch16_224_sigmoid" in err


def test_fresh_run_never_silently_replaces_checkpoints(fake_fashion_mnist, tmp_path, capsys):
    import torch

    args = ["pretrain", "configs/demo.yaml", f"data.root={fake_fashion_mnist}", f"output_dir={tmp_path}", *TINY]
    assert main(args) == 0
    first = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()
    assert main(args) == 2
    assert "already holds checkpoints" in one_line_error(capsys)
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == first  # nothing lost
    assert main([*args, "trainer.max_steps=3", "--overwrite"]) == 0
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert "last-v1.ckpt" not in ckpts
    step = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"]
    assert step == 3  # last.ckpt is the new run's


def test_export_loads_with_timm_pretrained_and_refuses_existing_path(fake_fashion_mnist, tmp_path, capsys):
    import timm
    import torch

    from ssl_suite.checkpoints import read_state_dict

    args = ["configs/demo.yaml", f"data.root={fake_fashion_mnist}", f"output_dir={tmp_path}", *TINY]
    assert main(["pretrain", *args]) == 0
    ckpt, out = tmp_path / "checkpoints" / "last.ckpt", tmp_path / "backbone.safetensors"
    assert main(["export", str(ckpt), str(out)]) == 0
    model = timm.create_model("vit_nano_patch7_28_sigmoid", pretrained=True, pretrained_cfg_overlay=dict(file=str(out)))
    saved = read_state_dict(ckpt)
    assert set(model.state_dict()) == set(saved)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved[key])
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["export", str(ckpt), str(out)]) == 2  # an existing export is never overwritten silently
    assert "exists; pass --overwrite" in one_line_error(capsys) and out.read_bytes() == before
    assert main(["export", str(ckpt), str(out), "--overwrite"]) == 0


def test_timm_state_dict_with_a_classifier_loads_into_the_headless_probe_model(tmp_path):
    import timm
    import torch

    import ssl_suite.models  # noqa: F401
    from ssl_suite.checkpoints import load_backbone_weights

    with_head = timm.create_model("vit_nano_patch7_28_sigmoid", num_classes=10)
    torch.save(with_head.state_dict(), tmp_path / "timm.pth")
    headless = load_backbone_weights(
        timm.create_model("vit_nano_patch7_28_sigmoid", num_classes=0), tmp_path / "timm.pth"
    )
    torch.testing.assert_close(headless.cls_token, with_head.cls_token)
