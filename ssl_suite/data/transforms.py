"""Image transforms: SSL views (lightly's SimCLR view transform) and the frozen-eval transform."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torchvision.transforms as T
from lightly.transforms import SimCLRViewTransform
from lightly.transforms.multi_view_transform import MultiViewTransform


def normalize_dict(mean: Sequence[float], std: Sequence[float]) -> dict[str, list[float]]:
    return {"mean": list(mean), "std": list(std)}


@dataclass
class ViewRecipe:
    """SimCLR's view recipe with lightly's defaults; the config's ``data.augment`` section.
    Small images (CIFAR, Fashion-MNIST) want weaker colour jitter (0.5) and no blur: lightly's advice."""

    min_scale: float = 0.08
    cj_prob: float = 0.8
    cj_strength: float = 1.0
    random_gray_scale: float = 0.2
    gaussian_blur: float = 0.5
    hf_prob: float = 0.5


def ssl_views(
    num_views: int, image_size: int, mean: Sequence[float], std: Sequence[float], recipe: ViewRecipe
) -> MultiViewTransform:
    """``num_views`` independently augmented views of one image (lightly's SimCLR view transform)."""
    # The recipe's fields are SimCLRViewTransform's keywords of the same names.
    view = SimCLRViewTransform(input_size=image_size, normalize=normalize_dict(mean, std), **asdict(recipe))
    return MultiViewTransform([view] * num_views)


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float], resize: bool) -> T.Compose:
    """Deterministic transform for frozen features: resize to size/0.875 and centre-crop
    (ImageNet protocol) when ``resize``, else the image as it is (28-32 px data)."""
    steps = [T.Resize(int(round(image_size / 0.875))), T.CenterCrop(image_size)] if resize else []
    return T.Compose(steps + [T.ToTensor(), T.Normalize(list(mean), list(std))])


class DeviceViews(torch.nn.Module):
    """The same view recipe on whole batches on the accelerator (kornia), instead of per image on
    CPU workers: input (B, C, H, W) uint8 (a quarter of the bytes to move) or floats in [0, 1],
    output M normalised views (B, C, size, size). Solarize (BYOL's second view) is off by
    default, as in SimCLR."""

    def __init__(
        self,
        num_views: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        recipe: ViewRecipe,
        solarize_prob: float = 0.0,
    ) -> None:
        super().__init__()
        import kornia.augmentation as K

        r, s = recipe, recipe.cj_strength
        steps = [
            K.RandomResizedCrop((image_size, image_size), scale=(r.min_scale, 1.0)),
            K.RandomHorizontalFlip(p=r.hf_prob),
            K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=r.cj_prob),
            K.RandomGrayscale(p=r.random_gray_scale),
        ]
        if r.gaussian_blur > 0:  # kernel ~10% of the image, odd, sigma as lightly's (0.1, 2)
            steps.append(K.RandomGaussianBlur(int(0.1 * image_size) // 2 * 2 + 1, (0.1, 2.0), p=r.gaussian_blur))
        if solarize_prob > 0:
            steps.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=solarize_prob))
        steps.append(K.Normalize(mean=torch.tensor(list(mean)), std=torch.tensor(list(std))))
        self.view = torch.nn.Sequential(*steps)
        self.num_views = num_views

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return [self.view(images) for _ in range(self.num_views)]


def tensor_transform(image_size: int, resize: bool) -> T.Compose:
    """What the CPU still does when views are made on the device: decode to a fixed-size uint8
    tensor (ImageNet-size images: resize + centre crop to size/0.875 so batches stack); the
    device converts to floats (``DeviceViews``)."""
    side = int(round(image_size / 0.875))
    return T.Compose(([T.Resize(side), T.CenterCrop(side)] if resize else []) + [T.PILToTensor()])
