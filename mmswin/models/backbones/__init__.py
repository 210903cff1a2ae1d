"""Backbones, one file per family."""
from .swin import SwinTransformer

__all__: list = []
__all__ += ['SwinTransformer']
