"""mmswin: Swin and Shunted Transformer backbones for OpenMMLab detection and segmentation.

The package, room by room (see README, "Architecture"): ``models`` (the backbones; importing it registers them
and does nothing else), ``engine`` (hooks, optimizer wrappers, mixed precision, storage, and ``setup_runtime``),
``datasets`` (data file checks, the labelme converter, the demo data, dataset wrappers; no torch, no mmdet / mmseg),
``apis`` (what the command-line tools share), ``utils`` (safe checkpoint reading).
Importing ``mmswin`` itself loads nothing heavy.
"""
from .version import __version__

__all__ = ['__version__']
