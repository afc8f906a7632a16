"""Calibration of a probe's predicted probabilities: ECE, Brier score, reliability diagram.

Accuracy says nothing about whether a 90%-confident prediction is right 90% of the time; these
do. ECE (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017,
https://arxiv.org/abs/1706.04599): predictions are binned by confidence (the max probability) into
``n_bins`` equal-width bins ((m-1)/M, m/M] (a confidence of exactly 0 goes to the first), and
ECE = sum over bins of |accuracy - mean confidence| x fraction of samples in the bin
(``n_bins`` = 15 by default, as Guo et al.).
All values are fractions in [0, 1], not percent (unlike the top-k accuracies).
Brier score (Brier 1950, Monthly Weather Review; no arXiv): mean over samples of
sum_k (p_k - 1[y = k])^2, in [0, 2].
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor


def _check(probs: Tensor, labels: Tensor, n_bins: int = 1) -> tuple[Tensor, Tensor]:
    if probs.ndim != 2 or labels.ndim != 1 or len(probs) != len(labels) or len(probs) == 0:
        raise ValueError(
            f"need probs (N, C) and labels (N,) with N > 0, got {tuple(probs.shape)} and {tuple(labels.shape)}"
        )
    if not probs.dtype.is_floating_point or labels.dtype.is_floating_point:
        raise ValueError(f"probs must be floating point and labels integer, got {probs.dtype} and {labels.dtype}")
    p = probs.detach().double().cpu()
    if (
        not torch.isfinite(p).all()
        or (p < 0).any()
        or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-4)
    ):
        raise ValueError("probs must be finite, non-negative, with rows summing to 1 (apply softmax to logits)")
    if labels.min() < 0 or labels.max() >= p.shape[1]:
        raise ValueError(f"labels must lie in [0, {p.shape[1]})")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return p, labels.cpu().long()


def _bins(p: Tensor, y: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin count, accuracy, mean confidence (accuracy and confidence 0 for empty bins)."""
    conf, pred = p.max(1)
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    count = torch.bincount(idx, minlength=n_bins).double()
    correct = torch.bincount(idx, weights=(pred == y).double(), minlength=n_bins)
    conf_sum = torch.bincount(idx, weights=conf, minlength=n_bins)
    denom = count.clamp(min=1)
    return count, correct / denom, conf_sum / denom


def _ece(count: Tensor, acc: Tensor, conf: Tensor) -> float:
    return float(((acc - conf).abs() * count).sum() / count.sum())


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """ECE as a fraction in [0, 1] (equal-width confidence bins)."""
    p, y = _check(probs, labels, n_bins)
    return _ece(*_bins(p, y, n_bins))


def brier_score(probs: Tensor, labels: Tensor) -> float:
    """Mean over samples of sum_k (p_k - 1[y = k])^2, in [0, 2]."""
    p, y = _check(probs, labels)
    return float((p - torch.nn.functional.one_hot(y, p.shape[1]).double()).pow(2).sum(1).mean())


def calibration(logits: Tensor, labels: Tensor, n_bins: int = 15) -> dict:
    """{"ece" (fraction), "brier", "bins": [{"count", "accuracy", "confidence"}, ...]} from (N, C) logits."""
    if logits.ndim != 2 or not logits.dtype.is_floating_point:
        raise ValueError(f"need floating-point logits (N, C), got {logits.dtype} {tuple(logits.shape)}")
    p, y = _check(torch.softmax(logits.detach().double().cpu(), 1), labels, n_bins)
    count, acc, conf = _bins(p, y, n_bins)
    return {
        "ece": _ece(count, acc, conf),
        "brier": brier_score(p, y),
        "bins": [{"count": int(n), "accuracy": float(a), "confidence": float(c)} for n, a, c in zip(count, acc, conf)],
    }


def reliability_diagram(probs: Tensor, labels: Tensor, path: str | Path, n_bins: int = 15, title: str = "") -> Path:
    """Save a PNG: per-bin accuracy bars against the diagonal (perfect calibration), ECE in the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p, y = _check(probs, labels, n_bins)
    count, acc, conf = _bins(p, y, n_bins)
    ece = _ece(count, acc, conf)
    fig = Figure(figsize=(4.5, 4.5))
    FigureCanvasAgg(fig)  # Agg, without touching pyplot's global backend
    ax = fig.add_subplot()
    centres = (torch.arange(n_bins).double() + 0.5) / n_bins
    filled = count > 0
    ax.bar(centres[filled].numpy(), acc[filled].numpy(), width=1 / n_bins, edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence (max probability)",
        ylabel="accuracy",
        title=f"{title + ': ' if title else ''}ECE = {ece:.4f}",
    )
    ax.legend(loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
