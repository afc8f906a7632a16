from .attention import ATTENTION_MODES, SigmoidAttention, set_attention
from .vit import MODEL_NAMES, create_sigmoid_vit

__all__ = ["ATTENTION_MODES", "SigmoidAttention", "set_attention", "MODEL_NAMES", "create_sigmoid_vit"]
