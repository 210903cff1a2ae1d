"""mmswin: Swin and Shunted Transformer backbones for OpenMMLab detection and segmentation.

Importing this package stays light: models register on ``import mmswin.models``.
"""
from .version import __version__

__all__ = ['__version__']
