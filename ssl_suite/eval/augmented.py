"""Linear probe trained on augmented images on the fly: the full ImageNet protocol, not cached.

MAE's linear probing protocol (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022,
https://arxiv.org/abs/2111.06377, appendix), also MoCo v3's (Chen et al., "An Empirical Study of
Training Self-Supervised Vision Transformers", ICCV 2021, https://arxiv.org/abs/2104.02057).
Cached features see each training image once, un-augmented; MAE's and MoCo v3's probes see a
new random-resized crop + flip every epoch. This path runs the frozen backbone in every step
through lightly's ``LinearClassifier`` (a Lightning module: DDP, precision and logging come
from the Trainer), with MAE's BatchNorm-without-affine in front of the linear layer: cross-entropy,
SGD momentum 0.9, lr = ``linear_lr`` x batch / 256, cosine, no weight decay. Deviation: lightly's
SGD without warm-up, not MAE's LARS at batch 16384 with 10 warm-up epochs.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torchvision.transforms as T
from lightly.utils.benchmarking import LinearClassifier
from omegaconf import DictConfig
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..data import build_dataset, eval_dataset, first
from ..data import num_classes as count_classes
from .features import pool_features


class Pooled(nn.Module):
    """A frozen backbone that returns the probe's pooled features."""

    def __init__(self, backbone: nn.Module, pooling: str) -> None:
        super().__init__()
        self.backbone, self.pooling = backbone.requires_grad_(False), pooling

    def forward(self, images: Tensor) -> Tensor:
        return pool_features(self.backbone, images, self.pooling)


def probe_train_transform(data_cfg: DictConfig) -> T.Compose:
    """MAE's linear-probe augmentation: random resized crop (0.08-1) + horizontal flip."""
    return T.Compose(
        [
            T.RandomResizedCrop(data_cfg.image_size, scale=(0.08, 1.0)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(list(data_cfg.mean), list(data_cfg.std)),
        ]
    )


def augmented_linear_probe(cfg: DictConfig, backbone: nn.Module, name: str) -> dict:
    eval_cfg, data_cfg = cfg.eval, cfg.data
    train = first(
        build_dataset(
            data_cfg.dataset,
            data_cfg.train_split,
            probe_train_transform(data_cfg),
            data_cfg.root,
            data_cfg.download,
            skip_bad=data_cfg.skip_bad_images,
        ),
        eval_cfg.train_subset,
    )
    test = eval_dataset(data_cfg, data_cfg.eval_split)
    num_classes = count_classes(train)
    model = Pooled(backbone, eval_cfg.pooling)
    dim = pool_features(backbone.eval(), test[0][0][None], eval_cfg.pooling).shape[1]
    classifier = LinearClassifier(
        model,
        batch_size_per_device=eval_cfg.linear_batch_size,
        lr=eval_cfg.linear_lr,
        feature_dim=dim,
        num_classes=num_classes,
        topk=(1, min(5, num_classes)),
    )
    classifier.classification_head = nn.Sequential(nn.BatchNorm1d(dim, affine=False), classifier.classification_head)
    loader = dict(batch_size=eval_cfg.linear_batch_size, num_workers=data_cfg.num_workers)
    trainer = pl.Trainer(
        max_epochs=eval_cfg.linear_epochs,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        precision=cfg.trainer.precision,
        enable_checkpointing=False,
        logger=TensorBoardLogger(Path(cfg.output_dir) / "tensorboard", name=f"linear_augmented/{name}"),
    )
    trainer.fit(classifier, DataLoader(train, shuffle=True, drop_last=True, **loader), DataLoader(test, **loader))
    metrics = trainer.validate(classifier, DataLoader(test, **loader), verbose=False)[0]
    top5 = min(5, num_classes)
    return {
        "top1": 100 * metrics["val_top1"],
        "top5": 100 * metrics[f"val_top{top5}"],
        "protocol": f"BN(no affine)+linear trained on augmented images on the fly (random resized crop "
        f"0.08-1 + flip), SGD lr {eval_cfg.linear_lr}*batch/256 cosine, {eval_cfg.linear_epochs} epochs, "
        f"batch {eval_cfg.linear_batch_size}; top5 = top-{top5}",
    }
