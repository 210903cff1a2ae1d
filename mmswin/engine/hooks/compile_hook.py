"""``CompileHook``: ``torch.compile`` the dense parts of the model (``tools/train.py --compile``)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from mmswin.engine.precision import compile_dense_parts, dense_parts

__all__ = ['CompileHook', 'enable_compile']


@HOOKS.register_module()
class CompileHook(Hook):
    """Before the run, compile the ``forward`` of the model's dense parts in place, for training: backbone, neck,
    mmseg's decode and auxiliary heads, mmdet's RPN head and a one-stage detector's head (see
    :mod:`mmswin.engine.precision`).

    Losses, box decoding, NMS, the RoI heads of two-stage detectors and the optimizer step stay eager: their shapes
    depend on the data (proposal counts, RoIs per image), and mmengine's own ``compile=True``, which compiles the
    whole ``train_step``, fails on the optimizer step under torch 2.14 (``InternalTorchDynamoError: AttributeError:
    'UserDefinedDictVariable' object has no attribute 'items'`` from ``torch/optim/adam.py``). Validation and
    testing run eagerly, as with mmengine's ``compile=True`` (which compiles ``train_step`` only). State dicts and
    checkpoints are unchanged. The first training step compiles (the first change of input size once more, then the
    graph is shape-generic); with inductor on a CPU that takes minutes the first time, less once torch's on-disk
    kernel cache is warm.

    Args:
        options: keyword arguments of ``torch.compile`` (``backend``, ``mode``, ``dynamic``, ...).
    """

    priority = 'VERY_HIGH'

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f'options must be a dict of torch.compile arguments, got {options!r}')
        self.options = dict(options or {})

    def before_run(self, runner: Any) -> None:
        compiled = compile_dense_parts(runner.model, self.options)
        eager = [name for name, _ in dense_parts(runner.model) if name not in compiled]
        options = f' with {self.options}' if self.options else ''
        print_log(f'torch.compile{options}: {", ".join(compiled) or "nothing new"}'
                  + (f' (already compiled: {", ".join(eager)})' if eager else '')
                  + '; losses, post-processing, RoI heads, the optimizer step and evaluation run eagerly',
                  logger='current')


def enable_compile(cfg: Any) -> Any:
    """Turn a loaded config's compilation into :class:`CompileHook` (idempotent; returns ``cfg``).

    mmengine's ``compile`` key (``True`` or a dict of ``torch.compile`` options) would compile the whole
    ``train_step``, optimizer step included, which fails (see :class:`CompileHook`); its options move to the hook
    and the key becomes ``False``. Called by ``tools/train.py`` for ``--compile`` and for configs that set
    ``compile``.
    """
    setting = cfg.get('compile', None)
    options = dict(setting) if isinstance(setting, Mapping) else {}
    cfg['compile'] = False
    hooks = list(cfg.get('custom_hooks', None) or [])
    existing = [h for h in hooks if h.get('type') == 'CompileHook']
    if existing:
        existing[0]['options'] = {**dict(existing[0].get('options') or {}), **options}
    else:
        hooks.append(dict(type='CompileHook', options=options))
    cfg['custom_hooks'] = hooks
    return cfg
