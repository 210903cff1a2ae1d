"""Mixed precision for the tools: ``--amp`` of ``tools/train.py`` and the demo's ``--precision``.

The mechanics live in :mod:`mmswin.engine.precision` (which parts run in bfloat16, capability checks) and
:class:`mmswin.engine.Bf16OptimWrapper`; this module turns a loaded config into a mixed precision one.
"""
from __future__ import annotations

import sys
from typing import Any

from mmswin.apis.errors import ConfigError

__all__ = ['PRECISIONS', 'apply_precision', 'enable_amp', 'inference_dtype', 'training_device_type']

PRECISIONS = ('auto', 'bf16', 'fp32')

# optim_wrapper.type -> its mixed precision variant, on CUDA (mmengine's AmpOptimWrapper) and on the CPU
_CUDA_AMP = {'OptimWrapper': 'AmpOptimWrapper', 'SkipNonFiniteOptimWrapper': 'SkipNonFiniteAmpOptimWrapper'}
_CPU_BF16 = {'OptimWrapper': 'Bf16OptimWrapper', 'SkipNonFiniteOptimWrapper': 'SkipNonFiniteBf16OptimWrapper',
             'AmpOptimWrapper': 'Bf16OptimWrapper', 'SkipNonFiniteAmpOptimWrapper': 'SkipNonFiniteBf16OptimWrapper'}


def training_device_type() -> str:
    """Where mmengine's Runner trains: ``'cuda'`` when a GPU is visible, else ``'cpu'``."""
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def enable_amp(cfg: Any, option: str = '--amp') -> str:
    """Make a loaded config train in mixed precision; returns what it will run (for the log).

    * CUDA: mmengine's ``AmpOptimWrapper``, bfloat16 where the GPU supports it (Ampere and newer: no loss scaling),
      else float16 with dynamic loss scaling -- autocast over the whole training step (``enable_safeguards`` makes
      it mmswin's ``SkipNonFiniteAmpOptimWrapper``, which keeps global pooling branches in float32).
    * CPU with native bfloat16 (AMX-BF16, AVX512-BF16, ARM BF16): ``Bf16OptimWrapper`` -- the backbone, neck and
      dense heads in bfloat16 autocast, the rest in float32, no loss scaling (``AmpOptimWrapper`` refuses the CPU).

    Raises:
        UnsupportedPrecisionError: a CPU without native bfloat16 (``option`` names what asked for it).
        ConfigError: an ``optim_wrapper.type`` with no mixed precision variant.
    """
    import torch

    from mmswin.engine.precision import autocast_dtype, describe_precision
    device_type = training_device_type()
    dtype = autocast_dtype(device_type, option)  # raises on a CPU without bfloat16
    wrapper = cfg.optim_wrapper
    optim_type = wrapper.get('type', 'OptimWrapper')
    if device_type == 'cuda':
        if optim_type in _CUDA_AMP.values():
            print('AMP training is already enabled in the config.', file=sys.stderr)
            return f'mixed precision: as the config says ({optim_type})'
        if optim_type not in _CUDA_AMP:
            raise ConfigError(f'{option} supports optim_wrapper.type {", ".join(_CUDA_AMP)}, the config has '
                              f'{optim_type!r}')
        wrapper['type'] = _CUDA_AMP[optim_type]
        if dtype is torch.bfloat16:  # Ampere and newer: no overflow, no loss scaling needed
            wrapper.setdefault('dtype', 'bfloat16')
        else:
            wrapper.setdefault('loss_scale', 'dynamic')
        return f'mixed precision: {describe_precision(device_type, dtype)} over the whole training step ' \
               f'({wrapper["type"]})'
    if optim_type in ('Bf16OptimWrapper', 'SkipNonFiniteBf16OptimWrapper'):
        return f'mixed precision: as the config says ({optim_type})'
    if optim_type not in _CPU_BF16:
        raise ConfigError(f'{option} supports optim_wrapper.type {", ".join(_CPU_BF16)}, the config has '
                          f'{optim_type!r}')
    for key in ('dtype', 'loss_scale', 'use_fsdp'):  # AmpOptimWrapper's arguments: bfloat16 needs no loss scale
        wrapper.pop(key, None)
    wrapper['type'] = _CPU_BF16[optim_type]
    return f'mixed precision: {describe_precision(device_type, dtype)} for the backbone, neck and dense heads ' \
           f'({wrapper["type"]})'


def apply_precision(cfg: Any, precision: str, option: str = '--precision') -> str:
    """The demo's ``--precision``: ``'fp32'`` leaves the config as it is; ``'bf16'`` trains in bfloat16 mixed
    precision (:func:`enable_amp`); ``'auto'`` does so where the machine runs bfloat16 natively (a CPU with AMX-BF16 /
    AVX512-BF16 / ARM BF16, a GPU with bfloat16), else float32. Returns one line saying what it chose and why.

    Raises:
        UnsupportedPrecisionError: ``'bf16'`` on a machine without native bfloat16.
        ValueError: another ``precision``.
    """
    import torch

    from mmswin.engine.precision import UnsupportedPrecisionError, autocast_dtype
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if precision == 'fp32':
        return f'precision: float32 ({option} fp32)'
    device_type = training_device_type()
    try:
        dtype = autocast_dtype(device_type, f'{option} bf16')
        if dtype is not torch.bfloat16:
            raise UnsupportedPrecisionError(f'{option} bf16: this GPU does not support bfloat16; use {option} fp32')
    except UnsupportedPrecisionError:
        if precision == 'bf16':
            raise
        why = 'this GPU has no bfloat16' if device_type == 'cuda' else 'this CPU has no native bfloat16 instructions'
        return f'precision: float32 ({why}; {option} auto)'
    return f'{enable_amp(cfg, f"{option} bf16")}; {option} fp32 trains in float32'


def inference_dtype(device: str, option: str = '--amp') -> Any:
    """The autocast dtype of ``--amp`` inference on ``device`` (``'cpu'``, ``'cuda'``, ``'cuda:1'``): bfloat16 on
    CPUs with native bfloat16 and on GPUs that support it, float16 on older GPUs.

    Raises:
        UnsupportedPrecisionError: a CPU without native bfloat16.
    """
    from mmswin.engine.precision import autocast_dtype
    return autocast_dtype(device.split(':')[0], option)
