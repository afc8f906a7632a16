"""SSL objectives as LightningModules, looked up by the config's ``method.name``."""
from .base import SSLMethod, build_backbone
from .byol import BYOL
from .simclr import Contrastive, PolyView, SimCLR

METHODS = {"simclr": Contrastive, "polyview": Contrastive, "byol": BYOL}


def build_method(cfg, num_classes: int) -> SSLMethod:
    return METHODS[cfg.method.name](cfg, num_classes)


__all__ = ["BYOL", "METHODS", "Contrastive", "PolyView", "SSLMethod", "SimCLR", "build_backbone", "build_method"]
