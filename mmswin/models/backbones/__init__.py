"""Backbones, one file per family."""
from .shunted import ShuntedTransformer
from .swin import SwinTransformer
from .swin_v2 import SwinTransformerV2

__all__: list = []
__all__ += ['ShuntedTransformer']
__all__ += ['SwinTransformer']
__all__ += ['SwinTransformerV2']
