"""``ssl-suite compare GRID.yaml``: objectives x attention (x seeds x any override axis), each run
pretrained then evaluated, one report.

A grid file::

    output_dir: runs/compare_fmnist
    objectives:                      # name (a method) -> its pretraining config
      simclr: configs/demo.yaml
      mae:                           # or its config and its own overrides (after the grid's)
        config: configs/pretrain/mae_vit_nano_fmnist.yaml
        overrides: [trainer.max_steps=1380]
        seeds: [0]                   # and its own seeds (instead of the grid's)
    attention: [sigmoid, softmax]
    seeds: [0]
    axes: {optim.lr: [1.0e-3, 2.0e-3]}          # optional: any other override axis
    budget: [trainer.max_epochs=1]              # the same for every run
    overrides: [model.name=vit_nano_patch4_28_sigmoid]   # also for every run (and the baselines)
    probes: [linear, knn, fewshot, fairness, calibration]
    eval_overrides: [eval.linear_epochs=30]

Every run lives in ``output_dir/runs/<name>``; its ``result.json`` marks it finished, so a
re-run skips it, and a run with a ``last.ckpt`` but no result resumes from it. Each run is a
subprocess (``python -m ssl_suite.cli``): a crash or kill loses that run's last minutes, not the
grid, and peak memory is per run. ``--print-jobs`` prints one command per run for a scheduler
(one GPU or node each); ``--run INDEX`` runs one cell (e.g. ``$SLURM_ARRAY_TASK_ID``).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from .config import PROBES, choices, load_config
from .errors import UserError
from .files import atomic_write_text

GRID_KEYS = {
    "output_dir",
    "objectives",
    "attention",
    "seeds",
    "axes",
    "budget",
    "overrides",
    "probes",
    "eval_overrides",
    "min_free_gib",
}


@dataclass
class Run:
    name: str
    objective: str
    attention: str
    seed: int
    config: str
    overrides: list[str]
    axes: dict = field(default_factory=dict)
    floor: str | None = None  # baseline cells: "random init" or "raw pixels"


@dataclass
class Grid:
    output_dir: Path
    runs: list[Run]
    baselines: list[Run]  # raw pixels once, and one random-init backbone per (model, attention)
    probes: list[str]
    eval_overrides: list[str]
    min_free_gib: float


def _list(spec: Mapping[str, Any], key: str, default: Sequence[Any]) -> list[Any]:
    value = spec.get(key, default)
    return list(value) if value is not None else list(default)


def _read_spec(path: Path) -> dict[str, Any]:
    """The grid file as a plain dict; a missing file or an unknown key is a UserError."""
    if not path.is_file():
        raise UserError(f"compare grid not found: {path}")
    spec = cast("dict[str, Any]", OmegaConf.to_container(OmegaConf.load(path), resolve=True))
    if unknown := set(spec) - GRID_KEYS:
        raise UserError(
            f"{path}: unknown grid key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(GRID_KEYS))}"
        )
    return spec


def _check_known(path: Path, what: str, values: Iterable[str], valid: Sequence[str]) -> None:
    """Reject the first value not in ``valid``, naming the valid ones."""
    for value in values:
        if value not in valid:
            raise UserError(f"{path}: unknown {what} {value!r}; valid: {', '.join(valid)}")


def _add_baselines(baselines: list[Run], objective: str, attention: str, config: str, base: list[str]) -> None:
    """Add the floors this (objective, attention) needs: raw pixels once for the whole grid (the
    data's floor: independent of objective, attention and seed), and one random-init backbone per
    (model, attention)."""
    model = load_config(config, base).model.name if Path(config).is_file() else "?"
    if not baselines:
        baselines.append(Run("raw-pixels", objective, attention, 0, config, base, floor="raw pixels"))
    if not any(b.name == f"random-init-{model}-{attention}" for b in baselines):
        baselines.append(
            Run(f"random-init-{model}-{attention}", objective, attention, 0, config, base, floor="random init")
        )


def _objective_entry(path: Path, objective: str, entry: Any) -> tuple[str, list[str], list[int] | None]:
    """An objective's config, its own overrides and its own seeds (None: the grid's): ``name: CONFIG`` or
    ``name: {config, overrides, seeds}`` (for budgets that differ per objective, e.g. steps that fill the
    same minutes, or one seed of an expensive objective beside several of another)."""
    if isinstance(entry, str):
        return entry, [], None
    if (
        isinstance(entry, dict)
        and isinstance(entry.get("config"), str)
        and set(entry) <= {"config", "overrides", "seeds"}
    ):
        seeds = entry.get("seeds")
        if seeds is not None and not (
            isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        ):
            raise UserError(
                f"{path}: objective {objective!r}: seeds must be a non-empty list of integers, got {seeds!r}"
            )
        return entry["config"], [str(o) for o in entry.get("overrides") or []], seeds
    raise UserError(
        f"{path}: objective {objective!r}: expected a config path or {{config: PATH, overrides: [...], seeds: [...]}}"
    )


def _trained_runs(
    objective: str,
    attention: str,
    config: str,
    common: list[str],
    seeds: list[int],
    axes: dict[str, list[Any]],
    axis_values: list[tuple[Any, ...]],
) -> list[Run]:
    """The pretrained cells of one (objective, attention): one per seed x combination of axis values."""
    runs = []
    for seed in seeds:
        for values in axis_values:
            chosen = dict(zip(axes, values))
            tag = "".join(f"-{k.split('.')[-1]}={v}" for k, v in chosen.items())
            overrides = [
                *common,
                f"method.name={objective}",
                f"model.attention={attention}",
                f"seed={seed}",
                *(f"{k}={v}" for k, v in chosen.items()),
            ]
            runs.append(
                Run(
                    f"{objective}-{attention}-seed{seed}{tag}",
                    objective,
                    attention,
                    seed,
                    config,
                    overrides,
                    chosen,
                )
            )
    return runs


def _validate_runs(grid: Grid, path: Path) -> None:
    """Every cell must be a valid config before anything starts."""
    for run in grid.runs + grid.baselines:
        try:
            load_config(run.config, run.overrides + grid.eval_overrides)
        except UserError as err:
            raise UserError(f"{path}: run {run.name}: {err}") from None


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    spec = _read_spec(path)
    objectives = spec.get("objectives") or {}
    valid = choices()["method.name"]
    _check_known(path, "objective", objectives, valid)
    if not objectives:
        raise UserError(f"{path}: 'objectives' must map at least one of {', '.join(valid)} to a config file")
    attentions = _list(spec, "attention", ["sigmoid", "softmax"])
    _check_known(path, "attention", attentions, choices()["model.attention"])
    probes = _list(spec, "probes", ["linear", "knn"])
    _check_known(path, "probe", probes, PROBES)
    axes = spec.get("axes") or {}
    common = _list(spec, "budget", []) + _list(spec, "overrides", [])
    out = Path(spec.get("output_dir", "runs/compare"))
    runs: list[Run] = []
    baselines: list[Run] = []
    axis_values = list(itertools.product(*axes.values())) if axes else [()]
    seeds = _list(spec, "seeds", [0])
    for objective, entry in objectives.items():
        config, own, own_seeds = _objective_entry(path, objective, entry)
        shared = [*common, *own]  # the objective's own overrides win over the grid's
        for attention in attentions:
            base = [*shared, f"method.name={objective}", f"model.attention={attention}"]
            _add_baselines(baselines, objective, attention, config, base)
            runs += _trained_runs(objective, attention, config, shared, own_seeds or seeds, axes, axis_values)
    grid = Grid(out, runs, baselines, probes, _list(spec, "eval_overrides", []), float(spec.get("min_free_gib", 1.0)))
    _validate_runs(grid, path)
    return grid


def preflight(grid: Grid) -> None:
    """An unwritable output directory or a full disk is reported before any training starts."""
    try:
        grid.output_dir.mkdir(parents=True, exist_ok=True)
        probe = grid.output_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise UserError(f"compare output_dir {grid.output_dir} is not writable: {err.strerror}") from None
    free = shutil.disk_usage(grid.output_dir).free / 2**30
    if free < grid.min_free_gib:
        raise UserError(
            f"only {free:.2f} GiB free under {grid.output_dir}; the grid wants at least "
            f"{grid.min_free_gib} GiB (min_free_gib)"
        )


def run_dir(grid: Grid, run: Run) -> Path:
    return grid.output_dir / "runs" / run.name


def commands(grid: Grid, run: Run, baseline: bool = False) -> list[list[str]]:
    """The subprocess commands of one run: pretrain (resuming if it has a checkpoint), then eval."""
    cli = [sys.executable, "-m", "ssl_suite.cli"]
    where = f"output_dir={run_dir(grid, run)}"
    evaluate = [*cli, "eval", ",".join(grid.probes), run.config, *run.overrides, *grid.eval_overrides, where]
    if baseline:
        return [evaluate + ["--pixels" if run.floor == "raw pixels" else "--random-init"]]
    resume = ["--resume"] if (run_dir(grid, run) / "checkpoints" / "last.ckpt").is_file() else ["--overwrite"]
    return [[*cli, "pretrain", run.config, *run.overrides, where, *resume], evaluate + ["--no-baseline"]]


def execute(grid: Grid, run: Run, baseline: bool = False, log: Callable[[str], object] = print) -> dict:
    """Run one cell unless finished; returns its result."""
    directory = run_dir(grid, run)
    done = directory / "result.json"
    if done.is_file():
        log(f"[compare] {run.name}: finished earlier, skipped")
        return json.loads(done.read_text())
    directory.mkdir(parents=True, exist_ok=True)
    log(f"[compare] {run.name}: {'evaluating' if baseline else 'pretraining + evaluating'}")
    for cmd in commands(grid, run, baseline):
        with open(directory / "compare.log", "a") as out:
            code = subprocess.call(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        if code != 0:
            raise UserError(f"run {run.name} failed (exit {code}); see {directory / 'compare.log'}")
    evals = sorted(directory.rglob("*.eval.json"), key=lambda p: p.stat().st_mtime)
    stats = directory / "train_stats.json"
    result = {
        "name": run.name,
        "objective": run.objective,
        "attention": run.attention,
        "seed": run.seed,
        "axes": run.axes,
        "baseline": baseline,
        "floor": run.floor,
        "eval": json.loads(evals[-1].read_text()) if evals else {},
        "train": json.loads(stats.read_text()) if stats.is_file() else {},
    }
    atomic_write_text(done, json.dumps(result, indent=2))  # the marker appears whole or not at all
    return result


def compare(
    path: str | Path, run_index: int | None = None, print_jobs: bool = False, log: Callable[[str], object] = print
) -> Path | None:
    grid = load_grid(path)
    cells = [(r, True) for r in grid.baselines] + [(r, False) for r in grid.runs]
    if print_jobs:
        for i, (run, _) in enumerate(cells):
            log(f"ssl-suite compare {path} --run {i}   # {run.name}")
        return None
    preflight(grid)
    if run_index is not None:
        if not 0 <= run_index < len(cells):
            raise UserError(f"--run {run_index}: the grid has cells 0..{len(cells) - 1}")
        execute(grid, *cells[run_index], log=log)
        return None
    for run, baseline in cells:
        execute(grid, run, baseline, log=log)
    from .report import write_report

    return write_report(grid.output_dir)
