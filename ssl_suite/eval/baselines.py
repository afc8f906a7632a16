"""The floors every pretrained number stands beside: the same network at random init, and raw
pixels through the same probes.

``RawPixels`` is a "backbone" whose features are the image itself, flattened (after the same
eval transform as the backbone's input, i.e. normalised with the data's mean and std), so each
probe standardises it as it standardises features: BatchNorm in the linear probe, z-scores in
the logistic probe, L2 normalisation in kNN, MSN's row normalisation in few-shot. Large images
can be area-downsampled first (``size``; e.g. 32 for ImageNet, where 150k-dimensional pixels
would not fit a kNN bank): a floor, not a competitor.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class RawPixels(nn.Module):
    pools_itself = True  # eval.features: forward gives the features, no token pooling

    def __init__(self, size: int | None = None) -> None:
        super().__init__()
        self.size = size

    def forward(self, images: Tensor) -> Tensor:
        if self.size is not None and images.shape[-1] > self.size:
            images = F.adaptive_avg_pool2d(images, self.size)
        return images.flatten(1)

    def describe(self) -> str:
        return "raw pixels" + (f" (area-downsampled to {self.size} x {self.size})" if self.size else "")
