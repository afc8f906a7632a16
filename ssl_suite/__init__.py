"""ssl-suite: self-supervised vision learning with sigmoid-attention ViTs.

Importing the package registers the sigmoid ViT names with timm.
"""

from . import models  # noqa: F401  (registers timm names)

__version__ = "0.1.0"
