"""Frozen-backbone evaluation of a checkpoint beside the same architecture at random init.

Features are extracted once per (backbone weights, dataset, split, transform, pooling) and
cached under ``output_dir/features``; every probe reads the cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig

from .checkpoints import load_backbone_weights
from .data import eval_dataset, unwrap
from .eval.features import cache_file, extract_features, file_sha256
from .eval.knn import knn_classify
from .eval.linear import linear_probe
from .methods import build_backbone

PROBES = ("linear", "knn")


def backbone_from(cfg: DictConfig, checkpoint: Optional[str]) -> tuple[torch.nn.Module, str]:
    """(model, identity): checkpoint weights, or the seeded random init pretraining starts from."""
    torch.manual_seed(cfg.seed)
    model = build_backbone(cfg.model)
    if checkpoint is None:
        return model, f"random-init seed {cfg.seed}"
    return load_backbone_weights(model, checkpoint), file_sha256(checkpoint)


def features(cfg: DictConfig, model, identity: str, split: str, subset: Optional[int]):
    dataset = eval_dataset(cfg.data, split, subset)
    meta = dict(weights=identity, model=cfg.model.name, attention=cfg.model.attention,
                dataset=cfg.data.dataset, root=str(cfg.data.root), split=split, subset=subset,
                transform=repr(unwrap(dataset).transform),
                pooling=cfg.eval.pooling)
    return extract_features(model, dataset, pooling=cfg.eval.pooling, batch_size=cfg.eval.batch_size,
                            num_workers=cfg.eval.num_workers,
                            cache_path=cache_file(Path(cfg.output_dir) / "features", meta), cache_meta=meta)


def run_probes(cfg: DictConfig, model, identity: str, probes=PROBES) -> dict[str, dict]:
    train_x, train_y = features(cfg, model, identity, cfg.data.train_split, cfg.eval.train_subset)
    test_x, test_y = features(cfg, model, identity, cfg.data.eval_split, None)
    n_cls = int(max(train_y.max(), test_y.max())) + 1
    results = {}
    if "linear" in probes:
        e = cfg.eval
        results["linear"] = linear_probe(train_x, train_y, test_x, test_y, num_classes=n_cls, epochs=e.linear_epochs,
                                         lr=e.linear_lr, batch_size=e.linear_batch_size, seed=cfg.seed)
    if "knn" in probes:
        results["knn"] = knn_classify(train_x, train_y, test_x, test_y, k=cfg.eval.knn_k,
                                      temperature=cfg.eval.knn_temperature, num_classes=n_cls)
    return results


def evaluate(cfg: DictConfig, checkpoint: Optional[str], probes=PROBES, baseline: bool = True) -> dict:
    """{'pretrained': {probe: metrics}, 'random init': {...}} (the baseline unless disabled)."""
    rows = {}
    if checkpoint is not None:
        rows["pretrained"] = run_probes(cfg, *backbone_from(cfg, checkpoint), probes)
    if baseline or checkpoint is None:
        rows["random init"] = run_probes(cfg, *backbone_from(cfg, None), probes)
    return rows


def markdown_table(rows: dict, cfg: DictConfig) -> str:
    probes = [p for p in PROBES if any(p in r for r in rows.values())]
    head = "| backbone | " + " | ".join(f"{p} top-1 (%)" for p in probes) + " |"
    lines = [head, "|" + "---|" * (len(probes) + 1)]
    for name, r in rows.items():
        lines.append(f"| {name} ({cfg.model.name}, {cfg.model.attention}) | "
                     + " | ".join(f"{r[p]['top1']:.2f}" for p in probes) + " |")
    if "pretrained" in rows and "random init" in rows:
        gain = " | ".join(f"{rows['pretrained'][p]['top1'] - rows['random init'][p]['top1']:+.2f}" for p in probes)
        lines.append(f"| gain over random init | {gain} |")
    protocol = f"{cfg.eval.pooling} pooling, {cfg.data.dataset} {cfg.data.train_split} -> {cfg.data.eval_split}"
    if "linear" in probes:
        protocol += f"; linear: {next(iter(rows.values()))['linear'].get('protocol', '')}"
    if "knn" in probes:
        protocol += f"; kNN: cosine, k={cfg.eval.knn_k}, T={cfg.eval.knn_temperature}"
    return "\n".join(lines) + f"\n\nProtocol: {protocol}"
