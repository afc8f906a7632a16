"""Group-labelled datasets for fairness / spurious-correlation evaluation.

``spurious_fashion`` is a small Waterbirds stand-in built offline in seconds: Fashion-MNIST
garments (y: upper body 0 vs footwear 1) pasted onto grass (a = 0) or brick (a = 1) textures from
scikit-image (CC0). In train the background agrees with the label with probability
``correlation``, so a model can score well by looking at the background; val and test hold the
four groups (g = 2y + a) in equal numbers, which exposes that shortcut as a low worst-group
accuracy. ``GroupCSVDataset`` reads the same kind of set from files (Waterbirds, CelebA).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .datasets import ArrayImageDataset, load_fashion_mnist
from .images import read_rgb

UPPER_BODY, FOOTWEAR = (0, 2, 4, 6), (5, 7, 9)  # T-shirt, pullover, coat, shirt | sandal, sneaker, boot
SPLITS = ("train", "val", "test")
VAL_FRACTION = 1 / 6  # the last 10k of Fashion-MNIST's 60k train images become val
FAIRNESS_DATA = ("spurious_fashion", "csv")  # eval.fairness_data: the built-in set, or a user's group CSVs
TEXTURE_SIZE, CROP = 128, 28


class GroupArrayDataset(ArrayImageDataset):
    """``ArrayImageDataset`` plus a per-item attribute ``attrs`` and group ``groups = 2y + a``."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        attrs: np.ndarray,
        transform: Callable | None = None,
        classes: Iterable[str] = (),
        attr_names: Iterable[str] = (),
    ) -> None:
        super().__init__(images, labels, transform, rgb=True, classes=tuple(classes))
        self.attrs = torch.as_tensor(attrs, dtype=torch.long)
        self.attr_names = tuple(attr_names)
        self.groups = self.labels * len(self.attr_names) + self.attrs


@lru_cache(maxsize=1)
def textures() -> np.ndarray:
    """Grass and brick (512x512 grey), shrunk 4x by block means to 128x128, stacked (2, 128, 128)
    float32: at 28x28 a full-size crop would show no texture, only a few blades or one brick."""
    from skimage import data

    f = 512 // TEXTURE_SIZE
    return np.stack(
        [t.reshape(TEXTURE_SIZE, f, TEXTURE_SIZE, f).mean(axis=(1, 3)) for t in (data.grass(), data.brick())]
    ).astype(np.float32)


def composite(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Garment over background with alpha = clip(3 x / 255, 0, 1): dark Fashion-MNIST pixels are
    transparent, anything from x = 85 up is opaque with colour x. uint8 out, rounded."""
    fg = fg.astype(np.float32)
    alpha = np.clip(3 * fg / 255, 0, 1)
    return np.rint(alpha * fg + (1 - alpha) * bg).astype(np.uint8)


def _assign_attrs(
    y: np.ndarray, split: str, correlation: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(indices kept, attribute a). Train keeps all, with exactly round(correlation * n_y) items of
    each class y on the background a = y; val/test keep 2k per class (k = half the smaller class),
    k on each background, so the four groups are equal in size."""
    keep_parts: list[np.ndarray] = []
    attr_parts: list[np.ndarray] = []
    k = min((y == c).sum() for c in (0, 1)) // 2
    for c in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == c))
        if split == "train":
            n_agree = int(round(correlation * len(idx)))
            a = np.where(np.arange(len(idx)) < n_agree, c, 1 - c)
        else:
            idx, a = idx[: 2 * k], np.repeat([0, 1], k)
        keep_parts.append(idx)
        attr_parts.append(a)
    keep, attrs = np.concatenate(keep_parts), np.concatenate(attr_parts)
    order = np.argsort(keep, kind="stable")  # items in Fashion-MNIST order, whatever the draw
    return keep[order], attrs[order]


def build_arrays(
    images: np.ndarray, labels: np.ndarray, split: str, correlation: float = 0.95, seed: int = 0
) -> dict[str, np.ndarray]:
    """The split from Fashion-MNIST arrays (train arrays for 'train'/'val', test arrays for
    'test'): dict of images (N, 28, 28) uint8, y, a, the source index of each item in the given
    arrays and the crop offset (row, col) in its 128x128 texture. Vectorised; deterministic."""
    if split == "val":
        start = len(images) - int(round(len(images) * VAL_FRACTION))
        images, labels, base = images[start:], labels[start:], start
    elif split == "train":
        end = len(images) - int(round(len(images) * VAL_FRACTION))
        images, labels, base = images[:end], labels[:end], 0
    else:
        base = 0
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    used = np.flatnonzero(np.isin(labels, UPPER_BODY + FOOTWEAR))
    y = np.isin(labels[used], FOOTWEAR).astype(np.int64)
    keep, a = _assign_attrs(y, split, correlation, rng)
    src, y = used[keep], y[keep]
    offsets = rng.integers(0, TEXTURE_SIZE - CROP + 1, size=(len(src), 2))
    rows = offsets[:, :1, None] + np.arange(CROP)[None, :, None]
    cols = offsets[:, 1:, None] + np.arange(CROP)[None, None, :]
    bg = textures()[a[:, None, None], rows, cols]
    return dict(images=composite(images[src], bg), y=y, a=a, source=src + base, offsets=offsets)


@lru_cache(maxsize=6)
def _cached(split: str, root: str | None, correlation: float, seed: int) -> dict[str, np.ndarray]:
    images, labels = load_fashion_mnist("test" if split == "test" else "train", root)
    return build_arrays(images, labels, split, correlation, seed)


def spurious_fashion(
    split: str, transform: Callable | None = None, root: str | None = None, correlation: float = 0.95, seed: int = 0
) -> GroupArrayDataset:
    """Fashion-MNIST on grass/brick: split 'train' (P(a = y) = correlation), 'val' or 'test'
    (groups balanced). Items are (transform(PIL RGB image), y); see ``.attrs`` and ``.groups``."""
    if split not in SPLITS:
        raise UserError(f"spurious_fashion split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not 0.0 <= float(correlation) <= 1.0:
        raise UserError(f"spurious_fashion correlation must lie in [0, 1], got {correlation}")
    arrays = _cached(split, root, float(correlation), int(seed))
    return GroupArrayDataset(
        arrays["images"],
        arrays["y"],
        arrays["a"],
        transform,
        classes=("upper body", "footwear"),
        attr_names=("grass", "brick"),
    )


CSV_COLUMNS = ("path", "label", "group")


def _int_field(row: dict, key: str, csv_path: Path, line: int) -> int:
    value = (row.get(key) or "").strip()
    try:
        number = int(value)
    except ValueError:
        raise UserError(f"{csv_path} line {line}: {key} must be a non-negative integer, got {value!r}") from None
    if number < 0:
        raise UserError(f"{csv_path} line {line}: {key} must be a non-negative integer, got {number}")
    return number


class GroupCSVDataset(torch.utils.data.Dataset):
    """Images listed in a CSV with header ``path,label,group`` (``group`` is the attribute a);
    paths are relative to ``root`` if given, else to the CSV's folder. Items are
    (transform(PIL RGB image), label index); ``classes`` are the sorted label values as strings,
    ``groups = label * num_attrs + a`` with num_attrs = max(a) + 1."""

    def __init__(self, csv_path: str | Path, transform: Callable | None = None, root: str | None = None) -> None:
        csv_path = Path(csv_path).expanduser()
        if not csv_path.is_file():
            raise UserError(f"group CSV not found: {csv_path}")
        base = Path(root).expanduser() if root else csv_path.parent
        paths, labels, attrs = [], [], []
        with open(csv_path, newline="", encoding="utf-8-sig") as f:  # tolerate a BOM (Excel)
            reader = csv.DictReader(f)
            header = [c.strip() for c in reader.fieldnames or []]
            if sorted(header) != sorted(CSV_COLUMNS):
                unknown = [c for c in header if c not in CSV_COLUMNS]
                missing = [c for c in CSV_COLUMNS if c not in header]
                raise UserError(
                    f"{csv_path}: bad header (unknown columns: {', '.join(unknown) or 'none'}; "
                    f"missing: {', '.join(missing) or 'none'}); expected exactly {','.join(CSV_COLUMNS)}"
                )
            reader.fieldnames = header
            for row in reader:
                line = reader.line_num
                if None in row or None in row.values():
                    raise UserError(f"{csv_path} line {line}: expected 3 fields ({','.join(CSV_COLUMNS)})")
                paths.append(base / row["path"].strip())
                labels.append(_int_field(row, "label", csv_path, line))
                attrs.append(_int_field(row, "group", csv_path, line))
        if not paths:
            raise UserError(f"{csv_path}: no rows after the header {','.join(CSV_COLUMNS)}")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UserError(f"{csv_path}: {len(missing)} image file(s) not found, e.g. {', '.join(missing[:3])}")
        values = sorted(set(labels))
        index = {v: i for i, v in enumerate(values)}
        self.paths, self.transform = [str(p) for p in paths], transform
        self.classes = tuple(str(v) for v in values)
        self.attr_names = tuple(str(a) for a in range(max(attrs) + 1))
        self.labels = torch.tensor([index[v] for v in labels], dtype=torch.long)
        self.attrs = torch.tensor(attrs, dtype=torch.long)
        self.groups = self.labels * len(self.attr_names) + self.attrs

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = read_rgb(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
