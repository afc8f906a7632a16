"""The compare grid end to end at a toy budget: every cell in the report, finished cells skipped,
a killed grid completes only what is left; bad grids fail before any training."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ssl_suite.cli import main
from ssl_suite.compare import compare, load_grid
from ssl_suite.config import load_config
from ssl_suite.errors import UserError

TOY = [
    "trainer.accelerator=cpu",
    "trainer.max_steps=2",
    "trainer.max_epochs=1",
    "data.batch_size=16",
    "data.num_workers=0",
    "data.augment_on=device",
    "model.name=vit_nano_patch7_28_sigmoid",
]


def grid_file(tmp_path, root, **extra):
    spec = {
        "output_dir": tmp_path / "grid",
        "objectives": "{simclr: configs/demo.yaml, byol: configs/pretrain/byol_vit_nano_fmnist.yaml}",
        "attention": "[sigmoid, softmax]",
        "seeds": "[0]",
        "overrides": f"[data.root={root}, {', '.join(TOY)}]",
        "probes": "[linear, knn]",
        "eval_overrides": "['eval.linear_epochs=2', 'eval.knn_k=[5]', eval.batch_size=64]",
        **extra,
    }
    lines = [f"{k}: {v}" for k, v in spec.items()]
    path = tmp_path / "grid.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_grid_completes_reports_every_cell_and_resumes_after_a_kill(fake_fashion_mnist, tmp_path):
    path = grid_file(tmp_path, fake_fashion_mnist)
    runs = tmp_path / "grid" / "runs"
    first = runs / "simclr-sigmoid-seed0" / "result.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssl_suite.cli", "compare", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not first.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the grid and the cell it is running
    proc.wait()
    assert first.is_file(), "the first trained cell should have finished before the kill"
    stamp = first.stat().st_mtime_ns
    logs = []
    report = compare(path, log=logs.append)
    assert first.stat().st_mtime_ns == stamp  # finished cells are not redone
    assert any("simclr-sigmoid-seed0: finished earlier, skipped" in line for line in logs)
    assert not any("simclr-sigmoid-seed0: pretraining" in line for line in logs)
    text = report.read_text()
    for objective in ("simclr", "byol"):
        for attention in ("sigmoid", "softmax"):
            assert f"| {objective} | {attention} | 1 |" in text
    assert "| random init | sigmoid |" in text and "| random init | softmax |" in text
    assert "| raw pixels |  | 1 |" in text
    assert "| sigmoid - softmax | simclr | linear top-1 |" in text and "n/a (one seed)" in text
    assert "| sigmoid - raw pixels | byol | kNN top-1 |" in text
    assert (tmp_path / "grid" / "report.csv").is_file() and (tmp_path / "grid" / "accuracy_by_objective.png").is_file()
    logs.clear()
    compare(path, log=logs.append)
    assert all("skipped" in line for line in logs) and len(logs) == 7  # 4 runs, 2 random-init and 1 pixel baseline


def test_an_objective_can_carry_its_own_overrides_after_the_grids(tmp_path):
    own = "{config: configs/pretrain/byol_vit_nano_fmnist.yaml, overrides: [model.name=vit_nano_patch4_28_sigmoid]}"
    grid = load_grid(grid_file(tmp_path, tmp_path, objectives=f"{{simclr: configs/demo.yaml, byol: {own}}}"))
    models = {}
    for run in grid.runs:
        cfg = load_config(run.config, run.overrides)
        models[run.objective] = cfg.model.name
        assert cfg.trainer.max_steps == 2  # the grid's overrides still apply
    assert models == {"simclr": "vit_nano_patch7_28_sigmoid", "byol": "vit_nano_patch4_28_sigmoid"}
    floors = sorted(b.name for b in grid.baselines if b.floor == "random init")
    assert floors == [f"random-init-vit_nano_patch{p}_28_sigmoid-{a}" for p in (4, 7) for a in ("sigmoid", "softmax")]


def test_an_objective_can_carry_its_own_seeds_instead_of_the_grids(tmp_path):
    # e.g. five seeds of SimCLR for an interval beside one seed of each costlier objective
    own = "{config: configs/pretrain/byol_vit_nano_fmnist.yaml, seeds: [7]}"
    grid = load_grid(grid_file(tmp_path, tmp_path, objectives=f"{{simclr: configs/demo.yaml, byol: {own}}}"))
    seeds = {(r.objective, r.attention): [] for r in grid.runs}
    for run in grid.runs:
        seeds[run.objective, run.attention].append(run.seed)
        assert f"seed={run.seed}" in run.overrides
    assert seeds == {
        ("simclr", "sigmoid"): [0],
        ("simclr", "softmax"): [0],
        ("byol", "sigmoid"): [7],
        ("byol", "softmax"): [7],
    }
    assert [r.name for r in grid.runs if r.objective == "byol"] == ["byol-sigmoid-seed7", "byol-softmax-seed7"]


@pytest.mark.parametrize(
    "extra,match",
    [
        (
            {"objectives": "{simclr: configs/demo.yaml, dino: configs/demo.yaml}"},
            r"unknown objective 'dino'; valid: simclr",
        ),
        ({"attention": "[sigmoid, relu]"}, r"unknown attention 'relu'; valid: sigmoid, softmax"),
        ({"axes": "{optim.name: [adamw, adam]}"}, r"optim.name='adam': expected one of adamw, sgd, lars"),
        ({"probes": "[linear, vibes]"}, r"unknown probe 'vibes'"),
        ({"objectives": "{simclr: {path: configs/demo.yaml}}"}, r"objective 'simclr': expected a config path or"),
        (
            {"objectives": "{simclr: {config: configs/demo.yaml, seeds: [0, x]}}"},
            r"objective 'simclr': seeds must be a non-empty list of integers, got \[0, 'x'\]",
        ),
    ],
)
def test_bad_grid_values_name_the_valid_ones(tmp_path, extra, match):
    with pytest.raises(UserError, match=match):
        load_grid(grid_file(tmp_path, tmp_path, **extra))


def test_unwritable_output_or_full_disk_is_reported_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    path = grid_file(tmp_path, tmp_path, output_dir=locked / "grid")
    if os.access(locked, os.W_OK):  # running as root: permissions do not bind, use the disk check
        path = grid_file(tmp_path, tmp_path, min_free_gib=1e9)
    assert main(["compare", str(path)]) == 2
    err = capsys.readouterr().err
    assert ("not writable" in err or "GiB free" in err) and "\n" not in err.strip()
    assert not list(tmp_path.rglob("*.ckpt"))
