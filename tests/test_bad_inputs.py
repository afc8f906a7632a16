"""Every bad input of the CLI, in one table: exit status 2 and one line naming the input and what
was expected; no traceback, no advice to load an untrusted pickle, nothing saved before is lost."""

import errno
import os
import pickle

import pytest
import torch

from ssl_suite.cli import main
from ssl_suite.config import load_config
from ssl_suite.train import pretrain


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/ssl_suite_payload_ran",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from tests.conftest import write_fake_fashion_mnist

    d = tmp_path_factory.mktemp("bad")
    data = write_fake_fashion_mnist(tmp_path_factory.mktemp("data"))
    run = d / "run"
    args = [
        "trainer.accelerator=cpu",
        "data.num_workers=0",
        "data.batch_size=16",
        "trainer.max_steps=1",
        "trainer.max_epochs=1",
        f"data.root={data}",
        f"output_dir={run}",
    ]
    good = pretrain(load_config("configs/demo.yaml", args), limit_val_batches=1)
    blob = good.read_bytes()
    (d / "empty.ckpt").write_bytes(b"")
    (d / "truncated.ckpt").write_bytes(blob[: len(blob) // 2])
    (d / "notzip.ckpt").write_text("not a checkpoint at all")
    torch.save({"weights": {"conv.weight": torch.zeros(2)}}, d / "foreign.ckpt")
    with open(d / "evil.ckpt", "wb") as f:
        pickle.dump({"state_dict": {"backbone.x": Payload()}}, f)
    torch.save({"state_dict": {"backbone.x": Payload()}}, d / "evilzip.ckpt")
    (d / "list.yaml").write_text("- a\n- b\n")
    (d / "exists.safetensors").write_bytes(b"keep me")
    (d / "photos" / "sub").mkdir(parents=True)
    (d / "photos" / "sub" / "notes.txt").write_text("no images here")
    (d / "broken").mkdir()
    (d / "broken" / "only.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return d, good, ["configs/demo.yaml", *args]


CHECKPOINTS = [
    ("missing.ckpt", "not found"),
    ("empty.ckpt", "is empty (0 bytes)"),
    ("truncated.ckpt", "is truncated or not a PyTorch checkpoint"),
    ("notzip.ckpt", "was refused: it is not a weights-only PyTorch file"),
    ("evil.ckpt", "was refused"),
    ("evilzip.ckpt", "was refused: it holds pickled objects beyond tensors"),
]


def cases():
    for name, match in CHECKPOINTS:
        yield f"export-{name}", lambda d, good, a, n=name: ["export", str(d / n), str(d / "out.safetensors")], match
        yield f"eval-{name}", lambda d, good, a, n=name: ["eval", "knn", *a, "--checkpoint", str(d / n)], match
        yield f"resume-{name}", lambda d, good, a, n=name: ["pretrain", *a, "--resume", str(d / n)], match
    yield (
        "export-foreign",
        lambda d, good, a: ["export", str(d / "foreign.ckpt"), str(d / "o.safetensors")],
        "not an ssl-suite Lightning checkpoint",
    )
    yield (
        "eval-foreign",
        lambda d, good, a: ["eval", "knn", *a, "--checkpoint", str(d / "foreign.ckpt")],
        "does not fit model",
    )
    yield (
        "resume-foreign",
        lambda d, good, a: ["pretrain", *a, "--resume", str(d / "foreign.ckpt")],
        "not an ssl-suite Lightning checkpoint",
    )
    yield (
        "export-exists",
        lambda d, good, a: ["export", str(good), str(d / "exists.safetensors")],
        "exists; pass --overwrite",
    )
    yield "yaml-not-a-mapping", lambda d, good, a: ["recipe", str(d / "list.yaml")], "must be a YAML mapping"
    for override, match in [
        ("trainer.devices=0", "trainer.devices=0: expected a count >= 1"),
        ("optim.lr=-1", "optim.lr must be positive"),
        ("trainer.precision=fp8", "trainer.precision='fp8': expected one of"),
        ("trainer.strategy=dpp", "trainer.strategy='dpp': expected one of auto, ddp"),
        ("trainer.accelerator=npu", "trainer.accelerator='npu': expected one of"),
        ("data.batch_size=0", "data.batch_size must be positive"),
        ("optim.betas=[0.9,1.5]", "optim.betas must be two numbers in (0, 1)"),
        ("data.augment.cj_prob=2", "data.augment.cj_prob=2.0 must lie in [0, 1]"),
        ("optim.weight_decay=-1", "optim.weight_decay must be >= 0"),
        ("method.mask_ratio=1.0", "method.mask_ratio must lie in (0, 1)"),
        ("method.temperature=0", "method.temperature must be positive"),
        ("eval.logistic_val_fraction=1", "eval.logistic_val_fraction=1.0 must lie in"),
        ("trainer.max_epochs=0", "trainer.max_epochs must be positive"),
        ("model.attention=relu", "model.attention='relu': expected one of sigmoid, softmax"),
        ("data.dataset=coco", "data.dataset='coco': expected one of fashion_mnist, imagefolder, folder"),
        ("optim.nesterov=true", "unknown config key 'optim.nesterov'"),
    ]:
        yield f"config-{override}", lambda d, good, a, o=override: ["recipe", *a, o], match
    yield (
        "imagefolder-missing",
        lambda d, good, a: ["pretrain", *a, "data.dataset=imagefolder", f"data.root={d / 'nowhere'}", "--overwrite"],
        "split not found",
    )
    yield (
        "folder-without-images",
        lambda d, good, a: ["pretrain", *a, "data.dataset=folder", f"data.root={d / 'photos'}", "--overwrite"],
        "no images found at any depth",
    )
    yield (
        "folder-all-unreadable",
        lambda d, good, a: [
            "pretrain",
            *a,
            "data.dataset=folder",
            f"data.root={d / 'broken'}",
            "data.skip_bad_images=true",
            "--overwrite",
        ],
        "could be read",
    )
    yield (
        "eval-unlabelled",
        lambda d, good, a: ["eval", "knn", *a, "data.dataset=folder", f"data.root={d / 'broken'}", "--random-init"],
        "has no labels",
    )


@pytest.mark.parametrize("name,argv,match", list(cases()), ids=[c[0] for c in cases()])
def test_bad_input_is_one_line_with_status_2(name, argv, match, files, capsys, monkeypatch, tmp_path):
    d, good, args = files
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = {p: p.read_bytes() for p in (good, d / "exists.safetensors")}
    assert main(argv(d, good, args)) == 2
    err = capsys.readouterr().err.strip()
    assert match in err, err
    assert "\n" not in err and "Traceback" not in err and "weights_only=False" not in err
    assert {p: p.read_bytes() for p in before} == before  # nothing saved before is lost
    assert not os.path.exists("/tmp/ssl_suite_payload_ran")


def test_a_full_disk_while_exporting_is_one_line_and_keeps_the_old_file(files, capsys, monkeypatch):
    import safetensors.torch

    d, good, _ = files

    def full(state, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    assert main(["export", str(good), str(d / "exists.safetensors"), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "\n" not in err
    assert (d / "exists.safetensors").read_bytes() == b"keep me"  # the old export is intact
    assert not list(d.glob("exists.safetensors*.tmp"))  # and no half-written file is left
