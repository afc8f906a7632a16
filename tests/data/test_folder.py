"""Pretraining on one's own unlabelled images: a folder of PNG/JPEG files in nested sub-folders
(grey, RGBA, one corrupt), every objective a few steps, CPU and device views; evaluation says
in one line that it needs labels."""

import numpy as np
import pytest
import torch

from ssl_suite.cli import main
from ssl_suite.config import load_config
from ssl_suite.data.folder import ImageFiles
from ssl_suite.errors import UserError
from ssl_suite.train import pretrain
from tests.conftest import TINY_OBJECTIVES as OBJECTIVES


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(240):
        d = root / f"trip{i % 3}" / f"day{i % 4}" / ("raw" if i % 5 == 0 else "")
        d.mkdir(parents=True, exist_ok=True)
        h, w = rng.integers(20, 60, 2)
        img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        img = img.convert("L") if i % 7 == 1 else img.convert("RGBA") if i % 7 == 2 else img
        img.save(d / f"img{i}.{'png' if i % 2 or img.mode == 'RGBA' else 'jpg'}")
    (root / "trip0" / "notes.txt").write_text("not an image")
    (root / "trip1" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def base(photos, out, *extra):
    return [
        "trainer.accelerator=cpu",
        "data.num_workers=0",
        "data.batch_size=16",
        "trainer.max_steps=2",
        "trainer.max_epochs=1",
        "model.name=vit_nano_patch4_28_sigmoid",
        "data.dataset=folder",
        f"data.root={photos}",
        "data.skip_bad_images=true",
        "data.image_size=28",
        f"output_dir={out}",
        *extra,
    ]


def test_file_list_is_built_once_and_skips_the_corrupt_file(photos, tmp_path):
    with pytest.warns(UserWarning, match="skipped 1 unreadable images of 241"):
        files = ImageFiles(str(photos), skip_bad=True)
    assert len(files) == 240 and files.skipped[0].endswith("broken.jpg")
    assert files[0][0].mode == "RGB" and files[0][1] == 0
    cached = list((tmp_path / "cache" / "ssl-suite" / "file-lists").glob("*.json"))
    assert len(cached) == 1
    (photos / "trip2" / "late.png").write_bytes((photos / "trip0" / "day0" / "raw" / "img0.jpg").read_bytes())
    with pytest.warns(UserWarning):
        assert len(ImageFiles(str(photos), skip_bad=True)) == 240  # the cached list, not a new walk
        assert len(ImageFiles(str(photos), skip_bad=True, rescan=True)) == 241
    (photos / "trip2" / "late.png").unlink()


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("views", ["cpu", "device"])
def test_every_objective_pretrains_on_an_unlabelled_folder(objective, views, photos, tmp_path):
    if views == "cpu" and objective in ("polyview", "ijepa"):
        pytest.skip("one view path each is enough for these")
    cfg = load_config(
        "configs/demo.yaml", base(photos, tmp_path / "run", f"data.augment_on={views}", *OBJECTIVES[objective])
    )
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        last = pretrain(cfg)
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    assert not any(k.startswith("online_classifier") for k in state["state_dict"])  # no labels: no probe


def test_evaluation_on_an_unlabelled_folder_is_one_line(photos, tmp_path, capsys):
    args = ["configs/demo.yaml", *base(photos, tmp_path)]
    assert main(["eval", "linear", *args, "--random-init"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no labels: evaluation needs a labelled dataset" in err


@pytest.mark.parametrize("root,match", [("missing", "no such folder"), ("empty", "no images found at any depth")])
def test_missing_or_empty_folder_is_one_line(root, match, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UserError, match=match):
        ImageFiles(str(tmp_path / root))


def test_two_ddp_ranks_pretrain_on_an_unlabelled_folder(photos, tmp_path):
    import os
    import subprocess
    import sys

    args = base(photos, tmp_path / "ddp", "trainer.devices=2", "trainer.strategy=ddp", "data.augment_on=device")
    run = subprocess.run(
        [sys.executable, "-m", "ssl_suite.cli", "pretrain", "configs/demo.yaml", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    state = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
