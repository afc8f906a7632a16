"""SSL objectives as LightningModules, looked up by the config's ``method.name``."""
from .base import SSLMethod, build_backbone
from .simclr import SimCLR

METHODS = {"simclr": SimCLR}


def build_method(cfg, num_classes: int) -> SSLMethod:
    return METHODS[cfg.method.name](cfg, num_classes)


__all__ = ["METHODS", "SSLMethod", "SimCLR", "build_backbone", "build_method"]
