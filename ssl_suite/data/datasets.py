"""Datasets: Fashion-MNIST from its IDX files, and any ImageFolder (ImageNet layout).

Fashion-MNIST is looked for in ``root`` (if given), then in Debian's ``dataset-fashion-mnist``
install (/usr/share/datasets/fashion-mnist); with ``download=True`` torchvision fetches it into
``root`` where the machine is online. Images come out as PIL images, grey converted to RGB
when ``rgb`` (ViTs here take 3 channels).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import UserError

if TYPE_CHECKING:
    from torchvision.datasets import ImageFolder

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FIX_HINT = (
    "install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist), "
    "or set data.root=DIR holding the four IDX files (README: 'Other systems'), "
    "or data.download=true where the machine is online"
)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): big-endian header of dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise UserError(f"{path}: truncated IDX file ({body.size} bytes for shape {tuple(dims)})")
    return body.reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def fashion_mnist_dirs(root: str | None) -> list[Path]:
    """Where the IDX files are looked for, in order."""
    dirs = []
    if root:
        root_path = Path(root).expanduser()
        dirs += [root_path, root_path / "FashionMNIST" / "raw"]  # the latter: torchvision's layout
    if os.environ.get("SSL_SUITE_FASHION_MNIST"):
        dirs.append(Path(os.environ["SSL_SUITE_FASHION_MNIST"]))
    return dirs + [DEBIAN_FASHION_MNIST]


def load_fashion_mnist(split: str, root: str | None = None, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) for split 'train' (60k) or 'test' (10k)."""
    if split not in FASHION_MNIST_FILES:
        raise UserError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    if download:
        if not root:
            raise UserError("data.download=true needs data.root=DIR to download Fashion-MNIST into")
        import torchvision

        torchvision.datasets.FashionMNIST(root, train=split == "train", download=True)
    stems = FASHION_MNIST_FILES[split]
    tried = fashion_mnist_dirs(root)
    for directory in tried:
        images, labels = (_find_idx(directory, stem) for stem in stems)
        if images is not None and labels is not None:
            return read_idx(images), read_idx(labels).astype(np.int64)
    raise UserError(f"Fashion-MNIST {split} files not found (tried {', '.join(map(str, tried))}): {FIX_HINT}")


class ArrayImageDataset(Dataset):
    """In-memory uint8 images (N, H, W) or (N, H, W, C) with labels; yields (transform(PIL), label)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: Callable | None = None,
        rgb: bool = True,
        classes: tuple[str, ...] = (),
    ) -> None:
        if len(images) != len(labels):
            raise UserError(f"images ({len(images)}) and labels ({len(labels)}) differ in length")
        self.images, self.labels = images, torch.as_tensor(labels, dtype=torch.long)
        self.transform, self.rgb, self.classes = transform, rgb, classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.images[index])
        if self.rgb and image.mode != "RGB":
            image = image.convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


def fashion_mnist(
    split: str, transform: Callable | None = None, root: str | None = None, download: bool = False, rgb: bool = True
) -> ArrayImageDataset:
    images, labels = load_fashion_mnist(split, root, download)
    return ArrayImageDataset(images, labels, transform, rgb, FASHION_MNIST_CLASSES)


def image_folder(root: str, split: str, transform: Callable | None = None, skip_bad: bool = False) -> ImageFolder:
    """torchvision ImageFolder at ``root/split/<class>/*``; images load as RGB whatever their mode.

    An unreadable file raises a one-line ``UserError`` naming it when read; with ``skip_bad`` the
    split is decoded once up front and unreadable files are dropped, warned about and listed in
    ``.skipped`` (always present, empty without ``skip_bad``)."""
    from torchvision.datasets import ImageFolder

    from .images import drop_unreadable, empty_class_folders, read_rgb

    path = Path(root).expanduser() / split
    if not path.is_dir():
        raise UserError(f"ImageFolder split not found: {path} (expected {root}/{split}/<class>/<image>)")
    try:
        dataset = ImageFolder(str(path), transform=transform, loader=read_rgb)
    except (FileNotFoundError, RuntimeError) as err:  # torchvision: no class folders / no images
        empty = empty_class_folders(str(path))
        if empty:
            raise UserError(
                f"ImageFolder class folder(s) with no images: {', '.join(empty)} "
                "(expected image files such as .jpg, .jpeg, .png in each)"
            ) from None
        raise UserError(f"ImageFolder {path}: {err}") from None
    dataset.skipped = []
    if skip_bad:
        drop_unreadable(dataset, str(path))
    return dataset


DATASETS = ("fashion_mnist", "imagefolder", "folder")
UNLABELLED = ("folder",)


def build_dataset(
    name: str,
    split: str,
    transform: Callable | None = None,
    root: str | None = None,
    download: bool = False,
    skip_bad: bool = False,
) -> Dataset[Any]:
    """The dataset named in a config: 'fashion_mnist', 'imagefolder' (root/split/<class>/...) or
    'folder' (every image under root, unlabelled: pretraining only). ``skip_bad``
    (data.skip_bad_images) drops unreadable files; Fashion-MNIST has none to drop."""
    if name == "fashion_mnist":
        return fashion_mnist(split, transform, root, download)
    if name == "folder":
        if not root:
            raise UserError("data.dataset=folder needs data.root=DIR (a folder of images, at any depth)")
        from .folder import ImageFiles

        return ImageFiles(root, transform, skip_bad)
    if name == "imagefolder":
        if not root:
            raise UserError("data.dataset=imagefolder needs data.root=DIR (with DIR/train and DIR/val)")
        return image_folder(root, split, transform, skip_bad)
    raise UserError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
