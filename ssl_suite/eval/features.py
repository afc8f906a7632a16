"""Frozen feature extraction from a ViT backbone, with a content-addressed on-disk cache.

Protocol: the backbone runs in eval mode (no dropout, no BatchNorm updates) under
``torch.inference_mode()``; features are float32 on CPU, labels int64, in dataset order.
Pooling (tokens come from ``forward_features``, i.e. after the final norm):

- ``"cls"``: the class token (token 0).
- ``"avg"``: the mean of the patch tokens (tokens after ``num_prefix_tokens``).
- ``"cls_last:K"``: the class tokens of the last K blocks, each passed through ``model.norm``,
  concatenated in block order (DINO's linear-eval variant), giving K * C features.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..files import atomic_write

if TYPE_CHECKING:
    from typing import Protocol

    class _Backbone(Protocol):
        """What the token poolings use of a ViT backbone (timm's VisionTransformer and ours)."""

        def forward_features(self, x: Tensor) -> Tensor: ...

        def norm(self, x: Tensor) -> Tensor: ...


POOLINGS = ("cls", "avg", "cls_last:K")
BACKBONE_KEYS = ("weights", "model")  # cache meta keys that identify the backbone
_LAST_K = re.compile(r"cls_last:(\d+)")


def parse_pooling(pooling: str) -> int | None:
    """K for ``cls_last:K``, None for cls/avg; ValueError for anything else. The one reader of
    the pooling grammar (the config validates with it too; K's range depends on the model)."""
    if pooling in ("cls", "avg"):
        return None
    if (m := _LAST_K.fullmatch(pooling)) is None:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
    return int(m.group(1))


def pool_features(model: nn.Module, images: Tensor, pooling: str) -> Tensor:
    """Return pooled features (B, D) of ``images`` (B, C, H, W); see the module docstring.
    A model with ``pools_itself`` (the raw-pixel baseline) gives its features directly."""
    k = parse_pooling(pooling)
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if getattr(model, "pools_itself", False):
        return model(images)
    vit = cast("_Backbone", model)  # ViT-like from here on: forward_features (B, T, C) and norm
    n_prefix = int(getattr(model, "num_prefix_tokens", 0))
    if pooling != "avg" and not getattr(model, "has_class_token", n_prefix > 0):
        raise ValueError(f"pooling {pooling!r} needs a class token; this model has none")
    if pooling == "cls":
        return vit.forward_features(images)[:, 0]
    if pooling == "avg":
        return vit.forward_features(images)[:, n_prefix:].mean(dim=1)
    assert k is not None  # cls_last:K, the one pooling left
    blocks = getattr(model, "blocks", None)
    if blocks is None or not 1 <= k <= len(blocks):
        raise ValueError(f"cls_last:K needs 1 <= K <= number of blocks, got K={k}")
    # Hooks keep a single forward path (whatever forward_features does: masks, custom blocks).
    outs: list[Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, o: outs.append(o)) for b in blocks[-k:]]
    try:
        vit.forward_features(images)
    finally:
        for h in hooks:
            h.remove()
    return torch.cat([vit.norm(o)[:, 0] for o in outs], dim=-1)


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints can be GBs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _canonical(meta: dict[str, Any]) -> str:
    try:
        return json.dumps(meta, sort_keys=True)
    except TypeError as e:
        raise ValueError(f"cache meta must be JSON-serialisable (str/int/float/bool/list/dict): {e}") from None


def cache_file(cache_dir: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Cache path named by the sha256 of the canonical JSON of ``meta``: distinct inputs never share a file."""
    digest = hashlib.sha256(_canonical(meta).encode()).hexdigest()[:24]
    return Path(cache_dir) / f"features-{digest}.pt"


def _load_cache(path: Path, meta: dict[str, Any]) -> tuple[Tensor, Tensor] | None:
    if not path.is_file():
        return None
    try:  # weights_only: a cache file must never be able to run code
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated or foreign file: recompute rather than fail
        return None
    if not isinstance(blob, dict) or not isinstance(blob.get("meta"), dict):
        return None
    stored = blob["meta"]
    other = {k: stored.get(k) for k in BACKBONE_KEYS if k in meta and stored.get(k) != meta[k]}
    if other:  # a file of this name can only come from elsewhere (names hash the meta): never reuse it
        raise ValueError(
            f"features cache {path} was made by another backbone ({other}), not "
            f"{ {k: meta[k] for k in other} }; delete it or evaluate into another output_dir"
        )
    if stored != meta:
        return None
    return blob["features"], blob["labels"]


def _save_atomic(path: Path, blob: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(blob, tmp))  # readers see the old file or the whole new one


def extract_features(
    model: nn.Module,
    dataset: Dataset,
    *,
    pooling: str = "cls",
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    cache_path: Path | None = None,
    cache_meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """Frozen features (N, D) float32 and labels (N,) int64 of a dataset of (image, label).

    With ``cache_path``, a stored file is reused only if its meta equals ``cache_meta`` exactly
    (put in it everything the features depend on: checkpoint sha256, dataset, split, transform
    repr, pooling, model name); otherwise features are recomputed and the file overwritten.
    The train/eval mode of every submodule and the model's device are restored afterwards.
    """
    if cache_path is not None and cache_meta is None:
        raise ValueError("cache_path needs cache_meta (what the features depend on)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(dataset) == 0:  # type: ignore[arg-type]  # map-style datasets have a length
        raise ValueError("dataset is empty")
    parse_pooling(pooling)  # fail before touching the cache or the data
    if cache_path is not None:
        assert cache_meta is not None  # checked above
        _canonical(cache_meta)
        if (hit := _load_cache(Path(cache_path), cache_meta)) is not None:
            return hit

    modes = [(m, m.training) for m in model.modules()]  # per module: some may be frozen in eval
    param = next(model.parameters(), None)
    old_device = param.device if param is not None else None
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    split = (cache_meta or {}).get("split", type(dataset).__name__)
    feats, labels = [], []
    try:
        model.eval().to(device)
        with torch.inference_mode():
            for x, y in tqdm(loader, desc=f"features [{split}]", disable=not progress):
                feats.append(pool_features(model, x.to(device), pooling).float().cpu())
                labels.append(torch.as_tensor(y, dtype=torch.int64))
    finally:
        for m, mode in modes:
            m.train(mode)
        if old_device is not None:
            model.to(old_device)
    features, labels_t = torch.cat(feats), torch.cat(labels)
    if cache_path is not None:
        _save_atomic(Path(cache_path), {"features": features, "labels": labels_t, "meta": cache_meta})
    return features, labels_t
