"""SSL objectives as LightningModules, looked up by the config's ``method.name``."""
from .base import SSLMethod, build_backbone
from .simclr import Contrastive, PolyView, SimCLR

METHODS = {"simclr": Contrastive, "polyview": Contrastive}


def build_method(cfg, num_classes: int) -> SSLMethod:
    return METHODS[cfg.method.name](cfg, num_classes)


__all__ = ["METHODS", "Contrastive", "PolyView", "SSLMethod", "SimCLR", "build_backbone", "build_method"]
