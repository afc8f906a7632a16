"""The comparison report: one row per objective x attention (mean ± std and the 95% t-interval
over seeds), the floors (raw pixels, random init), the sigmoid-minus-softmax difference per
objective paired by seed and each cell minus raw pixels and minus its own backbone at random
init, with intervals, the differences whose interval excludes 0 marked; Markdown + CSV, and PNG
plots (accuracy by objective with 95% error bars and the floors as lines, training loss with one
panel per objective, accuracy against wall time). TensorBoard logs of every run stay under ``<output_dir>/runs``.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import OmegaConf

from .eval.results import top1
from .files import atomic_write_text
from .stats import Interval, interval, paired_difference

if TYPE_CHECKING:
    from collections.abc import Callable

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# (column, how to read it from a result); None when the probe did not run.
METRICS: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "linear top-1": lambda r: top1(r["eval"], "linear"),
    "kNN top-1": lambda r: top1(r["eval"], "knn"),  # k = 20 where run, as the eval table
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
        # grids from before the pixel floor have only random-init baseline cells
        result["floor"] = result.get("floor") or ("random init" if result["baseline"] else None)
        result["eval"] = result["eval"].get(result["floor"] or "pretrained", {})
        result["model"] = _model(result, path.parent)
        rows.append(result)
    return rows


def _model(result: dict, run_dir: Path) -> str | None:
    """The backbone of a run, to pair a trained cell with its random-init floor: a pretrained run's
    resolved config.yaml, or a floor's name (``random-init-<model>-<attention>``, as compare names it)."""
    config = run_dir / "config.yaml"
    if config.is_file():
        return str(OmegaConf.load(config).model.name)
    prefix, suffix = "random-init-", f"-{result['attention']}"
    name = str(result["name"])
    if result["floor"] == "random init" and name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix) : -len(suffix)]
    return None


COMPARED = ("linear top-1", "kNN top-1")  # the metrics with paired differences


def _cell(values: list, with_interval: bool) -> str:
    iv = interval(values)
    if iv is None:
        return ""
    if with_interval:
        return iv.text()
    return f"{iv.mean:.2f}" + (f" ± {iv.std:.2f}" if iv.std is not None else "")


def _label(r: dict, by_model: bool) -> tuple[str, str]:
    """(row, attention); random-init rows name their run when the grid has several backbones,
    whose floors differ (e.g. ``random-init-vit_nano_patch4_28_sigmoid-sigmoid``)."""
    if r["floor"] == "random init" and by_model:
        return (f"random init: {r['name']}", r["attention"])
    return (
        (r["floor"], "" if r["floor"] == "raw pixels" else r["attention"])
        if r["floor"]
        else (r["objective"], r["attention"])
    )


def _floors_by_model(results: list[dict]) -> bool:
    """Whether the grid has several random-init floors per attention (one per backbone)."""
    floors = [(r["name"], r["attention"]) for r in results if r["floor"] == "random init"]
    return len(floors) > len({attention for _, attention in floors})


def table(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Cells: mean ± std [95% interval] for the compared metrics, mean ± std for the rest."""
    by_model = _floors_by_model(results)
    groups = defaultdict(list)
    for r in results:
        groups[_label(r, by_model)].append(r)
    header = ["objective", "attention", "runs", *METRICS]
    order = sorted(groups, key=lambda k: (k[0].startswith(("random init", "raw pixels")), k))
    rows = [
        [
            obj,
            att,
            str(len(groups[obj, att])),
            *(_cell([f(r) for r in groups[obj, att]], name in COMPARED) for name, f in METRICS.items()),
        ]
        for obj, att in order
    ]
    return header, rows


def by_seed(results: list[dict], objective: str, attention: str, metric: str) -> dict:
    """{seed: value} of one cell (runs of other axes at the same seed are averaged)."""
    values = defaultdict(list)
    for r in results:
        if not r["floor"] and r["objective"] == objective and r["attention"] == attention:
            if (v := METRICS[metric](r)) is not None:
                values[r["seed"]].append(v)
    return {seed: statistics.fmean(v) for seed, v in values.items()}


def _vs_floor(cell: dict, floor: float) -> Interval:
    # every seed of the cell pairs with the one floor value: the interval is never None
    return cast(Interval, paired_difference(cell, dict.fromkeys(cell, floor)))


def differences(results: list[dict]) -> list[tuple[str, str, str, Interval]]:
    """(what, objective, metric, interval): sigmoid - softmax paired by seed, every cell minus raw
    pixels (one deterministic number), and every cell minus its backbone at random init (one
    network, seed 0: the interval holds the trained seeds' spread, not the floor's)."""
    out = []
    trained = [r for r in results if not r["floor"]]
    objectives = sorted({r["objective"] for r in trained})
    attentions = sorted({r["attention"] for r in trained})
    pixels = next((r for r in results if r["floor"] == "raw pixels"), None)
    random_init = {(r["model"], r["attention"]): r for r in results if r["floor"] == "random init"}
    for metric in COMPARED:
        for obj in objectives:
            if {"sigmoid", "softmax"} <= set(attentions):
                iv = paired_difference(
                    by_seed(results, obj, "sigmoid", metric), by_seed(results, obj, "softmax", metric)
                )
                if iv is not None:
                    out.append(("sigmoid - softmax", obj, metric, iv))
            floor = METRICS[metric](pixels) if pixels else None
            for att in attentions:
                cell = by_seed(results, obj, att, metric)
                if floor is not None and cell:
                    out.append((f"{att} - raw pixels", obj, metric, _vs_floor(cell, floor)))
                models = {r["model"] for r in trained if r["objective"] == obj and r["attention"] == att}
                init = random_init.get((models.pop(), att)) if len(models) == 1 else None
                init_value = METRICS[metric](init) if init else None
                if init_value is not None and cell:
                    out.append((f"{att} - random init", obj, metric, _vs_floor(cell, init_value)))
    return out


def _plots(results: list[dict], output_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)

    paths = []
    trained = [r for r in results if not r["floor"]]
    objectives = sorted({r["objective"] for r in trained})
    attentions = sorted({r["attention"] for r in trained})
    paths.append(_plot_accuracy_by_objective(results, objectives, attentions, output_dir))
    paths.append(_plot_accuracy_vs_time(trained, output_dir))
    curves = _loss_curves(output_dir, trained)
    if curves:
        paths.append(_plot_loss_curves(curves, trained, objectives, output_dir))
    return paths


def _plot_accuracy_by_objective(
    results: list[dict], objectives: list[str], attentions: list[str], output_dir: Path
) -> Path:
    """One panel per compared metric: bars per objective and attention with 95% error bars, the floors as lines."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COMPARED), figsize=(2 * (1.6 * max(3, len(objectives)) + 1), 3.6))
    for ax, metric in zip(axes, COMPARED):
        width = 0.8 / max(1, len(attentions))
        values = _draw_bars(ax, results, metric, objectives, attentions, width)
        values += _draw_floors(ax, results, metric)
        ax.set_xticks([i + width * (len(attentions) - 1) / 2 for i in range(len(objectives))], objectives)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{metric}: 95% intervals; solid raw pixels, dashed random init", fontsize=8)
        if values:
            ax.set_ylim(max(0, min(values) - 10), min(100, max(values) + 5))
        ax.legend(fontsize=7)
    return _save(fig, output_dir / "accuracy_by_objective.png")


def _draw_bars(
    ax: Axes, results: list[dict], metric: str, objectives: list[str], attentions: list[str], width: float
) -> list[float]:
    """A group of bars per objective, one bar per attention (mean over seeds, 95% interval as the
    error bar); returns the plotted means, for the y range."""
    values = []
    for j, att in enumerate(attentions):
        cells = [interval(by_seed(results, o, att, metric).values()) for o in objectives]
        means = [c.mean if c else 0 for c in cells]
        errors = [(c.high - c.mean) if c and c.high is not None else 0 for c in cells]
        values += [m for m, c in zip(means, cells) if c]
        ax.bar([i + j * width for i in range(len(objectives))], means, width, yerr=errors, capsize=3, label=att)
    return values


def _draw_floors(ax: Axes, results: list[dict], metric: str) -> list[float]:
    """The floors as horizontal lines (solid raw pixels, dashed random init), labelled as their
    table rows for the legend; returns their values."""
    values = []
    by_model = _floors_by_model(results)
    for r in results:
        if r["floor"] and (v := METRICS[metric](r)) is not None:
            style: dict[str, Any] = (
                dict(color="black", ls="-") if r["floor"] == "raw pixels" else dict(color="grey", ls="--")
            )
            label = " ".join(part for part in _label(r, by_model) if part)
            ax.axhline(v, lw=0.9, label=label, **style)
            values.append(v)
    return values


def _plot_accuracy_vs_time(trained: list[dict], output_dir: Path) -> Path:
    """Linear top-1 against pretraining wall time, one labelled point per trained run."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r in trained:
        x, y = r["train"].get("train_seconds"), METRICS["linear top-1"](r)
        if x is not None and y is not None:
            ax.scatter(x / 60, y, marker="o" if r["attention"] == "sigmoid" else "s")
            ax.annotate(f"{r['objective']}/{r['attention'][:3]}", (x / 60, y), fontsize=7)
    ax.set_xlabel("pretraining wall time (min)")
    ax.set_ylabel("linear top-1 (%)")
    return _save(fig, output_dir / "accuracy_vs_time.png")


def _plot_loss_curves(curves: dict, trained: list[dict], objectives: list[str], output_dir: Path) -> Path:
    """Training loss by step, one panel per objective: their losses differ by 10x in scale."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(objectives), figsize=(3.2 * len(objectives), 3.2), squeeze=False)
    for ax, obj in zip(axes[0], objectives):
        for r in (r for r in trained if r["objective"] == obj and r["name"] in curves):
            steps, values = curves[r["name"]]
            ax.plot(
                steps,
                values,
                lw=1,
                ls="-" if r["attention"] == "sigmoid" else "--",
                label=f"{r['attention']} s{r['seed']}",
            )
        ax.set_title(obj, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("train loss")
    return _save(fig, output_dir / "loss_curves.png")


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


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _seeds(results: list[dict]) -> str:
    """The grid's seeds, or each objective's where they differ (e.g. five of one, one of others)."""
    by_objective = defaultdict(set)
    for r in results:
        if not r["floor"]:
            by_objective[r["objective"]].add(r["seed"])
    if len({frozenset(s) for s in by_objective.values()}) <= 1:
        return str(sorted(set().union(*by_objective.values())))
    return "; ".join(f"{obj} {sorted(seeds)}" for obj, seeds in sorted(by_objective.items()))


def write_report(output_dir: str | Path) -> Path:
    """report.md, report.csv and the PNGs in ``output_dir``; returns the Markdown path."""
    output_dir = Path(output_dir)
    results = load_results(output_dir)
    header, rows = table(results)
    csv_text = io.StringIO()
    csv.writer(csv_text).writerows([header, *rows])
    atomic_write_text(output_dir / "report.csv", csv_text.getvalue())
    plots = _plots(results, output_dir) if results else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [
        "",
        f"Seeds: {_seeds(results)}. {', '.join(COMPARED)}: mean ± std [95% t-interval of the mean over seeds]; "
        f"other columns mean ± std. kNN at k=20, few-shot MSN's mean over splits, ECE of the linear probe. "
        f"TensorBoard: `tensorboard --logdir {output_dir / 'runs'}`.",
        "",
    ]
    diffs = differences(results)
    if diffs:
        lines += [
            "| difference | objective | metric | mean | 95% interval | seeds | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for what, obj, metric, iv in diffs:
            span = f"[{iv.low:+.2f}, {iv.high:+.2f}]" if iv.low is not None else "n/a (one seed)"
            verdict = "**real**" if iv.excludes_zero else ("noise" if iv.low is not None else "unknown")
            lines.append(f"| {what} | {obj} | {metric} | {iv.mean:+.2f} | {span} | {iv.n} | {verdict} |")
        lines += [
            "",
            "Differences are paired by seed; **real** where the 95% interval excludes 0, noise where "
            "it contains 0; one seed gives no interval. Minus random init: against the same backbone "
            "untrained (one network, seed 0).",
            "",
        ]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    return atomic_write_text(output_dir / "report.md", "\n".join(lines) + "\n")
