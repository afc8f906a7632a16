"""Group accuracies for spurious-correlation sets (Waterbirds style, groups (y, a)).

Worst-group accuracy as in Group DRO (Sagawa et al., "Distributionally Robust Neural Networks for Group
Shifts: On the Importance of Regularization for Worst-Case Generalization", ICLR 2020,
https://arxiv.org/abs/1911.08731): min over groups g = (y, a) of the accuracy on g.
Plain accuracy hides a shortcut: a model that reads the background scores well on the common
groups and badly on the rare ones. Worst-group accuracy and the gap between the attribute values
of one class show it; the train-weighted average is the number Waterbirds papers report as
"average accuracy" (the test groups are balanced there, train ones are not). The subgroup gap is
this suite's own summary, not from the paper.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _vector(name: str, values: torch.Tensor | ArrayLike) -> np.ndarray:
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one class index per item), got shape {tuple(arr.shape)}"
            + ("; pass logits.argmax(1)" if name == "pred" and arr.ndim == 2 else "")
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def group_counts(labels: torch.Tensor | ArrayLike, attrs: torch.Tensor | ArrayLike) -> dict[tuple[int, int], int]:
    """{(y, a): number of items}: the train counts that ``group_metrics`` weights by."""
    y, a = _vector("labels", labels), _vector("attrs", attrs)
    if len(y) != len(a):
        raise ValueError(f"labels ({len(y)}) and attrs ({len(a)}) differ in length")
    if not len(y):
        return {}
    pairs, n = np.unique(np.stack([y, a], 1), axis=0, return_counts=True)
    return {(int(p[0]), int(p[1])): int(c) for p, c in zip(pairs, n)}


def group_metrics(
    pred: torch.Tensor | ArrayLike,
    labels: torch.Tensor | ArrayLike,
    attrs: torch.Tensor | ArrayLike,
    train_group_counts: Mapping[tuple[int, int], int] | None = None,
) -> dict:
    """Accuracies in percent: ``per_group`` {"y=Y,a=A": acc} for each group in the data,
    ``average`` (accuracies of the groups in the data weighted by their train counts; by test counts, i.e. plain
    accuracy, when none are given), ``worst_group`` (lowest group accuracy) and
    ``mean_subgroup_gap`` (mean over classes of max - min accuracy across that class's attribute
    values, |acc(y, 0) - acc(y, 1)| for a binary attribute; classes seen with one attribute value
    only are left out, NaN if that is all of them)."""
    pred, y, a = _vector("pred", pred), _vector("labels", labels), _vector("attrs", attrs)
    if not len(pred) == len(y) == len(a):
        raise ValueError(f"pred ({len(pred)}), labels ({len(y)}) and attrs ({len(a)}) differ in length")
    if not len(y):
        raise ValueError("group_metrics needs at least one item")
    correct = pred == y
    acc = {(gy, ga): 100.0 * float(correct[(y == gy) & (a == ga)].mean()) for gy, ga in sorted(group_counts(y, a))}
    if train_group_counts is None:
        average = 100.0 * float(correct.mean())
    else:
        weights = {g: float(train_group_counts.get(g, 0)) for g in acc}  # absent: none in train
        if sum(weights.values()) <= 0:
            raise ValueError("train_group_counts gives no weight to any group in the data")
        average = sum(weights[g] * acc[g] for g in acc) / sum(weights.values())
    gaps = []
    for cls in sorted({gy for gy, _ in acc}):
        values = [v for (gy, _), v in acc.items() if gy == cls]
        if len(values) > 1:
            gaps.append(max(values) - min(values))
    return {
        "per_group": {f"y={gy},a={ga}": v for (gy, ga), v in acc.items()},
        "average": average,
        "worst_group": min(acc.values()),
        "mean_subgroup_gap": sum(gaps) / len(gaps) if gaps else math.nan,
    }
