"""ECE and Brier by hand, perfect calibration, the reliability diagram."""

import pytest
import torch

from ssl_suite.eval.calibration import brier_score, calibration, expected_calibration_error, reliability_diagram


def tiny():
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.55, 0.45]])
    return probs, torch.tensor([0, 1, 1, 0])


def test_by_hand():
    probs, y = tiny()
    # 5 bins of width 0.2: (0.8,1]: conf .9 acc 1; (0.6,0.8]: conf .7 acc .5 (2 samples); (0.4,0.6]: conf .55 acc 1
    assert expected_calibration_error(probs, y, n_bins=5) == pytest.approx(0.1 * 1 / 4 + 0.2 * 2 / 4 + 0.45 * 1 / 4)
    assert brier_score(probs, y) == pytest.approx((0.02 + 0.98 + 0.18 + 0.405) / 4)
    # one bin: |mean accuracy 3/4 - mean confidence 0.7125|
    assert expected_calibration_error(probs, y, n_bins=1) == pytest.approx(0.75 - 0.7125)


def test_perfectly_calibrated_is_zero():
    rows, labels = [], []
    for conf, k, n, classes in ((0.75, 3, 4, 2), (0.5, 1, 2, 3), (0.95, 19, 20, 2), (1.0, 5, 5, 3)):
        p = [conf] + [(1 - conf) / (classes - 1)] * (classes - 1) + [0.0] * (3 - classes)
        rows += [p] * n
        labels += [0] * k + [1] * (n - k)  # exactly conf x n of them right
    probs, y = torch.tensor(rows, dtype=torch.float64), torch.tensor(labels)
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(0, abs=1e-12)


def test_one_hot_correct():
    y = torch.tensor([2, 0, 1, 1])
    probs = torch.nn.functional.one_hot(y, 3).float()
    assert brier_score(probs, y) == 0 and expected_calibration_error(probs, y) == 0
    assert brier_score(probs, (y + 1) % 3) == 2  # confidently wrong: the maximum


def test_calibration_from_logits():
    g = torch.Generator().manual_seed(0)
    logits, y = 3 * torch.randn(500, 7, generator=g), torch.randint(0, 7, (500,), generator=g)
    res = calibration(logits, y, n_bins=12)
    probs = logits.double().softmax(1)
    assert res["ece"] == pytest.approx(expected_calibration_error(probs, y, 12))
    assert res["brier"] == pytest.approx(brier_score(probs, y))
    assert len(res["bins"]) == 12 and sum(b["count"] for b in res["bins"]) == 500
    assert 0 <= res["ece"] <= 1
    hits = sum(b["accuracy"] * b["count"] for b in res["bins"])
    assert hits == pytest.approx((probs.argmax(1) == y).sum().item())


def test_reliability_diagram_png(tmp_path):
    probs, y = tiny()
    path = reliability_diagram(probs, y, tmp_path / "plots" / "rel.png", n_bins=5, title="tiny")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs():
    probs, y = tiny()
    with pytest.raises(ValueError, match="sum"):
        brier_score(probs * 2, y)
    with pytest.raises(ValueError, match="non-negative"):
        expected_calibration_error(torch.tensor([[1.5, -0.5]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="labels must lie"):
        brier_score(probs, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="need probs"):
        brier_score(probs, y[:3])
    with pytest.raises(ValueError, match="integer"):
        brier_score(probs, y.float())
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(probs, y, n_bins=0)
    with pytest.raises(ValueError, match="logits"):
        calibration(torch.zeros(4), y)
