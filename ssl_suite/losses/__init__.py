"""Losses lightly lacks."""

from .polyview import OBJECTIVES, PolyViewLoss, split_views

__all__ = ["OBJECTIVES", "PolyViewLoss", "split_views"]
