"""Linear probe on frozen (cached) features, MAE protocol, and the shared top-k metric.

MAE's linear probing (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022,
https://arxiv.org/abs/2111.06377, appendix), on cached un-augmented features (MAE augments: ``eval.augmented``).

Head: ``BatchNorm1d(affine=False) + Linear`` (MAE's linear probe: the parameter-free BN
standardises each feature, whose scales differ wildly between backbones, so one lr fits all). Cross-entropy,
mini-batches of ``batch_size`` reshuffled each epoch (last partial batch dropped, as in MAE),
lr = ``lr * batch_size / 256`` (linear scaling rule), linear warm-up then half-cosine to 0,
defined in epochs so it survives a batch-size change. Deterministic given ``seed``.
Defaults (90 epochs, warm-up epochs // 9 = 10, batch 1024, base lr 0.1, SGD momentum 0.9,
no weight decay) follow MAE's probe except the batch (MAE: 16384 with LARS); 1024 keeps ~60 steps/epoch on
60k samples, which trains a 384-d probe in seconds on 2 CPU cores. At MAE's own batch
(``optimizer="lars"``, 16384, lr 0.1 x 16384 / 256 = 6.4) the step size rests on LARS's trust ratio.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


def true_class_rank(scores: Tensor, labels: Tensor) -> Tensor:
    """Per-sample rank (0 = best) of the true class; ties count against it (pessimistic)."""
    true = scores.gather(1, labels[:, None])
    return (scores > true).sum(1) + (scores == true).sum(1) - 1


def accuracy_from_ranks(ranks: Tensor, num_classes: int, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """{"top{k}": percent of ranks < min(k, num_classes)}: top-5 of a 3-class task is top-3."""
    if any(int(k) < 1 for k in ks):
        raise ValueError(f"ks must be positive, got {tuple(ks)}")
    return {f"top{k}": 100.0 * (ranks < min(int(k), num_classes)).double().mean().item() for k in ks}


def topk_accuracy(scores: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy in percent from (N, C) logits or class scores and (N,) int labels."""
    if scores.ndim != 2 or labels.ndim != 1 or len(scores) != len(labels):
        raise ValueError(f"need scores (N, C) and labels (N,), got {tuple(scores.shape)} and {tuple(labels.shape)}")
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must be non-empty and in [0, {scores.shape[1]})")
    return accuracy_from_ranks(true_class_rank(scores, labels.long()), scores.shape[1], ks)


def check_split(x: Tensor, y: Tensor, prefix: str = "") -> None:
    """x (N, D) floating point and y (N,) integer, N > 0; ``prefix`` names the split in the error."""
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{prefix}need x (N, D) and y (N,) with N > 0, got {tuple(x.shape)} and {tuple(y.shape)}")
    if not x.dtype.is_floating_point or y.dtype.is_floating_point:
        raise ValueError(f"{prefix}x must be floating point and y integer, got {x.dtype} and {y.dtype}")


def check_features(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, num_classes: int | None) -> int:
    """Validate a train/test feature split; return the number of classes."""
    check_split(train_x, train_y, "train: ")
    check_split(test_x, test_y, "test: ")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"feature dims differ: train {train_x.shape[1]} vs test {test_x.shape[1]}")
    top = int(max(train_y.max(), test_y.max())) + 1
    num_classes = top if num_classes is None else num_classes
    if min(train_y.min(), test_y.min()) < 0 or top > num_classes:
        raise ValueError(f"labels must lie in [0, num_classes={num_classes})")
    return num_classes


PROBE_OPTIMIZERS = ("sgd", "lars")


def probe_optimizer(
    linear: nn.Linear, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """SGD or MAE's LARS for the probe's linear layer; the bias gets no weight decay (MAE)."""
    groups = [{"params": [linear.weight], "weight_decay": weight_decay}, {"params": [linear.bias], "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    # MAE's probe optimizer (facebookresearch/mae util/lars.py): the trust ratio scales the weight's
    # update whatever the weight decay. timm's Lars does that with always_adapt; lightly's LARS
    # skips the ratio when the weight decay is 0, which MAE's probe (wd 0, lr 6.4) depends on.
    from timm.optim import Lars

    groups[0]["always_adapt"] = True
    return Lars(groups, lr=lr, momentum=momentum, trust_coeff=0.001)


def _check_schedule(optimizer: str, epochs: int, batch_size: int, lr: float, warmup_epochs: int | None) -> int:
    """Validate the probe's optimizer and schedule; return the warm-up epochs (default: MAE's 10 of 90)."""
    if optimizer not in PROBE_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(PROBE_OPTIMIZERS)}, got {optimizer!r}")
    warmup_epochs = epochs // 9 if warmup_epochs is None else warmup_epochs  # MAE: 10 of 90
    if epochs < 1 or batch_size < 1 or not 0 <= warmup_epochs <= epochs or lr <= 0:
        raise ValueError("need epochs >= 1, batch_size >= 1, 0 <= warmup_epochs <= epochs, lr > 0")
    return warmup_epochs


def _probe_head(
    dim: int, num_classes: int, gen: torch.Generator, device: str | torch.device
) -> tuple[nn.Sequential, nn.Linear]:
    """MAE's probe head ``BN(no affine) + Linear`` on ``device``, and its linear layer (for the optimizer)."""
    linear = nn.Linear(dim, num_classes)
    nn.init.trunc_normal_(linear.weight, std=0.01, generator=gen)  # MAE's head init
    nn.init.zeros_(linear.bias)
    head = nn.Sequential(nn.BatchNorm1d(dim, affine=False), linear).to(device)
    return head, linear


@contextmanager
def single_threaded(enabled: bool) -> Iterator[None]:
    """Run the block with one intra-op thread when ``enabled`` (small per-op work on CPU), restoring
    the thread count afterwards whatever happens."""
    threads = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int | None = None,
    epochs: int = 90,
    batch_size: int = 1024,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    optimizer: str = "sgd",
    warmup_epochs: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    return_logits: bool = False,
) -> dict:
    """Train BN(no affine)+Linear on train features, report top-1/top-5 (%) on test features.

    ``lr`` is the base lr per 256 samples. ``optimizer="lars"`` is MAE's probe optimizer
    (facebookresearch/mae util/lars.py): the trust ratio 0.001 |w| / |g + wd w| scales the weight
    matrix's update whatever the weight decay; the bias gets neither decay nor the ratio.
    Returns {"top1", "top5", "protocol"} (+ "logits", the test logits, with ``return_logits``).
    """
    num_classes = check_features(train_x, train_y, test_x, test_y, num_classes)
    warmup_epochs = _check_schedule(optimizer, epochs, batch_size, lr, warmup_epochs)
    gen = torch.Generator().manual_seed(seed)
    n, dim = train_x.shape
    batch = min(batch_size, n)
    peak_lr = lr * batch / 256

    head, linear = _probe_head(dim, num_classes, gen, device)
    opt = probe_optimizer(linear, optimizer, peak_lr, momentum, weight_decay)

    # Per-step tensors are tiny (batch x dim): intra-op threads cost more in sync than they
    # save, catastrophically so on a busy machine (measured 1.7 ms vs 130 ms per step).
    with single_threaded(torch.device(device).type == "cpu"):
        logits = _train_and_predict(
            head, opt, train_x, train_y, test_x, device, epochs, warmup_epochs, batch, peak_lr, gen, progress
        )
    result: dict = dict(topk_accuracy(logits, test_y.long().cpu(), (1, 5)))
    result["protocol"] = (
        f"BN(no affine)+linear on frozen features, {optimizer.upper()} momentum={momentum} "
        f"wd={weight_decay}, lr={lr}*{batch}/256={peak_lr:g}, {warmup_epochs} warm-up epochs + cosine, "
        f"{epochs} epochs, batch {batch}, seed {seed}; top5 = top-{min(5, num_classes)}"
    )
    if return_logits:
        result["logits"] = logits
    return result


def _train_and_predict(
    head: nn.Module,
    opt: torch.optim.Optimizer,
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    device: str | torch.device,
    epochs: int,
    warmup_epochs: int,
    batch: int,
    peak_lr: float,
    gen: torch.Generator,
    progress: bool,
) -> Tensor:
    """Mini-batch training with per-step warm-up + cosine lr; returns test logits on CPU."""
    n = len(train_x)
    steps_per_epoch, total = n // batch, epochs * (n // batch)
    x, y = train_x.float().to(device), train_y.long().to(device)
    xs, ys = torch.empty_like(x[: steps_per_epoch * batch]), torch.empty_like(y[: steps_per_epoch * batch])
    head.train()  # BN uses batch statistics (no backward through it: features need no grad)
    for step in tqdm(range(total), desc="linear probe", disable=not progress, mininterval=1.0):
        if step % steps_per_epoch == 0:  # one shuffled copy per epoch into a reused buffer:
            order = torch.randperm(n, generator=gen)[: len(xs)].to(device)  # steps then slice views
            torch.index_select(x, 0, order, out=xs)
            torch.index_select(y, 0, order, out=ys)
        epoch = step / steps_per_epoch  # fractional, so warm-up and cosine are smooth per step
        if epoch < warmup_epochs:
            cur = peak_lr * epoch / warmup_epochs
        else:
            cur = peak_lr * 0.5 * (1 + math.cos(math.pi * (epoch - warmup_epochs) / max(epochs - warmup_epochs, 1e-8)))
        for g in opt.param_groups:
            g["lr"] = cur
        i = (step % steps_per_epoch) * batch
        loss = nn.functional.cross_entropy(head(xs[i : i + batch]), ys[i : i + batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    head.eval()
    with torch.inference_mode():
        return torch.cat([head(c.float().to(device)).cpu() for c in test_x.split(65536)])
