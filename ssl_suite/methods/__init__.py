"""SSL objectives as LightningModules, looked up by the config's ``method.name``."""

from omegaconf import DictConfig

from .base import OPTIMIZERS, EMATargetMethod, SSLMethod
from .byol import BYOL
from .ijepa import IJEPA
from .mae import MAE
from .simclr import Contrastive, SimCLR

METHODS = {"simclr": Contrastive, "polyview": Contrastive, "byol": BYOL, "mae": MAE, "ijepa": IJEPA}


def build_method(cfg: DictConfig, num_classes: int) -> SSLMethod:
    return METHODS[cfg.method.name](cfg, num_classes)


__all__ = [
    "OPTIMIZERS",
    "BYOL",
    "EMATargetMethod",
    "IJEPA",
    "MAE",
    "METHODS",
    "Contrastive",
    "SSLMethod",
    "SimCLR",
    "build_method",
]
