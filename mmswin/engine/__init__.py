"""Training safeguards for mmswin configs -- atomic checkpoints, non-finite loss handling, data file checks --,
mixed precision and compilation of the model's dense parts (:mod:`~mmswin.engine.precision`, ``Bf16OptimWrapper``,
``CompileHook``), and :func:`setup_runtime`, the one call that changes how torch and mmengine behave in this
process.

Importing this package (the ``custom_imports`` entry of every mmswin config) registers the hooks in mmengine's
``HOOKS`` registry and the skipping optimizer wrappers in ``OPTIM_WRAPPERS``, and calls :func:`setup_runtime`.
It imports mmengine only (no mmdet / mmseg). A config turns the safeguards on with
``configs/_base_/mmswin_runtime.py``, or :func:`enable_safeguards` on a loaded config (what tools/train.py does).
"""
from __future__ import annotations

from .hooks import (AtomicCheckpointHook, CheckpointSaveError, CompileHook, DataCheckHook, NonFiniteLossError,
                    NonFiniteLossHook, enable_compile)
from .optim_wrappers import (Bf16OptimWrapper, SkipNonFiniteAmpOptimWrapper, SkipNonFiniteBf16OptimWrapper,
                             SkipNonFiniteOptimWrapper)
from .precision import (UnsupportedPrecisionError, autocast_dtype, compile_dense_parts, cpu_bf16_instructions,
                        dense_parts, keep_global_context_float32, mixed_precision)
from .runtime import setup_runtime
from .safeguards import enable_safeguards
from .storage import ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_bytes, atomic_write_text

__all__ = ['ATOMIC_BACKEND', 'AtomicCheckpointHook', 'AtomicLocalBackend', 'Bf16OptimWrapper', 'CheckpointSaveError',
           'CompileHook', 'DataCheckHook', 'NonFiniteLossError', 'NonFiniteLossHook', 'SkipNonFiniteAmpOptimWrapper',
           'SkipNonFiniteBf16OptimWrapper', 'SkipNonFiniteOptimWrapper', 'UnsupportedPrecisionError',
           'atomic_write_bytes', 'atomic_write_text', 'autocast_dtype', 'compile_dense_parts',
           'cpu_bf16_instructions', 'dense_parts', 'enable_compile', 'enable_safeguards',
           'keep_global_context_float32', 'mixed_precision',
           'setup_runtime']

setup_runtime()
