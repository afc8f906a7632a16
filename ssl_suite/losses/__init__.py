"""Losses lightly lacks: the poly-view contrastive objectives (``polyview``, https://arxiv.org/abs/2403.05490)."""

from .polyview import OBJECTIVES, PolyViewLoss

__all__ = ["OBJECTIVES", "PolyViewLoss"]
