"""Importing this package registers every mmswin model in the ``mmswin`` registry scope, and does nothing else."""
from .backbones import *  # noqa: F401,F403
