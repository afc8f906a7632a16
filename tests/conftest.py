import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


# Each objective at its smallest (tiny heads, one decoder block): for tests that run every objective.
TINY_OBJECTIVES = {
    "simclr": ["method.name=simclr"],
    "polyview": ["method.name=polyview", "data.num_views=3"],
    "byol": ["method.name=byol", "method.proj_hidden_dim=64", "method.pred_hidden_dim=64"],
    "mae": [
        "method.name=mae",
        "data.num_views=1",
        "method.decoder_dim=32",
        "method.decoder_depth=1",
        "method.decoder_heads=2",
    ],
    "ijepa": [
        "method.name=ijepa",
        "data.num_views=1",
        "method.decoder_dim=32",
        "method.decoder_depth=1",
        "method.decoder_heads=2",
    ],
}


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CUDA; skipped where no GPU is visible (the GPU lane)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (the GPU lane: pytest -m gpu on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tiny_image_folder(tmp_path: Path) -> Path:
    """An ImageNet-layout folder (train/ and val/, 3 classes) of small generated JPEGs and PNGs,
    grey and RGBA included, as real folders hold."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 4)):
        for c, wnid in enumerate(("n01440764", "n01443537", "n01484850")):
            d = tmp_path / split / wnid
            d.mkdir(parents=True)
            for i in range(n):
                base = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
                base[..., c] = 255  # class signal in one channel
                img = Image.fromarray(base)
                if i % 4 == 1:
                    img = img.convert("L")
                if i % 4 == 2:
                    img = img.convert("RGBA")
                img.save(d / f"{i}.{'png' if i % 4 == 2 else 'JPEG'}")
    return tmp_path


@pytest.fixture
def fake_fashion_mnist(tmp_path: Path) -> Path:
    """Four IDX files in Fashion-MNIST's format (small), for runs that must not depend on apt."""
    return write_fake_fashion_mnist(tmp_path)


def write_fake_fashion_mnist(tmp_path: Path) -> Path:
    import gzip

    rng = np.random.default_rng(0)

    def write(name, arr):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
        with gzip.open(tmp_path / f"{name}.gz", "wb") as f:
            f.write(header + arr.astype(np.uint8).tobytes())

    for prefix, n in (("train", 96), ("t10k", 32)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, (n, 28, 28))
        for i, y in enumerate(labels):  # a class-dependent bright bar
            images[i, 2 + 2 * y : 4 + 2 * y, 4:24] = 250
        write(f"{prefix}-images-idx3-ubyte", images)
        write(f"{prefix}-labels-idx1-ubyte", labels)
    return tmp_path
