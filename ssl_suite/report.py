"""The comparison report: one row per objective x attention (mean ± std over seeds and other
axes), Markdown + CSV, and PNG plots (accuracy by objective grouped by attention, training
loss curves, accuracy against wall time). TensorBoard logs of every run stay under
``<output_dir>/runs``: ``tensorboard --logdir <output_dir>/runs`` shows them side by side.
"""
from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

# (column, how to read it from a result); None when the probe did not run.
METRICS = {
    "linear top-1": lambda r: r["eval"].get("linear", {}).get("top1"),
    "kNN top-1": lambda r: (r["eval"].get("knn", {}).get("k=20") or next(iter(r["eval"].get("knn", {}).values()), {}))
    .get("top1"),
    "5-shot top-1": lambda r: r["eval"].get("fewshot", {}).get("5-shot", {}).get("mean"),
    "worst-group": lambda r: r["eval"].get("fairness", {}).get("worst_group"),
    "ECE (%)": lambda r: (lambda e: None if e is None else 100 * e)(r["eval"].get("calibration", {}).get("ece")),
    "samples/s": lambda r: r["train"].get("samples_per_second"),
    "peak MiB": lambda r: r["train"].get("peak_memory_mib"),
    "train min": lambda r: (lambda s: None if s is None else s / 60)(r["train"].get("train_seconds")),
}


def load_results(output_dir: Path) -> list[dict]:
    rows = []
    for path in sorted((Path(output_dir) / "runs").glob("*/result.json")):
        result = json.loads(path.read_text())
        backbone = "random init" if result["baseline"] else "pretrained"
        result["eval"] = result["eval"].get(backbone, {})
        rows.append(result)
    return rows


def _cell(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return ""
    mean = statistics.fmean(values)
    return f"{mean:.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")


def table(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    groups = defaultdict(list)
    for r in results:
        groups[(r["objective"] if not r["baseline"] else "random init", r["attention"])].append(r)
    header = ["objective", "attention", "runs", *METRICS]
    rows = [[obj, att, str(len(rs)), *(_cell([f(r) for r in rs]) for f in METRICS.values())]
            for (obj, att), rs in sorted(groups.items(), key=lambda kv: (kv[0][0].startswith("random"), kv[0]))]
    return header, rows


def _plots(results: list[dict], output_dir: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    paths = []
    trained = [r for r in results if not r["baseline"]]
    objectives = sorted({r["objective"] for r in trained})
    attentions = sorted({r["attention"] for r in trained})
    fig, ax = plt.subplots(figsize=(1.6 * max(3, len(objectives)) + 1, 3.6))
    width = 0.8 / max(1, len(attentions))
    for j, att in enumerate(attentions):
        means = [statistics.fmean([METRICS["linear top-1"](r) or 0 for r in trained
                                   if r["objective"] == o and r["attention"] == att] or [0]) for o in objectives]
        ax.bar([i + j * width for i in range(len(objectives))], means, width, label=att)
    for r in results:
        if r["baseline"] and METRICS["linear top-1"](r) is not None:
            ax.axhline(METRICS["linear top-1"](r), color="grey", lw=0.8, ls="--")
    ax.set_xticks([i + width * (len(attentions) - 1) / 2 for i in range(len(objectives))], objectives)
    ax.set_ylabel("linear top-1 (%)")
    ax.set_title("linear probe by objective (dashed: random init)")
    ax.legend()
    lows = [METRICS["linear top-1"](r) for r in results if METRICS["linear top-1"](r) is not None]
    if lows:
        ax.set_ylim(max(0, min(lows) - 10), min(100, max(lows) + 5))
    paths.append(_save(fig, output_dir / "accuracy_by_objective.png"))

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r in trained:
        x, y = r["train"].get("train_seconds"), METRICS["linear top-1"](r)
        if x is not None and y is not None:
            ax.scatter(x / 60, y, marker="o" if r["attention"] == "sigmoid" else "s")
            ax.annotate(f"{r['objective']}/{r['attention'][:3]}", (x / 60, y), fontsize=7)
    ax.set_xlabel("pretraining wall time (min)")
    ax.set_ylabel("linear top-1 (%)")
    paths.append(_save(fig, output_dir / "accuracy_vs_time.png"))

    curves = _loss_curves(output_dir, trained)
    if curves:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for name, (steps, values) in curves.items():
            ax.plot(steps, values, label=name, ls="-" if "sigmoid" in name else "--", lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("train loss")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
        paths.append(_save(fig, output_dir / "loss_curves.png"))
    return paths


def _loss_curves(output_dir: Path, results: list[dict]) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = {}
    for r in results:
        logdir = Path(output_dir) / "runs" / r["name"] / "tensorboard"
        if not logdir.is_dir():
            continue
        events = EventAccumulator(str(logdir), size_guidance={"scalars": 0}).Reload()
        if "train_loss" in events.Tags().get("scalars", []):
            points = events.Scalars("train_loss")
            curves[r["name"]] = ([p.step for p in points], [p.value for p in points])
    return curves


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def write_report(output_dir: str | Path) -> Path:
    """report.md, report.csv and the PNGs in ``output_dir``; returns the Markdown path."""
    output_dir = Path(output_dir)
    results = load_results(output_dir)
    header, rows = table(results)
    with open(output_dir / "report.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    plots = _plots(results, output_dir) if results else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    seeds = sorted({r["seed"] for r in results if not r["baseline"]})
    lines += ["", f"Seeds: {seeds}; mean ± std over seeds and other axes where there are several runs. "
              f"kNN at k=20, few-shot mean over splits, ECE of the linear probe. "
              f"TensorBoard: `tensorboard --logdir {output_dir / 'runs'}`."]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
