"""Poly-view contrastive objectives (Shidani et al., "Poly-View Contrastive Learning", ICLR 2024,
https://arxiv.org/abs/2403.05490).

K samples x M views, embeddings z L2-normalised, s(a, b) = z_a . z_b / tau (``temperature``, default 0.1).
For anchor view a of sample i and positive view b of the same sample:

    l_iab = s(ia, ib) - log[ e^{s(ia, ib)} + sum_{j != i} sum_{g=1..M} e^{s(ia, jg)} ]

(the other views of sample i are not negatives).

    geometric   L = -(1/KM) sum_i sum_a (1/(M-1)) sum_{b != a} l_iab
    arithmetic  L = -(1/KM) sum_i sum_a log[ (1/(M-1)) sum_{b != a} exp(l_iab) ]
    multicrop   L = mean over ordered view pairs (a, b), a != b, of SimCLR's NT-Xent term with
                anchors from view a, positives from view b and negatives from views a and b
                of the other samples (2K - 2 per anchor)

At M = 2 all three equal SimCLR's NT-Xent. With ``gather_distributed`` negatives come from
every rank (gathered with gradient); each rank's loss is the mean over its own anchors, so DDP's
gradient average equals the single-process gradient at the same global batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from lightly.utils import dist
from torch import Tensor, nn

OBJECTIVES = ("geometric", "arithmetic", "multicrop")


class PolyViewLoss(nn.Module):
    def __init__(
        self, objective: str = "geometric", temperature: float = 0.1, gather_distributed: bool = False
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.objective, self.temperature, self.gather_distributed = objective, temperature, gather_distributed

    def forward(self, views: Sequence[Tensor] | Tensor) -> Tensor:
        """``views``: M tensors (K, D), or one tensor (K, M, D)."""
        z = as_samples_by_views(views)
        z = F.normalize(z, dim=-1)
        K, M, _ = z.shape
        candidates, offset = z, 0
        if self.gather_distributed and dist.world_size() > 1:
            candidates = torch.cat(dist.gather(z), 0)
            offset = dist.rank() * K
        # s[i, a, j, g] = z_ia . z_jg / tau: local anchors against all (global) samples.
        s = torch.einsum("iad,jgd->iajg", z, candidates) / self.temperature
        same = torch.arange(K, device=z.device)[:, None] + offset == torch.arange(len(candidates), device=z.device)
        same = same[:, None, :, None]  # (K, 1, Kg, 1): candidates from the anchor's own sample
        pos = s[torch.arange(K), :, torch.arange(K) + offset, :]  # (K, M, M): s(ia, ib)
        off_diag = ~torch.eye(M, dtype=torch.bool, device=z.device)
        if self.objective == "multicrop":
            # Negatives of pair (a, b): other samples' views a and b.
            neg_views = s.masked_fill(same, -math.inf)  # (K, M, Kg, M)
            neg_a = torch.logsumexp(torch.diagonal(neg_views, dim1=1, dim2=3), dim=1)  # (K, M): views g = a
            neg_ab = torch.logsumexp(neg_views, dim=2)  # (K, M, M): [i, a, g], other samples' view g
            neg = torch.logaddexp(neg_a[:, :, None], neg_ab)  # only a != b is used
            l_iab = pos - torch.logaddexp(pos, neg)
            return -(l_iab[:, off_diag]).mean()
        neg = torch.logsumexp(s.masked_fill(same, -math.inf).flatten(2), dim=2)  # (K, M)
        l_iab = pos - torch.logaddexp(pos, neg[:, :, None])  # (K, M, M)
        l_iab = l_iab[:, off_diag].view(K, M, M - 1)
        if self.objective == "geometric":
            return -l_iab.mean()
        return -(torch.logsumexp(l_iab, dim=2) - math.log(M - 1)).mean()


def as_samples_by_views(views: Sequence[Tensor] | Tensor) -> Tensor:
    """(K, M, D) from M tensors (K, D) or a (K, M, D) tensor, with clear errors."""
    if isinstance(views, Tensor):
        if views.dim() != 3:
            raise ValueError(f"expected embeddings shaped (K samples, M views, D), got {tuple(views.shape)}")
        z = views
    else:
        shapes = {tuple(v.shape) for v in views}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"expected M view tensors of one shape (K, D), got shapes {sorted(shapes)}")
        z = torch.stack(list(views), dim=1)
    if z.shape[1] < 2:
        raise ValueError(f"poly-view objectives need M >= 2 views per sample, got M = {z.shape[1]}")
    return z
