"""Image transforms: SSL views (lightly's SimCLR view transform) and the frozen-eval transform."""
from __future__ import annotations

from typing import Sequence

import torchvision.transforms as T
from lightly.transforms import SimCLRViewTransform
from lightly.transforms.multi_view_transform import MultiViewTransform


def normalize_dict(mean: Sequence[float], std: Sequence[float]) -> dict:
    return {"mean": list(mean), "std": list(std)}


def ssl_views(num_views: int, image_size: int, mean, std, *, min_scale: float = 0.08,
              cj_prob: float = 0.8, cj_strength: float = 1.0, random_gray_scale: float = 0.2,
              gaussian_blur: float = 0.5, hf_prob: float = 0.5) -> MultiViewTransform:
    """``num_views`` independently augmented views of one image (SimCLR's recipe, sized to the data).

    Small images (CIFAR, Fashion-MNIST) want weaker colour jitter (0.5) and no blur: lightly's advice.
    """
    view = SimCLRViewTransform(
        input_size=image_size, cj_prob=cj_prob, cj_strength=cj_strength, min_scale=min_scale,
        random_gray_scale=random_gray_scale, gaussian_blur=gaussian_blur, hf_prob=hf_prob,
        normalize=normalize_dict(mean, std))
    return MultiViewTransform([view] * num_views)


def eval_transform(image_size: int, mean, std, resize: bool) -> T.Compose:
    """Deterministic transform for frozen features: resize to size/0.875 and centre-crop
    (ImageNet protocol) when ``resize``, else the image as it is (28-32 px data)."""
    steps = [T.Resize(int(round(image_size / 0.875))), T.CenterCrop(image_size)] if resize else []
    return T.Compose(steps + [T.ToTensor(), T.Normalize(list(mean), list(std))])
