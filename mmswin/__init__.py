"""mmswin: Swin and Shunted Transformer backbones for OpenMMLab detection and segmentation.

Importing this package stays light: models register on ``import mmswin.models``.
"""
import warnings

from .version import __version__

# mmengine 0.10.7 finds `mmdet::` / `mmseg::` config bases through pkg_resources, which warns on every use.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

__all__ = ['__version__']
