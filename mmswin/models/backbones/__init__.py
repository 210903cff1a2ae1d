"""Backbones, one file per family."""
from .shunted import ShuntedTransformer
from .swin import SwinTransformer

__all__: list = []
__all__ += ['ShuntedTransformer']
__all__ += ['SwinTransformer']
