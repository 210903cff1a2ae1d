"""Training safeguards for mmswin configs -- atomic checkpoints, non-finite loss handling, data file checks -- and
:func:`setup_runtime`, the one call that changes how torch and mmengine behave in this process.

Importing this package (the ``custom_imports`` entry of every mmswin config) registers the hooks in mmengine's
``HOOKS`` registry and the skipping optimizer wrappers in ``OPTIM_WRAPPERS``, and calls :func:`setup_runtime`.
It imports mmengine only (no mmdet / mmseg). A config turns the safeguards on with
``configs/_base_/mmswin_runtime.py``, or :func:`enable_safeguards` on a loaded config (what tools/train.py does).
"""
from __future__ import annotations

from .hooks import AtomicCheckpointHook, CheckpointSaveError, DataCheckHook, NonFiniteLossError, NonFiniteLossHook
from .optim_wrappers import SkipNonFiniteAmpOptimWrapper, SkipNonFiniteOptimWrapper
from .runtime import setup_runtime
from .safeguards import enable_safeguards
from .storage import ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_bytes, atomic_write_text

__all__ = ['ATOMIC_BACKEND', 'AtomicCheckpointHook', 'AtomicLocalBackend', 'CheckpointSaveError', 'DataCheckHook',
           'NonFiniteLossError', 'NonFiniteLossHook', 'SkipNonFiniteAmpOptimWrapper', 'SkipNonFiniteOptimWrapper',
           'atomic_write_bytes', 'atomic_write_text', 'enable_safeguards', 'setup_runtime']

setup_runtime()
