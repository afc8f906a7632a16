"""Evaluation results as a reader sees them: the Markdown table (each probe's headline number
beside the floors, with the protocols), ``<checkpoint>.eval.json``/``.md`` and TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from ..config import PROBES
from ..files import atomic_write_text

TOP1_PROBES = ("linear", "logistic", "knn")  # the probes with one top-1 number (differences are taken)


def top1(results: dict, probe: str) -> float | None:
    """The top-1 a table shows for linear, logistic and kNN (k = 20 where run)."""
    r = results.get(probe)
    if r is None or probe not in TOP1_PROBES:
        return None
    if probe == "knn":
        r = r["k=20"] if "k=20" in r else next(iter(r.values()))
    return float(r["top1"])


def headline(results: dict, probe: str) -> str | None:
    """The one entry a table shows for a probe (all numbers are in the JSON)."""
    r = results.get(probe)
    if r is None:
        return None
    if probe in TOP1_PROBES:
        return f"{top1(results, probe):.2f}"
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


def _diff(a: float | None, b: float | None) -> float:
    assert a is not None and b is not None  # both rows ran the probe
    return a - b


def markdown_table(rows: dict, cfg: DictConfig) -> str:
    probes = [p for p in PROBES if any(p in r for r in rows.values())]
    lines = ["| backbone | " + " | ".join(COLUMNS[p] for p in probes) + " |", "|" + "---|" * (len(probes) + 1)]
    for name, r in rows.items():
        label = r["features"] if "features" in r else f"{name} ({cfg.model.name}, {cfg.model.attention})"
        lines.append(f"| {label} | " + " | ".join(headline(r, p) or "" for p in probes) + " |")
    compared = [p for p in TOP1_PROBES if p in probes]
    for floor in ("random init", "raw pixels"):
        if "pretrained" in rows and floor in rows and compared:
            gain = {p: _diff(top1(rows["pretrained"], p), top1(rows[floor], p)) for p in compared}
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
            for probe in TOP1_PROBES:
                value = top1(results, probe)
                if value is not None:
                    writer.add_scalar(f"eval/{name.replace(' ', '_')}/{probe}_top1", value, step)
    return json_path, md_path
