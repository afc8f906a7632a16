"""Frozen-backbone evaluation: a checkpoint's backbone beside its floors (the same architecture
at random init, and raw pixels) through the same probes.

Features are extracted once per (backbone weights, dataset, split, transform, pooling) and
cached under ``output_dir/features``; every probe reads the cache, and the floors' results are
cached in ``output_dir/baselines``. The probes (each module cites its paper):

- ``linear``: MAE's BN + linear probe (SGD or LARS, cosine) on cached features, or on augmented
  images on the fly with ``eval.linear_augment=true`` (``linear.py``, ``augmented.py``);
- ``logistic``: L-BFGS logistic regression, regularisation chosen on held-out train (DINOv2);
- ``knn``: DINO's weighted kNN at each k of ``eval.knn_k``;
- ``fewshot``: 1/2/5 labels per class and 1% of the labels, seeded splits saved for reuse (MSN);
- ``fairness``: a probe trained on spuriously correlated data, scored per group (worst group,
  mean subgroup gap);
- ``calibration``: ECE and Brier score of the linear probe's test predictions, reliability PNG.

Tables and result files: ``results.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..checkpoints import checkpoint_dir, load_backbone_weights
from ..config import PROBES
from ..data import eval_dataset, unwrap
from ..data.spurious import GroupArrayDataset, GroupCSVDataset, spurious_fashion
from ..data.transforms import eval_transform
from ..errors import UserError
from ..files import atomic_write_text
from ..models.backbone import build_backbone
from .baselines import RawPixels
from .calibration import calibration, reliability_diagram
from .fairness import group_counts, group_metrics
from .features import cache_file, extract_features, file_sha256
from .fewshot import fewshot_probe
from .knn import knn_classify
from .linear import linear_probe
from .logistic import logistic_probe

Features = tuple[Tensor, Tensor, Tensor, Tensor, int]  # train x, train y, test x, test y, classes


def backbone_from(cfg: DictConfig, checkpoint: str | None) -> tuple[torch.nn.Module, str]:
    """(model, identity): checkpoint weights, or the seeded random init pretraining starts from."""
    torch.manual_seed(cfg.seed)
    model = build_backbone(cfg.model)
    if checkpoint is None:
        return model, f"random-init seed {cfg.seed}"
    model = load_backbone_weights(model, checkpoint, cfg.eval.encoder)
    return model, f"{file_sha256(checkpoint)}:{model.ssl_encoder}"


def cached_features(
    cfg: DictConfig, model: nn.Module, identity: str, images: Dataset, **described: object
) -> tuple[Tensor, Tensor]:
    """Features of ``dataset``, cached under a name derived from everything they depend on."""
    meta = dict(
        weights=identity,
        model=cfg.model.name,
        attention=cfg.model.attention,
        transform=repr(unwrap(images).transform),
        pooling=cfg.eval.pooling,
        n=len(images),  # type: ignore[arg-type]  # map-style datasets have a length
        **described,
    )
    return extract_features(
        model,
        images,
        pooling=cfg.eval.pooling,
        batch_size=cfg.eval.batch_size,
        num_workers=cfg.eval.num_workers,
        cache_path=cache_file(Path(cfg.output_dir) / "features", meta),
        cache_meta=meta,
    )


def split_features(
    cfg: DictConfig, model: nn.Module, identity: str, split: str, subset: int | None
) -> tuple[Tensor, Tensor]:
    dataset = eval_dataset(cfg.data, split, subset)
    return cached_features(
        cfg, model, identity, dataset, dataset=cfg.data.dataset, root=str(cfg.data.root), split=split, subset=subset
    )


def logistic_args(cfg: DictConfig) -> dict[str, Any]:
    args: dict[str, Any] = dict(val_fraction=cfg.eval.logistic_val_fraction, seed=cfg.seed)
    if cfg.eval.logistic_Cs:
        args["Cs"] = tuple(cfg.eval.logistic_Cs)
    return args


def fairness_datasets(cfg: DictConfig) -> tuple[GroupArrayDataset | GroupCSVDataset, ...]:
    """(train, test) datasets with ``.attrs``: the spurious Fashion-MNIST set or a user's CSVs."""
    transform = eval_transform(cfg.data.image_size, cfg.data.mean, cfg.data.std, cfg.data.resize_for_eval)
    eval_cfg = cfg.eval
    if eval_cfg.fairness_data == "csv":
        folder = Path(eval_cfg.fairness_root or ".")
        return tuple(GroupCSVDataset(folder / f"{s}.csv", transform) for s in ("train", "test"))
    root = cfg.data.root if cfg.data.dataset == "fashion_mnist" else None
    return tuple(
        spurious_fashion(s, transform, root=root, correlation=eval_cfg.fairness_correlation, seed=cfg.seed)
        for s in ("train", "test")
    )


def fairness_probe(cfg: DictConfig, model: nn.Module, identity: str) -> dict:
    train, test = fairness_datasets(cfg)
    desc = dict(
        dataset=cfg.eval.fairness_data,
        root=str(cfg.eval.fairness_root),
        correlation=cfg.eval.fairness_correlation,
        seed=cfg.seed,
    )
    train_x, train_y = cached_features(cfg, model, identity, train, split="train", **desc)
    test_x, test_y = cached_features(cfg, model, identity, test, split="test", **desc)
    probe = logistic_probe(train_x, train_y, test_x, test_y, **logistic_args(cfg), return_logits=True)
    metrics = group_metrics(
        probe["logits"].argmax(1), test.labels, test.attrs, train_group_counts=group_counts(train.labels, train.attrs)
    )
    metrics["protocol"] = (
        f"{cfg.eval.fairness_data}: logistic probe on train (spurious), groups (label, attribute) "
        f"scored on test; average weighted by train group frequency"
    )
    return metrics


def resolve_checkpoint(cfg: DictConfig, given: str | None) -> str:
    """The checkpoint to evaluate: the one given, else the run's last.ckpt, which must exist."""
    if given is not None:
        return given
    last = checkpoint_dir(cfg) / "last.ckpt"
    if not last.is_file():
        raise UserError(f"no checkpoint at {last} (pretrain first, or pass --checkpoint FILE)")
    return str(last)


def parse_probes(spec: str) -> tuple[str, ...]:
    """``all`` or a comma list of probe names, checked (the CLI and grid files share it)."""
    probes = PROBES if spec == "all" else tuple(spec.split(","))
    if unknown := [p for p in probes if p not in PROBES]:
        raise UserError(f"unknown probe {unknown[0]!r}; valid: all, {', '.join(PROBES)}")
    return probes


def _linear_and_calibration(cfg: DictConfig, feats: Features, probes: Sequence[str], name: str) -> dict:
    """MAE's linear probe on cached features; calibration reads the same probe's test logits."""
    e, (train_x, train_y, test_x, test_y, n_cls) = cfg.eval, feats
    linear = linear_probe(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=n_cls,
        epochs=e.linear_epochs,
        lr=e.linear_lr,
        batch_size=e.linear_batch_size,
        optimizer=e.linear_optimizer,
        seed=cfg.seed,
        return_logits=True,
    )
    logits, results = linear.pop("logits"), {}
    if "linear" in probes:
        results["linear"] = linear
    if "calibration" in probes:
        png = Path(cfg.output_dir) / "eval" / f"reliability_{name.replace(' ', '_')}.png"
        results["calibration"] = calibration(logits, test_y, n_bins=e.calibration_bins)
        title = f"{cfg.model.name} ({name}), linear probe"
        reliability_diagram(logits.softmax(1), test_y, png, n_bins=e.calibration_bins, title=title)
        results["calibration"]["diagram"] = str(png)
    return results


def _feature_probes(cfg: DictConfig, feats: Features, probes: Sequence[str]) -> dict:
    """logistic, kNN and few-shot on the cached train/test features."""
    e, (train_x, train_y, test_x, test_y, n_cls) = cfg.eval, feats
    results: dict[str, dict] = {}
    if "logistic" in probes:
        results["logistic"] = logistic_probe(train_x, train_y, test_x, test_y, num_classes=n_cls, **logistic_args(cfg))
    if "knn" in probes:
        ks = [k for k in e.knn_k if k <= len(train_x)]
        by_k = knn_classify(train_x, train_y, test_x, test_y, k=ks, temperature=e.knn_temperature, num_classes=n_cls)
        results["knn"] = {f"k={k}": r for k, r in by_k.items()}
    if "fewshot" in probes:
        results["fewshot"] = fewshot_probe(
            train_x,
            train_y,
            test_x,
            test_y,
            shots=tuple(e.fewshot_shots),
            percents=tuple(e.fewshot_percents),
            num_splits=e.fewshot_splits,
            seed=cfg.seed,
            splits_dir=Path(cfg.output_dir) / "fewshot_splits",
        )
    return results


def run_probes(
    cfg: DictConfig, model: nn.Module, identity: str, probes: Sequence[str] = PROBES, name: str = "pretrained"
) -> dict[str, dict]:
    """Each probe's metrics for one backbone (features extracted once, from the cache after)."""
    augmented = "linear" in probes and cfg.eval.linear_augment
    cached_linear = ("linear" in probes and not augmented) or "calibration" in probes
    results: dict[str, dict] = {}
    if cached_linear or set(probes) & {"logistic", "knn", "fewshot"}:
        train_x, train_y = split_features(cfg, model, identity, cfg.data.train_split, cfg.eval.train_subset)
        test_x, test_y = split_features(cfg, model, identity, cfg.data.eval_split, None)
        feats = (train_x, train_y, test_x, test_y, int(max(train_y.max(), test_y.max())) + 1)
        if cached_linear:
            results |= _linear_and_calibration(cfg, feats, [p for p in probes if p != "linear" or not augmented], name)
        results |= _feature_probes(cfg, feats, probes)
    if augmented:
        from .augmented import augmented_linear_probe

        results["linear"] = augmented_linear_probe(cfg, model, name)
    if "fairness" in probes:
        results["fairness"] = fairness_probe(cfg, model, identity)
    return {p: results[p] for p in probes if p in results}


def cached_probes(
    cfg: DictConfig, model: nn.Module, identity: str, probes: Sequence[str], name: str
) -> dict[str, dict]:
    """``run_probes`` for a baseline, its results kept in ``output_dir/baselines`` under a name
    derived from everything they depend on, so a second eval (or grid cell) computes each once."""
    meta = dict(
        weights=identity,
        model=cfg.model.name,
        attention=cfg.model.attention,
        seed=cfg.seed,
        data=OmegaConf.to_container(cfg.data, resolve=True),
        eval=OmegaConf.to_container(cfg.eval, resolve=True),
    )
    results: dict[str, dict] = {}
    todo: list[tuple[str, Path]] = []
    for probe in probes:
        path = cache_file(Path(cfg.output_dir) / "baselines", {**meta, "probe": probe}).with_suffix(".json")
        if path.is_file():
            results[probe] = json.loads(path.read_text())
        else:
            todo.append((probe, path))
    if todo:
        computed = run_probes(cfg, model, identity, [p for p, _ in todo], name)
        for probe, path in todo:
            results[probe] = computed[probe]
            atomic_write_text(path, json.dumps(computed[probe], default=float))
    return {p: results[p] for p in probes}


def evaluate(
    cfg: DictConfig, checkpoint: str | None, probes: Sequence[str] = PROBES, baseline: bool = True, pixels: bool = True
) -> dict[str, dict]:
    """{'pretrained': {probe: metrics}, 'random init': {...}, 'raw pixels': {...}}: the floors
    (random init and raw pixels through the same probes) unless disabled."""
    rows: dict[str, dict] = {}
    if checkpoint is not None:
        model, identity = backbone_from(cfg, checkpoint)
        rows["pretrained"] = {"encoder": model.ssl_encoder, **run_probes(cfg, model, identity, probes, "pretrained")}
    if baseline:
        rows["random init"] = cached_probes(cfg, *backbone_from(cfg, None), probes, "random init")
    if pixels:
        pixel_model = RawPixels(cfg.eval.pixel_size)
        rows["raw pixels"] = {
            "features": pixel_model.describe(),
            **cached_probes(cfg, pixel_model, f"raw-pixels:{cfg.eval.pixel_size}", probes, "raw pixels"),
        }
    return rows
