"""Weighted k-nearest-neighbour classifier on frozen features (DINO's protocol: Caron et al., "Emerging
Properties in Self-Supervised Vision Transformers", ICCV 2021, https://arxiv.org/abs/2104.14294).

Features are L2-normalised; a query's k nearest train features by cosine similarity vote for
their labels with weight exp(sim / T); class scores are the summed votes, and top-1/top-5 come
from ranking them (``linear.topk_accuracy``'s rule: ties count against the true class, so
classes no neighbour voted for are never credited by luck). DINO: k = 20, T = 0.07.
Memory stays at about ``chunk_size x bank_chunk_size`` similarities whatever the data size: queries
are processed in chunks, and the train bank is scanned in chunks with a running top-k merge.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .linear import accuracy_from_ranks, check_features, true_class_rank


def _topk_neighbours(q: Tensor, bank: Tensor, k: int, bank_chunk_size: int) -> tuple[Tensor, Tensor]:
    """Similarities and indices (Q, k), best first, of each query's k nearest bank rows."""
    best_s = q.new_empty(len(q), 0)
    best_i = torch.empty(len(q), 0, dtype=torch.long, device=q.device)
    for start in range(0, len(bank), bank_chunk_size):
        sim = q @ bank[start : start + bank_chunk_size].T
        s, i = sim.topk(min(k, sim.shape[1]), dim=1)
        # Merge this block's candidates with the running best; topk keeps them sorted.
        best_s, pos = torch.cat([best_s, s], 1).topk(min(k, best_s.shape[1] + s.shape[1]), dim=1)
        best_i = torch.cat([best_i, i + start], 1).gather(1, pos)
    return best_s, best_i


def knn_classify(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    k: int | Sequence[int] = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 512,
    bank_chunk_size: int = 131072,
    device: str | torch.device = "cpu",
) -> dict:
    """DINO weighted kNN accuracy. Returns {"top1", "top5", "protocol"} for an int ``k``, or
    {k: {...}} for a sequence of ks (neighbours searched once, for the largest k).

    ``chunk_size`` queries x ``bank_chunk_size`` train rows bounds the similarity block
    (default 512 x 131072 floats = 256 MiB).
    """
    num_classes = check_features(train_x, train_y, test_x, test_y, num_classes)
    if isinstance(k, Sequence):
        single, ks = False, list(k)
    else:
        single, ks = True, [k]
    if not ks or any(not isinstance(kk, int) or isinstance(kk, bool) or kk < 1 for kk in ks):
        raise ValueError(f"k must be a positive int or a non-empty sequence of them, got {k!r}")
    if max(ks) > len(train_x):
        raise ValueError(f"k={max(ks)} exceeds the {len(train_x)} train samples")
    if temperature <= 0 or chunk_size < 1 or bank_chunk_size < 1:
        raise ValueError("need temperature > 0, chunk_size >= 1 and bank_chunk_size >= 1")

    bank = F.normalize(train_x.float().to(device), dim=1)
    bank_y = train_y.long().to(device)
    kmax = max(ks)
    ranks: dict[int, list[Tensor]] = {kk: [] for kk in ks}
    for start in range(0, len(test_x), chunk_size):
        q = F.normalize(test_x[start : start + chunk_size].float().to(device), dim=1)
        y = test_y[start : start + chunk_size].long().to(device)
        sims, idx = _topk_neighbours(q, bank, kmax, bank_chunk_size)
        labels, weights = bank_y[idx], (sims / temperature).exp()
        # Neighbours are sorted best first, so the first kk of the kmax are the kk nearest;
        # scatter_add keeps memory at (queries x classes), no one-hot (queries x k x classes).
        for kk in ks:
            scores = sims.new_zeros(len(q), num_classes).scatter_add_(1, labels[:, :kk], weights[:, :kk])
            ranks[kk].append(true_class_rank(scores, y).cpu())

    results = {
        kk: {
            **accuracy_from_ranks(torch.cat(ranks[kk]), num_classes, (1, 5)),
            "protocol": f"weighted kNN (DINO): L2-normalised, cosine, k={kk}, weights exp(sim/{temperature}); "
            f"top5 = top-{min(5, num_classes)}",
        }
        for kk in ks
    }
    return results[ks[0]] if single else results  # single: ks == [k]
