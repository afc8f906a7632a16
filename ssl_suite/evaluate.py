"""Frozen-backbone evaluation of a checkpoint beside the same architecture at random init.

Features are extracted once per (backbone weights, dataset, split, transform, pooling) and
cached under ``output_dir/features``; every probe reads the cache. Probes:

- ``linear``: MAE's BN + linear probe (SGD, cosine) on cached features, or on augmented images
  on the fly with ``eval.linear_augment=true``;
- ``logistic``: L-BFGS logistic regression, regularisation chosen on held-out train (DINOv2);
- ``knn``: DINO's weighted kNN at each k of ``eval.knn_k``;
- ``fewshot``: 1/2/5 labels per class and 1% of the labels, seeded splits saved for reuse (MSN);
- ``fairness``: a probe trained on spuriously correlated data, scored per group (worst group,
  mean subgroup gap);
- ``calibration``: ECE and Brier score of the linear probe's test predictions, reliability PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoints import load_backbone_weights
from .config import PROBES
from .data import eval_dataset, unwrap
from .data.spurious import GroupCSVDataset, spurious_fashion
from .data.transforms import eval_transform
from .eval.baselines import RawPixels
from .eval.calibration import calibration, reliability_diagram
from .eval.fairness import group_counts, group_metrics
from .eval.features import cache_file, extract_features, file_sha256
from .eval.fewshot import fewshot_probe
from .eval.knn import knn_classify
from .eval.linear import linear_probe
from .eval.logistic import logistic_probe
from .files import atomic_write_text
from .models.backbone import build_backbone


def backbone_from(cfg: DictConfig, checkpoint: str | None) -> tuple[torch.nn.Module, str]:
    """(model, identity): checkpoint weights, or the seeded random init pretraining starts from."""
    torch.manual_seed(cfg.seed)
    model = build_backbone(cfg.model)
    if checkpoint is None:
        return model, f"random-init seed {cfg.seed}"
    model = load_backbone_weights(model, checkpoint, cfg.eval.encoder)
    return model, f"{file_sha256(checkpoint)}:{model.ssl_encoder}"


def cached_features(cfg: DictConfig, model, identity: str, images, **described):
    """Features of ``dataset``, cached under a name derived from everything they depend on."""
    meta = dict(
        weights=identity,
        model=cfg.model.name,
        attention=cfg.model.attention,
        transform=repr(unwrap(images).transform),
        pooling=cfg.eval.pooling,
        n=len(images),
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


def split_features(cfg: DictConfig, model, identity: str, split: str, subset: int | None):
    dataset = eval_dataset(cfg.data, split, subset)
    return cached_features(
        cfg, model, identity, dataset, dataset=cfg.data.dataset, root=str(cfg.data.root), split=split, subset=subset
    )


def logistic_args(cfg: DictConfig) -> dict:
    args = dict(val_fraction=cfg.eval.logistic_val_fraction, seed=cfg.seed)
    if cfg.eval.logistic_Cs:
        args["Cs"] = tuple(cfg.eval.logistic_Cs)
    return args


def fairness_datasets(cfg: DictConfig):
    """(train, test) datasets with ``.attrs``: the spurious Fashion-MNIST set or a user's CSVs."""
    transform = eval_transform(cfg.data.image_size, cfg.data.mean, cfg.data.std, cfg.data.resize_for_eval)
    e = cfg.eval
    if e.fairness_data == "csv":
        root = Path(e.fairness_root or ".")
        return tuple(GroupCSVDataset(root / f"{s}.csv", transform) for s in ("train", "test"))
    root = cfg.data.root if cfg.data.dataset == "fashion_mnist" else None
    return tuple(
        spurious_fashion(s, transform, root=root, correlation=e.fairness_correlation, seed=cfg.seed)
        for s in ("train", "test")
    )


def fairness_probe(cfg: DictConfig, model, identity: str) -> dict:
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


def run_probes(cfg: DictConfig, model, identity: str, probes=PROBES, name: str = "pretrained") -> dict[str, dict]:
    e, results = cfg.eval, {}
    augmented = "linear" in probes and e.linear_augment
    cached_linear = ("linear" in probes and not augmented) or "calibration" in probes
    if cached_linear or set(probes) & {"logistic", "knn", "fewshot"}:
        train_x, train_y = split_features(cfg, model, identity, cfg.data.train_split, e.train_subset)
        test_x, test_y = split_features(cfg, model, identity, cfg.data.eval_split, None)
        n_cls = int(max(train_y.max(), test_y.max())) + 1
    if augmented:
        from .eval.augmented import augmented_linear_probe

        results["linear"] = augmented_linear_probe(cfg, model, name)
    if cached_linear:
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
        logits = linear.pop("logits")
        if "linear" in probes and not augmented:
            results["linear"] = linear
        if "calibration" in probes:
            png = Path(cfg.output_dir) / "eval" / f"reliability_{name.replace(' ', '_')}.png"
            results["calibration"] = calibration(logits, test_y, n_bins=e.calibration_bins)
            reliability_diagram(
                logits.softmax(1),
                test_y,
                png,
                n_bins=e.calibration_bins,
                title=f"{cfg.model.name} ({name}), linear probe",
            )
            results["calibration"]["diagram"] = str(png)
    if "logistic" in probes:
        results["logistic"] = logistic_probe(train_x, train_y, test_x, test_y, num_classes=n_cls, **logistic_args(cfg))
    if "knn" in probes:
        ks = [k for k in e.knn_k if k <= len(train_x)]
        results["knn"] = {
            f"k={k}": r
            for k, r in knn_classify(
                train_x, train_y, test_x, test_y, k=ks, temperature=e.knn_temperature, num_classes=n_cls
            ).items()
        }
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
    if "fairness" in probes:
        results["fairness"] = fairness_probe(cfg, model, identity)
    return results


def cached_probes(cfg: DictConfig, model, identity: str, probes, name: str) -> dict[str, dict]:
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
    results, todo = {}, []
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
    cfg: DictConfig, checkpoint: str | None, probes=PROBES, baseline: bool = True, pixels: bool = True
) -> dict:
    """{'pretrained': {probe: metrics}, 'random init': {...}, 'raw pixels': {...}}: the floors
    (random init and raw pixels through the same probes) unless disabled."""
    rows = {}
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


def headline(results: dict, probe: str) -> str | None:
    """The one number a table shows for a probe (all of them are in the JSON)."""
    r = results.get(probe)
    if r is None:
        return None
    if probe in ("linear", "logistic"):
        return f"{r['top1']:.2f}"
    if probe == "knn":
        key = "k=20" if "k=20" in r else next(iter(r))
        return f"{r[key]['top1']:.2f}"
    if probe == "fewshot":
        return " / ".join(f"{v['mean']:.1f}±{v['std']:.1f}" for k, v in r.items() if isinstance(v, dict))
    if probe == "fairness":
        return f"{r['worst_group']:.2f} / {r['mean_subgroup_gap']:.2f}"
    return f"{100 * r['ece']:.2f} / {r['brier']:.4f}"


COLUMNS = {
    "linear": "linear top-1",
    "logistic": "logistic top-1",
    "knn": "kNN top-1 (k=20)",
    "fewshot": "few-shot top-1",
    "fairness": "worst-group / subgroup gap",
    "calibration": "ECE (%) / Brier",
}


def markdown_table(rows: dict, cfg: DictConfig) -> str:
    probes = [p for p in PROBES if any(p in r for r in rows.values())]
    lines = ["| backbone | " + " | ".join(COLUMNS[p] for p in probes) + " |", "|" + "---|" * (len(probes) + 1)]
    for name, r in rows.items():
        label = r["features"] if "features" in r else f"{name} ({cfg.model.name}, {cfg.model.attention})"
        lines.append(f"| {label} | " + " | ".join(headline(r, p) or "" for p in probes) + " |")
    top1 = [p for p in ("linear", "logistic", "knn") if p in probes]
    for floor in ("random init", "raw pixels"):
        if "pretrained" in rows and floor in rows and top1:
            gain = {p: float(headline(rows["pretrained"], p)) - float(headline(rows[floor], p)) for p in top1}
            lines.append(
                f"| pretrained minus {floor} | "
                + " | ".join(f"{gain[p]:+.2f}" if p in gain else "" for p in probes)
                + " |"
            )
    notes = [f"{cfg.eval.pooling} pooling, {cfg.data.dataset} {cfg.data.train_split} -> {cfg.data.eval_split}"]
    if "encoder" in rows.get("pretrained", {}):
        notes.append(f"pretrained backbone: the checkpoint's {rows['pretrained']['encoder']} encoder")
    first = next(iter(rows.values()))
    if "raw pixels" in rows:
        notes.append(
            "raw pixels: the eval-transformed image flattened, through the same probes (each standardises "
            "it as it standardises features)"
        )
    if "fewshot" in probes:
        notes.append(
            "few-shot: "
            + ", ".join(k for k, v in first["fewshot"].items() if isinstance(v, dict))
            + f" over {cfg.eval.fewshot_splits} splits (mean ± std)"
        )
    if "knn" in probes:
        notes.append(f"kNN: DINO's weighted vote, cosine, k in {list(cfg.eval.knn_k)}, T={cfg.eval.knn_temperature}")
    for p in probes:
        if isinstance(first.get(p), dict) and "protocol" in first[p]:
            notes.append(f"{p}: {first[p]['protocol']}")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def save_results(rows: dict, cfg: DictConfig, checkpoint: str | None, step: int = 0) -> tuple[Path, Path]:
    """JSON and Markdown beside the checkpoint (``<ckpt>.eval.json``/``.md``); scalars to TensorBoard."""
    floor = "random_init" if "random init" in rows else "raw_pixels"
    base = Path(checkpoint) if checkpoint else Path(cfg.output_dir) / floor
    base.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = base.with_name(base.name + ".eval.json"), base.with_name(base.name + ".eval.md")
    atomic_write_text(json_path, json.dumps(rows, indent=2, default=float))
    atomic_write_text(md_path, markdown_table(rows, cfg) + "\n")
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(Path(cfg.output_dir) / "tensorboard" / "eval")) as writer:
        for name, results in rows.items():
            for probe in (p for p in PROBES if p in results):
                value = headline(results, probe)
                if value is not None and probe in ("linear", "logistic", "knn"):
                    writer.add_scalar(f"eval/{name.replace(' ', '_')}/{probe}_top1", float(value), step)
    return json_path, md_path
