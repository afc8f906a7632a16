"""Reading image files for ImageFolder and CSV datasets: any mode as RGB, unreadable files as
one-line ``UserError``s (also through DataLoader workers), and an optional scan that drops them.

Real folders hold grey, RGBA, CMYK and palette files, and now and then a zero-byte or truncated
one; without this, such a file stops a run deep inside PIL in a worker process, hours in.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import UserError

SKIP_HINT = "pass data.skip_bad_images=true to skip unreadable files"


class BadImageError(UserError):
    """An unreadable image (one line even when re-raised from a DataLoader worker: see UserError)."""


def _reason(err: BaseException, path: str) -> str:
    """A short cause; PIL's own 'cannot identify' message repeats the path as a file object."""
    if isinstance(err, UnidentifiedImageError):
        empty = os.path.isfile(path) and os.path.getsize(path) == 0
        return "empty file (0 bytes)" if empty else "unknown or corrupt image format"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode; palette images with a transparent index go through RGBA first (PIL
    warns on converting those straight to RGB)."""
    if image.mode == "RGB":
        image.load()
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def read_rgb(path: str) -> Image.Image:
    """Decode a whole file as RGB; any failure becomes a ``BadImageError`` naming the path."""
    try:
        with open(path, "rb") as f:
            return to_rgb(Image.open(f))
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... by format
        reason = _reason(err, path)
    raise BadImageError(f"cannot read image {path}: {reason}; {SKIP_HINT}")


def readable(path: str) -> bool:
    """True when the whole file decodes to RGB (a full decode: truncation shows only there)."""
    try:
        read_rgb(path)
        return True
    except BadImageError:
        return False


def scan(paths: list[str], desc: str, workers: int = 4, batch: int = 512) -> list[bool]:
    """``readable`` for every path, with a progress bar. Pillow decodes without the GIL, so a few
    threads help; batches keep memory flat on a million files."""
    from tqdm.auto import tqdm

    ok: list[bool] = []
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(paths), desc=desc, unit="img", leave=False) as bar,
    ):
        for start in range(0, len(paths), batch):
            chunk = paths[start : start + batch]
            ok.extend(pool.map(readable, chunk))
            bar.update(len(chunk))
    return ok


def report_skipped(skipped: Iterable[str], total: int, where: str, show: int = 3) -> str | None:
    """Warn once about dropped files: how many, of how many, and the first few."""
    skipped = list(skipped)
    if not skipped:
        return None
    more = ", ..." if len(skipped) > show else ""
    msg = f"skipped {len(skipped)} unreadable images of {total} in {where}: {', '.join(skipped[:show])}{more}"
    warnings.warn(msg, stacklevel=3)
    return msg


def empty_class_folders(directory: str) -> list[str]:
    """Class folders under ``directory`` holding no file with an image extension (searched as
    torchvision does: recursively, following links), so the error can name their paths."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    empty = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_dir() and not any(
            has_file_allowed_extension(name, IMG_EXTENSIONS)
            for _, _, names in os.walk(entry.path, followlinks=True)
            for name in names
        ):
            empty.append(entry.path)
    return empty


def drop_unreadable(dataset: Any, where: str) -> None:
    """Decode every file of a torchvision ``DatasetFolder`` once and drop the unreadable ones
    in place; their paths land in ``dataset.skipped``. A class left with nothing is an error:
    training on a class with no images would only fail later and less clearly."""
    ok = scan([p for p, _ in dataset.samples], desc=f"checking images in {where}")
    dataset.skipped = [p for (p, _), good in zip(dataset.samples, ok) if not good]
    dataset.samples = [s for s, good in zip(dataset.samples, ok) if good]
    dataset.imgs, dataset.targets = dataset.samples, [t for _, t in dataset.samples]
    left = set(dataset.targets)
    lost = [f"{where}/{c}" for c, i in dataset.class_to_idx.items() if i not in left]
    if lost:
        raise UserError(
            f"ImageFolder class folder(s) with no readable images: {', '.join(lost)} "
            f"({len(dataset.skipped)} unreadable files skipped in {where})"
        )
    report_skipped(dataset.skipped, len(ok), where)
