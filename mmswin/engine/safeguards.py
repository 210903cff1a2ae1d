"""``enable_safeguards``: turn mmswin's safeguard hooks on in any loaded mmengine config."""
from __future__ import annotations

from typing import Any

from mmswin.engine.optim_wrappers import SKIP_VARIANTS

__all__ = ['enable_safeguards']


def enable_safeguards(cfg: Any, data_check_level: str | None = None) -> Any:
    """Make a loaded mmengine ``Config`` use the safeguards (idempotent; returns ``cfg``).

    What ``configs/_base_/mmswin_runtime.py`` declares, applied to configs that do not inherit it (a user's own
    mmdet / mmseg config run through ``tools/train.py``):

    * ``custom_imports`` gains ``'mmswin.engine'`` (so worker processes and ``Runner.from_cfg`` see the hooks);
    * ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes ``AtomicCheckpointHook`` (other keys kept);
    * ``custom_hooks`` gains ``NonFiniteLossHook`` and ``DataCheckHook`` unless already listed;
    * with ``NonFiniteLossHook(action='skip')``, ``optim_wrapper.type`` becomes its skipping variant
      (``OptimWrapper`` -> ``SkipNonFiniteOptimWrapper``, ``AmpOptimWrapper`` -> ``SkipNonFiniteAmpOptimWrapper``,
      ``Bf16OptimWrapper`` -> ``SkipNonFiniteBf16OptimWrapper``);
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
    for hook in hooks:
        if hook.get('type') == 'DataCheckHook' and data_check_level is not None:
            hook['level'] = data_check_level
        if hook.get('type') == 'NonFiniteLossHook' and hook.get('action') == 'skip':
            wrapper = cfg.get('optim_wrapper', None)
            if wrapper is not None and wrapper.get('type', 'OptimWrapper') in SKIP_VARIANTS:
                wrapper['type'] = SKIP_VARIANTS[wrapper.get('type', 'OptimWrapper')]
    cfg['custom_hooks'] = hooks
    return cfg
