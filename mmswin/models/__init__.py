"""Importing this package registers every mmswin model in the ``mmswin`` registry scope."""
from mmswin.utils.checkpoint_io import install_safe_checkpoint_loading

install_safe_checkpoint_loading()

from .backbones import *  # noqa: E402,F401,F403
