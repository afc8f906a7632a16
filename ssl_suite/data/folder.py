"""Unlabelled image folders: every image under a root, at any depth, no classes, no splits.

The most asked-for input of SSL libraries: one's own photos. The file list is built once by
walking the tree (torchvision's image extensions, links followed) and cached as JSON under
``~/.cache/ssl-suite/file-lists`` keyed by the root's absolute path, so a million files are
walked (and, with ``skip_bad``, decoded) once; ``rescan=True`` rebuilds it. Items are
(image, 0): a label slot the training loop carries but nothing reads (no classes, no online probe).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ..errors import UserError
from ..files import atomic_write_text
from .images import read_rgb, report_skipped, scan


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ssl-suite" / "file-lists"


def list_images(root: Path) -> list[str]:
    """Image files under ``root`` at any depth, sorted (stable order for seeded sampling)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    return sorted(
        os.path.join(d, n)
        for d, _, names in os.walk(root, followlinks=True)
        for n in names
        if has_file_allowed_extension(n, IMG_EXTENSIONS)
    )


class ImageFiles(Dataset):
    classes: tuple[str, ...] = ()  # unlabelled

    def __init__(
        self, root: str, transform: Callable | None = None, skip_bad: bool = False, rescan: bool = False
    ) -> None:
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise UserError(
                f"data.root={root}: no such folder (data.dataset=folder takes a folder of images, at any depth)"
            )
        self.root, self.transform = path, transform
        key = hashlib.sha1(f"{path}|skip_bad={skip_bad}".encode()).hexdigest()[:16]
        cache = cache_dir() / f"{key}.json"
        if cache.is_file() and not rescan:
            stored = json.loads(cache.read_text())
            self.files, self.skipped = stored["files"], stored["skipped"]
        else:
            files = list_images(path)
            if not files:
                raise UserError(
                    f"data.root={root}: no images found at any depth (expected files such as .jpg, .jpeg, .png)"
                )
            self.skipped = []
            if skip_bad:
                ok = scan(files, desc=f"checking images in {path}")
                self.skipped = [f for f, good in zip(files, ok) if not good]
                files = [f for f, good in zip(files, ok) if good]
                if not files:
                    raise UserError(f"data.root={root}: none of the {len(self.skipped)} image files could be read")
            self.files = files
            atomic_write_text(cache, json.dumps({"root": str(path), "files": files, "skipped": self.skipped}))
        report_skipped(self.skipped, len(self.files) + len(self.skipped), str(path))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = read_rgb(self.files[index])
        return (self.transform(image) if self.transform is not None else image), 0
