"""Low-shot logistic regression on frozen features: MSN's protocol (Assran et al., "Masked Siamese Networks
for Label-Efficient Learning", ECCV 2022, https://arxiv.org/abs/2204.07141; facebookresearch/msn
logistic_eval.py), k-shot and p% splits.

MSN: each sample's feature vector (each row) is centred by its own mean and L2-normalised;
multiclass logistic regression *without* intercept, L2 penalty lambda = 0.00025 / n on cyanure's
mean loss, i.e. sklearn's ``C = 1 / (lambda n) = 4000`` on ``sum CE + |W|^2 / 2C``; solved here
by ``logistic.fit_logistic`` (full-batch L-BFGS to convergence). Few-shot numbers swing by
points with the choice of labelled samples, so each setting runs on ``num_splits`` seeded splits,
reported as mean +- std (numpy's default, ddof=0); the splits can be written to JSON and
reloaded so that other runs use exactly the same samples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .linear import check_features, topk_accuracy
from .logistic import affine_logits, fit_logistic

if TYPE_CHECKING:
    from typing import TypedDict

    class _Setting(TypedDict, total=False):  # exactly one of the two: fewshot_splits' keywords
        shots: int
        percent: float


MSN_C = 4000.0  # 1 / (lambda n) with MSN's lambda = 0.00025 / n


def msn_normalize(x: Tensor) -> Tensor:
    """MSN's feature preparation: each row centred by its own mean, then L2-normalised."""
    return F.normalize(x - x.mean(dim=1, keepdim=True), dim=1)


def fewshot_splits(
    train_y: Tensor, shots: int | None = None, percent: float | None = None, num_splits: int = 5, seed: int = 0
) -> list[Tensor]:
    """``num_splits`` sorted LongTensors of train indices: exactly ``shots`` per class, or per class
    ``max(1, round(percent / 100 * n_c))`` of its n_c samples. Split i depends only on (seed, i)."""
    if (shots is None) == (percent is None):
        raise ValueError("give exactly one of shots and percent")
    if shots is not None and shots < 1 or percent is not None and not 0 < percent <= 100 or num_splits < 1:
        raise ValueError(
            f"need shots >= 1 or 0 < percent <= 100, and num_splits >= 1, got {shots}, {percent}, {num_splits}"
        )
    y = np.asarray(train_y.cpu(), dtype=np.int64)
    if y.ndim != 1 or len(y) == 0 or y.min() < 0:
        raise ValueError("train_y must be a non-empty 1-D tensor of non-negative labels")
    classes, counts = np.unique(y, return_counts=True)
    if shots is not None:
        take = np.full(len(classes), shots)
    else:
        assert percent is not None  # exactly one of the two, checked above
        take = np.maximum(1, np.round(percent / 100 * counts)).astype(int)
    if (take > counts).any():
        c = classes[np.argmax(take > counts)]
        raise ValueError(f"class {c} has {counts[classes == c][0]} samples, fewer than the {shots} shots asked")
    members = [np.flatnonzero(y == c) for c in classes]
    splits = []
    for i in range(num_splits):
        rng = np.random.default_rng([seed, i])
        idx = np.concatenate([rng.choice(m, k, replace=False) for m, k in zip(members, take)])
        splits.append(torch.from_numpy(np.sort(idx)))
    return splits


def save_splits(path: str | Path, splits: Sequence[Tensor], meta: dict) -> None:
    """Write ``{"meta": meta, "splits": [[index, ...], ...]}`` as JSON (meta must be JSON-serialisable)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"meta": meta, "splits": [s.tolist() for s in splits]}))


def load_splits(path: str | Path, meta: dict) -> list[Tensor]:
    """Splits saved by ``save_splits``; ValueError if the stored meta differs from ``meta``."""
    data = json.loads(Path(path).read_text())
    want = json.loads(json.dumps(meta))  # compare as stored (tuples become lists, ...)
    if data.get("meta") != want:
        got = data.get("meta") or {}
        diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        raise ValueError(
            f"splits in {path} were made for other settings (differ in {diff}): delete it or change splits_dir"
        )
    return [torch.tensor(s, dtype=torch.long) for s in data["splits"]]


def _label_digest(y: Tensor) -> str:
    """Fingerprint of the train labels, so saved splits are not reused for another data set of the same size."""
    return hashlib.sha1(np.ascontiguousarray(y.cpu().numpy().astype(np.int64)).tobytes()).hexdigest()[:16]


def fewshot_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    shots: Sequence[int] = (1, 2, 5),
    percents: Sequence[float] = (1.0,),
    num_splits: int = 5,
    seed: int = 0,
    C: float = MSN_C,
    num_classes: int | None = None,
    max_iter: int = 1000,
    splits_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Test top-1 (%) of logistic regression fitted on each low-shot split; returns
    {"1-shot": {"mean", "std", "per_split"}, ..., "1%": {...}, "protocol": str}.

    With ``splits_dir`` each setting's splits are saved there on first use (``{k}shot_seed{seed}.json``,
    ``{p}pct_seed{seed}.json``) and loaded afterwards.
    """
    num_classes = check_features(train_x, train_y, test_x, test_y, num_classes)
    settings: list[tuple[str, str, _Setting]] = [(f"{k}-shot", f"{k}shot", {"shots": int(k)}) for k in shots]
    settings += [(f"{p:g}%", f"{p:g}pct", {"percent": float(p)}) for p in percents]
    if not settings:
        raise ValueError("give at least one of shots and percents")
    digest = _label_digest(train_y)
    result: dict = {}
    for key, stem, kw in settings:
        meta = {"num_train": len(train_y), "labels_sha1": digest, **kw, "num_splits": num_splits, "seed": seed}
        path = Path(splits_dir) / f"{stem}_seed{seed}.json" if splits_dir is not None else None
        if path is not None and path.exists():
            splits = load_splits(path, meta)
        else:
            splits = fewshot_splits(train_y, num_splits=num_splits, seed=seed, **kw)
            if path is not None:
                save_splits(path, splits, meta)
        accs = [
            _fit_and_score(train_x[s], train_y[s], test_x, test_y, num_classes, C, max_iter, device) for s in splits
        ]
        result[key] = {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_split": accs}
    result["protocol"] = (
        f"MSN low-shot: rows centred and L2-normalised, multinomial logistic regression without intercept, "
        f"L2 C={C:g} (lambda = 1/(C n){' = MSN 0.00025/n' if C == MSN_C else ''}), L-BFGS max_iter={max_iter}; "
        f"test top-1 mean +- std (ddof=0) over {num_splits} seeded splits (seed {seed}) per setting"
    )
    return result


def _fit_and_score(
    x: Tensor,
    y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    C: float,
    max_iter: int,
    device: str | torch.device,
) -> float:
    """MSN: normalise rows, fit without intercept, and return test top-1 (%)."""
    x = x.to(device, torch.float32)
    w, b = fit_logistic(msn_normalize(x), y, num_classes, C=C, max_iter=max_iter, device=device, fit_intercept=False)
    logits = affine_logits(test_x, w, b, prepare=msn_normalize)
    return topk_accuracy(logits, test_y.long().cpu(), (1,))["top1"]
