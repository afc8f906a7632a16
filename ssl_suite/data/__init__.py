"""Datasets and transforms built from a config's ``data`` section."""

from __future__ import annotations

from collections.abc import Sized
from typing import TYPE_CHECKING, Any, TypeVar, cast

from torch.utils.data import Dataset, Subset

from ..errors import UserError
from .datasets import UNLABELLED, build_dataset
from .transforms import DeviceViews, ViewRecipe, eval_transform, ssl_views, tensor_transform

if TYPE_CHECKING:
    from omegaconf import DictConfig

T = TypeVar("T")


def view_recipe(data_cfg: DictConfig) -> ViewRecipe:
    return ViewRecipe(**data_cfg.augment)


def ssl_train_dataset(data_cfg: DictConfig) -> Dataset[Any]:
    """The pretraining set. ``data.augment_on=cpu``: items are (list of ``num_views`` augmented
    views, label); ``device``: (image tensor, label), views made later by ``device_views``."""
    if data_cfg.augment_on == "cpu":
        transform = ssl_views(
            data_cfg.num_views, data_cfg.image_size, data_cfg.mean, data_cfg.std, view_recipe(data_cfg)
        )
    else:  # images of any size (an unlabelled folder) must be resized to stack into batches
        transform = tensor_transform(data_cfg.image_size, data_cfg.resize_for_eval or data_cfg.dataset in UNLABELLED)
    dataset = build_dataset(
        data_cfg.dataset,
        data_cfg.train_split,
        transform,
        data_cfg.root,
        data_cfg.download,
        skip_bad=data_cfg.skip_bad_images,
    )
    return first(dataset, data_cfg.train_subset)


def device_views(data_cfg: DictConfig) -> DeviceViews | None:
    """The batch augmenter for ``data.augment_on=device`` (None for the CPU path)."""
    if data_cfg.augment_on == "cpu":
        return None
    return DeviceViews(data_cfg.num_views, data_cfg.image_size, data_cfg.mean, data_cfg.std, view_recipe(data_cfg))


def has_labels(data_cfg: DictConfig) -> bool:
    return data_cfg.dataset not in UNLABELLED


def eval_dataset(data_cfg: DictConfig, split: str, subset: int | None = None) -> Dataset[Any]:
    """A split with the deterministic eval transform (for probes and validation)."""
    if not has_labels(data_cfg):
        raise UserError(
            f"data.dataset={data_cfg.dataset} has no labels: evaluation needs a labelled dataset, e.g. "
            "data.dataset=imagefolder data.root=DIR (DIR/train/<class>/..., DIR/test/<class>/...) "
            "or data.dataset=fashion_mnist"
        )
    transform = eval_transform(data_cfg.image_size, data_cfg.mean, data_cfg.std, data_cfg.resize_for_eval)
    dataset = build_dataset(
        data_cfg.dataset, split, transform, data_cfg.root, data_cfg.download, skip_bad=data_cfg.skip_bad_images
    )
    return first(dataset, subset)


def first(dataset: Dataset[T], n: int | None) -> Dataset[T]:
    """The first ``n`` items (all when n is None): quick runs stay reproducible."""
    return dataset if n is None or n >= len(cast(Sized, dataset)) else Subset(dataset, range(n))


def unwrap(dataset: Dataset[Any]) -> Any:
    """The dataset under any ``Subset`` layers (it holds ``classes`` and ``transform``).

    Typed ``Any``: the datasets here (ours, torchvision's ImageFolder) share no base declaring those."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def num_classes(dataset: Dataset[Any]) -> int:
    return len(unwrap(dataset).classes)


__all__ = [
    "DeviceViews",
    "build_dataset",
    "device_views",
    "eval_dataset",
    "eval_transform",
    "first",
    "num_classes",
    "unwrap",
    "ssl_train_dataset",
    "ssl_views",
    "has_labels",
]
