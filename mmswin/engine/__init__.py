"""Training safeguards for mmswin configs: atomic checkpoints, a NaN / inf loss stop, data set file checks.

Importing this package registers :class:`AtomicCheckpointHook`, :class:`NonFiniteLossHook` and
:class:`DataCheckHook` in mmengine's ``HOOKS`` registry and the ``'mmswin_atomic_local'`` file backend in
``mmengine.fileio``. It imports mmengine only (no mmdet / mmseg).

A config turns them on with (this is what :func:`enable_safeguards` adds to a loaded config)::

    custom_imports = dict(imports=['mmswin.models', 'mmswin.engine'], allow_failed_imports=False)
    default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))  # merged: interval etc. stay
    custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='DataCheckHook')]
"""
from __future__ import annotations

from typing import Any

from .atomic_io import ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_bytes, atomic_write_text
from .data_checks import DataCheckError, check_sample, check_samples
from .hooks import AtomicCheckpointHook, DataCheckHook, NonFiniteLossError, NonFiniteLossHook, check_dataset

__all__ = ['ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_write_bytes', 'atomic_write_text', 'DataCheckError',
           'check_sample', 'check_samples', 'check_dataset', 'AtomicCheckpointHook', 'DataCheckHook',
           'NonFiniteLossError', 'NonFiniteLossHook', 'enable_safeguards']


def enable_safeguards(cfg: Any, data_check_level: str | None = None) -> Any:
    """Make a loaded mmengine ``Config`` use the safeguards (idempotent; returns ``cfg``).

    * ``custom_imports`` gains ``'mmswin.engine'`` (so worker processes and ``Runner.from_cfg`` see the hooks);
    * ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes ``AtomicCheckpointHook`` (other keys kept);
    * ``custom_hooks`` gains ``NonFiniteLossHook`` and ``DataCheckHook`` unless already listed;
    * ``data_check_level`` sets the ``DataCheckHook`` level when given.
    """
    imports = cfg.get('custom_imports', None) or dict(imports=[], allow_failed_imports=False)
    names = list(imports.get('imports', []))
    if 'mmswin.engine' not in names:
        names.append('mmswin.engine')
    imports['imports'] = names
    cfg['custom_imports'] = imports

    default_hooks = cfg.get('default_hooks', None)
    if default_hooks is not None and default_hooks.get('checkpoint') is not None:
        ckpt = default_hooks['checkpoint']
        if ckpt.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
            ckpt['type'] = 'AtomicCheckpointHook'

    hooks = list(cfg.get('custom_hooks', None) or [])
    types = {h.get('type') for h in hooks}
    if 'NonFiniteLossHook' not in types:
        hooks.append(dict(type='NonFiniteLossHook'))
    if 'DataCheckHook' not in types:
        hooks.append(dict(type='DataCheckHook'))
    if data_check_level is not None:
        for hook in hooks:
            if hook.get('type') == 'DataCheckHook':
                hook['level'] = data_check_level
    cfg['custom_hooks'] = hooks
    return cfg
