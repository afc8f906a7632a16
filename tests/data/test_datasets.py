import gzip

import numpy as np
import pytest
import torch

from ssl_suite.config import load_config
from ssl_suite.data import datasets, eval_dataset, ssl_train_dataset
from ssl_suite.errors import UserError


def test_idx_reader_round_trips_against_torchvision(fake_fashion_mnist, tmp_path):
    from torchvision.datasets.mnist import read_image_file

    raw = tmp_path / "raw-images"
    raw.write_bytes(gzip.open(fake_fashion_mnist / "train-images-idx3-ubyte.gz").read())
    ours = datasets.read_idx(raw)
    assert ours.shape == (96, 28, 28)
    np.testing.assert_array_equal(ours, read_image_file(str(raw)).numpy())


def test_truncated_idx_is_a_clear_error(tmp_path):
    path = tmp_path / "bad-idx"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(UserError, match="truncated"):
        datasets.read_idx(path)


def test_missing_fashion_mnist_names_paths_and_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    monkeypatch.delenv("SSL_SUITE_FASHION_MNIST", raising=False)
    with pytest.raises(UserError) as err:
        datasets.load_fashion_mnist("train", root=str(tmp_path / "nowhere"))
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "nowhere") in msg and str(tmp_path / "debian") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "data.root" in msg


@pytest.mark.skipif(
    not (datasets.DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian():
    x, y = datasets.load_fashion_mnist("train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [6000] * 10  # Fashion-MNIST is balanced
    xt, yt = datasets.load_fashion_mnist("test")
    assert xt.shape == (10000, 28, 28) and np.bincount(yt).tolist() == [1000] * 10


def test_grey_becomes_rgb_and_views_have_the_configured_shape(fake_fashion_mnist):
    cfg = load_config(None, [f"data.root={fake_fashion_mnist}", "data.num_views=3", "method.name=polyview"])
    views, label = ssl_train_dataset(cfg.data)[5]
    assert len(views) == 3 and all(v.shape == (3, 28, 28) for v in views) and label == 5
    assert not torch.equal(views[0], views[1]), "views are augmented independently"
    image, _ = eval_dataset(cfg.data, "test")[0]
    assert image.shape == (3, 28, 28)
    assert torch.equal(image[0], image[1]), "grey replicated to three channels"


def test_imagefolder_any_mode_to_rgb(tiny_image_folder):
    cfg = load_config(
        "configs/pretrain/simclr_vit_s16_imagenet.yaml", [f"data.root={tiny_image_folder}", "data.image_size=32"]
    )
    ds = eval_dataset(cfg.data, "val")
    assert len(ds) == 12 and len(ds.classes) == 3
    for i in range(4):  # RGB, L, RGBA, RGB
        assert ds[i][0].shape == (3, 32, 32)


def test_imagefolder_missing_split_is_one_line(tmp_path):
    with pytest.raises(UserError, match="ImageFolder split not found"):
        datasets.image_folder(str(tmp_path), "train")
