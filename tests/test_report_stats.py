"""The comparison report's statistics on synthetic results with known answers: t-intervals over
seeds, sigmoid-minus-softmax paired by seed, cells minus the raw-pixel floor, and the verdicts."""

import json
import math

import pytest

from ssl_suite.report import write_report
from ssl_suite.stats import interval, paired_difference

T_975_2 = 4.302652729911275  # Student's t quantile, 0.975, 2 degrees of freedom (tables)


def test_interval_is_the_t_interval_of_the_mean():
    iv = interval([80.0, 82.0, 84.0])
    assert (iv.mean, iv.std, iv.n) == (82.0, 2.0, 3)
    half = T_975_2 * 2.0 / math.sqrt(3)
    assert (iv.low, iv.high) == pytest.approx((82 - half, 82 + half))
    one = interval([5.0])
    assert one.std is None and one.low is None and not one.excludes_zero
    assert interval([]) is None


def test_paired_difference_uses_common_seeds_only():
    iv = paired_difference({0: 3.0, 1: 4.0, 2: 5.0, 7: 100.0}, {0: 1.0, 1: 2.0, 2: 3.0})
    assert (iv.mean, iv.std, iv.n) == (2.0, 0.0, 3) and iv.excludes_zero


def _result(tmp_path, name, objective, attention, seed, linear, knn, floor=None, model=None):
    d = tmp_path / "runs" / name
    d.mkdir(parents=True)
    if model:  # a pretrained run's resolved config, as pretrain writes it
        d.joinpath("config.yaml").write_text(f"model:\n  name: {model}\n")
    key = floor or "pretrained"
    evals = {key: {"linear": {"top1": linear}, "knn": {"k=20": {"top1": knn}}}}
    d.joinpath("result.json").write_text(
        json.dumps(
            {
                "name": name,
                "objective": objective,
                "attention": attention,
                "seed": seed,
                "axes": {},
                "baseline": floor is not None,
                "floor": floor,
                "eval": evals,
                "train": {},
            }
        )
    )


def test_report_marks_real_differences_and_noise(tmp_path):
    # simclr: sigmoid - softmax = 1, 2, 3 by seed -> mean 2, interval 2 +- 4.30 / sqrt(3): contains 0 (noise)
    # byol:   sigmoid - softmax = 2.0, 2.1, 1.9 -> mean 2, std 0.1: excludes 0 (real)
    for seed, (s, m) in enumerate([(80, 79), (82, 80), (84, 81)]):
        _result(tmp_path, f"simclr-sigmoid-seed{seed}", "simclr", "sigmoid", seed, s, 70)
        _result(tmp_path, f"simclr-softmax-seed{seed}", "simclr", "softmax", seed, m, 70)
    for seed, (s, m) in enumerate([(86.0, 84.0), (86.1, 84.0), (85.9, 84.0)]):
        _result(tmp_path, f"byol-sigmoid-seed{seed}", "byol", "sigmoid", seed, s, 75)
        _result(tmp_path, f"byol-softmax-seed{seed}", "byol", "softmax", seed, m, 75)
    _result(tmp_path, "raw-pixels", "simclr", "sigmoid", 0, 83.0, 84.0, floor="raw pixels")
    _result(tmp_path, "random-init-x-sigmoid", "simclr", "sigmoid", 0, 60.0, 40.0, floor="random init")
    text = write_report(tmp_path).read_text()
    half = T_975_2 * 1.0 / math.sqrt(3)
    assert (
        f"| sigmoid - softmax | simclr | linear top-1 | +2.00 | [{2 - half:+.2f}, {2 + half:+.2f}] | 3 | noise |"
        in text
    )
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert (
        f"| sigmoid - softmax | byol | linear top-1 | +2.00 | [{2 - half:+.2f}, {2 + half:+.2f}] | 3 | **real** |"
        in text
    )
    # cells minus the floor: simclr sigmoid 80, 82, 84 - 83 -> -1 +- 4.97 (noise); byol sigmoid 86 - 83 = +3 (real)
    half = T_975_2 * 2.0 / math.sqrt(3)
    assert (
        f"| sigmoid - raw pixels | simclr | linear top-1 | -1.00 | [{-1 - half:+.2f}, {-1 + half:+.2f}] | 3 | noise |"
        in text
    )
    assert "| sigmoid - raw pixels | byol | linear top-1 | +3.00 |" in text and "**real** |" in text
    assert "| sigmoid - raw pixels | simclr | kNN top-1 | -14.00 | [-14.00, -14.00] | 3 | **real** |" in text
    assert "| simclr | sigmoid | 3 | 82.00 ± 2.00 [" in text  # the cell's own interval
    assert "| raw pixels |  | 1 | 83.00 (n=1) |" in text and "| random init | sigmoid | 1 | 60.00 (n=1) |" in text
    assert (tmp_path / "accuracy_by_objective.png").is_file()


def test_each_backbones_random_init_floor_keeps_its_own_row(tmp_path):
    # two backbones in one grid (/7 for SimCLR, /4 for MAE): two floors, never one averaged row
    _result(tmp_path, "simclr-sigmoid-seed0", "simclr", "sigmoid", 0, 84.0, 83.0)
    _result(tmp_path, "mae-sigmoid-seed0", "mae", "sigmoid", 0, 82.0, 78.0)
    _result(tmp_path, "random-init-p7-sigmoid", "simclr", "sigmoid", 0, 70.0, 23.0, floor="random init")
    _result(tmp_path, "random-init-p4-sigmoid", "mae", "sigmoid", 0, 55.0, 52.0, floor="random init")
    text = write_report(tmp_path).read_text()
    assert "| random init: random-init-p7-sigmoid | sigmoid | 1 | 70.00 (n=1) | 23.00 (n=1) |" in text
    assert "| random init: random-init-p4-sigmoid | sigmoid | 1 | 55.00 (n=1) | 52.00 (n=1) |" in text
    assert "| random init | sigmoid |" not in text


def test_each_cell_is_compared_with_its_own_backbone_at_random_init(tmp_path):
    # simclr on /7 (floor 70) over seeds 0-2, mae on /4 (floor 55) over seed 0 only: the minus-random-init
    # rows pair each cell with its backbone's floor (found from config.yaml and the floor's run name)
    for seed, linear in enumerate([84.0, 85.0, 86.0]):
        _result(tmp_path, f"simclr-sigmoid-seed{seed}", "simclr", "sigmoid", seed, linear, 83.0, model="p7")
    _result(tmp_path, "mae-sigmoid-seed0", "mae", "sigmoid", 0, 82.0, 78.0, model="p4")
    _result(tmp_path, "random-init-p7-sigmoid", "simclr", "sigmoid", 0, 70.0, 23.0, floor="random init")
    _result(tmp_path, "random-init-p4-sigmoid", "mae", "sigmoid", 0, 55.0, 52.0, floor="random init")
    text = write_report(tmp_path).read_text()
    low, high = 15 - T_975_2 / math.sqrt(3), 15 + T_975_2 / math.sqrt(3)  # 84, 85, 86 - 70 = 14, 15, 16
    assert (
        f"| sigmoid - random init | simclr | linear top-1 | +15.00 | [{low:+.2f}, {high:+.2f}] | 3 | **real** |" in text
    )
    assert "| sigmoid - random init | simclr | kNN top-1 | +60.00 | [+60.00, +60.00] | 3 | **real** |" in text
    assert "| sigmoid - random init | mae | linear top-1 | +27.00 | n/a (one seed) | 1 | unknown |" in text
    assert "| sigmoid - random init | mae | kNN top-1 | +26.00 | n/a (one seed) | 1 | unknown |" in text
    assert "Seeds: mae [0]; simclr [0, 1, 2]." in text  # each objective's own seeds


def test_plot_names_each_floor_line_as_its_table_row(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssl_suite.report import _draw_floors, load_results

    _result(tmp_path, "simclr-sigmoid-seed0", "simclr", "sigmoid", 0, 84.0, 83.0)
    _result(tmp_path, "random-init-p7-sigmoid", "simclr", "sigmoid", 0, 70.0, 23.0, floor="random init")
    _result(tmp_path, "random-init-p4-sigmoid", "mae", "sigmoid", 0, 55.0, 52.0, floor="random init")
    _result(tmp_path, "raw-pixels", "", "", 0, 82.0, 85.0, floor="raw pixels")
    fig, ax = plt.subplots()
    values = _draw_floors(ax, load_results(tmp_path), "kNN top-1")
    lines = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()}
    plt.close(fig)
    assert sorted(values) == [23.0, 52.0, 85.0]
    assert lines == {
        "random init: random-init-p4-sigmoid sigmoid": 52.0,
        "random init: random-init-p7-sigmoid sigmoid": 23.0,
        "raw pixels": 85.0,
    }
