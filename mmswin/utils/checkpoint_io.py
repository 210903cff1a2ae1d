"""Checkpoint files under torch >= 2.6 without ever turning ``weights_only`` off.

torch >= 2.6 loads with ``weights_only=True``. mmengine 0.10.7 calls ``torch.load`` without the argument, so the
checkpoints it saves itself (they pickle its ``MessageHub`` state: ``HistoryBuffer`` objects holding numpy arrays)
fail to load with ``UnpicklingError`` -- ``--resume`` breaks. Instead of ``weights_only=False`` (which runs any code a
file carries), :func:`safe_torch_load` allow-lists exactly the classes mmengine's own checkpoints contain, for its
own call only (``torch.serialization.safe_globals``), and turns a refused file into a clear error.

Nothing here changes process-wide state. Routing mmengine's own loader (``Runner`` resume, ``load_checkpoint``)
through :func:`safe_torch_load` is part of :func:`mmswin.engine.setup_runtime`.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

import torch

__all__ = ['CheckpointFileError', 'CheckpointNotFoundError', 'UnsafeCheckpointError', 'safe_torch_load',
           'mmengine_safe_globals']


class CheckpointFileError(ValueError):
    """A checkpoint file is missing, or not a readable torch checkpoint (truncated, another format)."""


class CheckpointNotFoundError(CheckpointFileError, FileNotFoundError):
    """The checkpoint file does not exist."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint file refers to objects outside the allow-list; it was not unpickled."""


def _history_buffer_getattr(owner: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling: resolves only ``HistoryBuffer``'s statistics methods.

    mmengine pickles ``HistoryBuffer._statistics_methods`` (``{'min': HistoryBuffer.min, ...}``) as
    ``getattr(HistoryBuffer, 'min')``. The real ``getattr`` would let a crafted file reach any object's globals and
    run code, so it is never allow-listed; this function refuses everything but those methods.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    attr = vars(HistoryBuffer).get(name) if owner is HistoryBuffer and not name.startswith('_') else None
    if not callable(attr):
        raise pickle.UnpicklingError(f'refused getattr({owner!r}, {name!r}) while loading a checkpoint: only '
                                     'the statistics methods of mmengine\'s HistoryBuffer may be looked up')
    return attr


def mmengine_safe_globals() -> list[Any]:
    """The globals an mmengine Runner checkpoint pickles besides tensors (measured on mmengine 0.10.7)."""
    import argparse

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtype_classes = [type(np.dtype(name)) for name in (
        'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
        'bool')]
    # argparse.Namespace: the official Swin / Shunted / DeiT training scripts save their `args` beside the weights.
    return [argparse.Namespace, HistoryBuffer, multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
            *dtype_classes, (_history_buffer_getattr, 'builtins.getattr')]


# What torch's weights-only unpickler (and _history_buffer_getattr) say when they refuse an object, as opposed to
# failing on bytes that are no pickle at all.
_REFUSAL_MARKERS = ('Unsupported global', 'unsupported GLOBAL', 'unrecognized function', 'Can only create new object',
                    'Can only build', 'refused getattr')


def safe_torch_load(path: str | os.PathLike, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with mmengine's classes allow-listed and clear errors.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist (a ``FileNotFoundError``).
        UnsafeCheckpointError: the file would need objects outside the allow-list (unpickling it could run code);
            nothing from it was executed.
        CheckpointFileError: the file is not a torch checkpoint at all (truncated, or another format).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f'checkpoint file not found: {path!r}')
    try:
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # not a zip checkpoint
            unsafe = []
        if not unsafe and not any(marker in str(err) for marker in _REFUSAL_MARKERS):
            raise CheckpointFileError(f'{path!r} is not a readable torch checkpoint: {err}') from None
        raise UnsafeCheckpointError(
            f'refused to load {path!r}: it refers to {", ".join(unsafe) or "objects"} outside the allow-list of '
            'tensors, containers and mmengine\'s own checkpoint classes, and unpickling it could run arbitrary code. '
            'Nothing from the file was executed. If you trust the file and know what it contains, re-save its '
            'tensors with `torch.save(state_dict, path)` in a trusted environment.') from None
    except Exception as err:  # torch raises RuntimeError, EOFError, IndexError, ... on files of another format
        raise CheckpointFileError(f'{path!r} is not a readable torch checkpoint (truncated or another format): '
                                  f'{err}') from None
