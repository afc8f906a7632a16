import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_suite.config import load_config
from ssl_suite.data import build_dataset, eval_dataset
from ssl_suite.data.datasets import image_folder
from ssl_suite.errors import UserError


def encoded(fmt: str, mode: str = "RGB", **save) -> bytes:
    rgb = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(out, fmt, **save)
    return out.getvalue()


GOOD = {  # every mode a real folder holds; all must come out RGB
    "rgb.jpg": encoded("JPEG"),
    "grey.png": encoded("PNG", "L"),
    "rgba.png": encoded("PNG", "RGBA"),
    "cmyk.jpg": encoded("JPEG", "CMYK"),
    "palette.png": encoded("PNG", "P"),
    "palette_transparent.png": encoded("PNG", "P", transparency=0),
}
BAD = {
    "corrupt.jpg": encoded("JPEG")[:20] + bytes(range(256)) * 8,  # JPEG start, then noise
    "truncated.png": encoded("PNG")[:300],
    "zero.jpg": b"",
}


@pytest.fixture
def folder(tmp_path):
    """train/a: the good files; train/b: two good files and the bad ones."""
    for cls, files in (("a", GOOD), ("b", {**dict(list(GOOD.items())[:2]), **BAD})):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for name, data in files.items():
            (tmp_path / "train" / cls / name).write_bytes(data)
    return tmp_path


def bad_indices(ds):
    return [i for i, (p, _) in enumerate(ds.samples) if p.rsplit("/", 1)[1] in BAD]


def test_every_mode_loads_as_rgb_without_warnings(folder):
    ds = image_folder(str(folder), "train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. PIL's palette-with-transparency warning
        for i, (path, _) in enumerate(ds.samples):
            if i not in bad_indices(ds):
                assert ds[i][0].mode == "RGB", path
    assert ds.skipped == []


@pytest.mark.parametrize("name", sorted(BAD))
def test_unreadable_file_is_one_line_naming_it(folder, name):
    ds = image_folder(str(folder), "train")
    index = next(i for i, (p, _) in enumerate(ds.samples) if p.endswith("/" + name))
    with pytest.raises(UserError) as err:
        ds[index]
    msg = str(err.value)
    assert "\n" not in msg and f"cannot read image {ds.samples[index][0]}: " in msg
    assert msg.endswith("; pass data.skip_bad_images=true to skip unreadable files")


def test_error_through_a_dataloader_worker_stays_one_line(folder, monkeypatch):
    ds = image_folder(str(folder), "train", transform=lambda im: torch.zeros(1))
    index = bad_indices(ds)[0]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [index]), num_workers=1)
    # torch joins a worker that reported an error for up to this long (5 s) before ending it
    monkeypatch.setattr(torch.utils.data._utils, "MP_STATUS_CHECK_INTERVAL", 0.2)
    batches = iter(loader)
    try:
        with pytest.raises(UserError) as err:
            next(batches)
    finally:
        batches._shutdown_workers()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"cannot read image {ds.samples[index][0]}: ")
    assert "Traceback" not in msg and "worker" not in msg


def test_skip_mode_drops_counts_and_warns(folder):
    with pytest.warns(UserWarning, match=r"skipped 3 unreadable images of 11 in .*train: "):
        ds = build_dataset("imagefolder", "train", root=str(folder), skip_bad=True)
    assert sorted(p.rsplit("/", 1)[1] for p in ds.skipped) == sorted(BAD)
    assert len(ds) == 8 and ds.targets == [t for _, t in ds.samples] and ds.targets.count(1) == 2
    assert all(ds[i][0].mode == "RGB" for i in range(len(ds)))


def test_skip_mode_from_the_config(folder):
    cfg = load_config(
        "configs/pretrain/simclr_vit_s16_imagenet.yaml",
        [f"data.root={folder}", "data.image_size=32", "data.skip_bad_images=true"],
    )
    with pytest.warns(UserWarning, match="skipped 3"):
        ds = eval_dataset(cfg.data, "train")
    assert len(ds.skipped) == 3 and ds[len(ds) - 1][0].shape == (3, 32, 32)


def test_class_with_only_unreadable_files_is_an_error_in_skip_mode(tmp_path):
    for cls, files in (("a", {"x.jpg": encoded("JPEG")}), ("b", BAD)):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for name, data in files.items():
            (tmp_path / "train" / cls / name).write_bytes(data)
    with pytest.raises(UserError, match=r"no readable images: .*train/b \(3 unreadable"):
        image_folder(str(tmp_path), "train", skip_bad=True)


def test_empty_class_folder_names_its_path(folder):
    (folder / "train" / "c").mkdir()
    (folder / "train" / "c" / "notes.txt").write_text("not an image")
    with pytest.raises(UserError) as err:
        image_folder(str(folder), "train")
    msg = str(err.value)
    assert "\n" not in msg and f"no images: {folder / 'train' / 'c'} " in msg
    assert str(folder / "train" / "a") not in msg
