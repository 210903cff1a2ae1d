"""Strict, explained loading of pretrained weights into mmswin backbones.

The flow every backbone follows (see ``SwinTransformer.init_weights``):

1. :func:`read_state_dict` -- a path (safe ``torch.load``) or a dict, unwrapped from ``state_dict`` / ``model`` /
   ``module``, with a detector / segmentor ``backbone.`` prefix stripped when present.
2. a family-specific, pure conversion function ``state_dict -> state_dict`` into mmswin's layout.
3. :func:`load_state_dict_strict` -- every backbone key not filled and every checkpoint key left unused is
   reported by name in one :class:`CheckpointMismatchError`, except the keys a layout is documented not to carry.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

import torch
from mmengine.logging import print_log
from torch import nn

from mmswin.utils.checkpoint_io import safe_torch_load

__all__ = ['CheckpointMismatchError', 'read_state_dict', 'strip_prefix', 'load_state_dict_strict']

_WRAPPER_KEYS = ('state_dict', 'model', 'module', 'state_dict_ema', 'model_ema')


class CheckpointMismatchError(RuntimeError):
    """The checkpoint does not fit the model: names every missing, unexpected and mis-shaped key."""


def read_state_dict(checkpoint: str | os.PathLike | Mapping, prefix: str = 'backbone.') -> dict[str, torch.Tensor]:
    """Read a checkpoint into a flat ``{name: tensor}`` dict.

    Args:
        checkpoint: a file path or an already loaded object.
        prefix: stripped when any key carries it (detector / segmentor checkpoints); other keys are then dropped,
            since they belong to the neck and heads.

    Raises:
        FileNotFoundError / UnsafeCheckpointError / ValueError: see :func:`safe_torch_load`.
        ValueError: the object holds no tensors (not a checkpoint).
    """
    source = checkpoint if isinstance(checkpoint, Mapping) else safe_torch_load(checkpoint)
    name = 'the given dict' if isinstance(checkpoint, Mapping) else repr(os.fspath(checkpoint))
    for key in _WRAPPER_KEYS:
        if isinstance(source, Mapping) and isinstance(source.get(key), Mapping):
            source = source[key]
            break
    if not isinstance(source, Mapping) or not any(isinstance(v, torch.Tensor) for v in source.values()):
        raise ValueError(f'{name} holds no state dict of tensors (looked at the top level and under '
                         f'{", ".join(_WRAPPER_KEYS)}): it is not a model checkpoint')
    state = {k[7:] if k.startswith('module.') else k: v for k, v in source.items() if isinstance(v, torch.Tensor)}
    if prefix and any(k.startswith(prefix) for k in state):
        state = strip_prefix(state, prefix)
    return state


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keep only the keys starting with ``prefix``, without it."""
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str,
                           allowed_missing: Iterable[str] = (), strict: bool = True) -> list[str]:
    """Copy ``state_dict`` into ``module``, reporting every key that does not fit.

    Args:
        module: the model; its non-persistent buffers are never expected.
        state_dict: already converted to the module's layout.
        source: what the weights are (file and detected layout), used in messages.
        allowed_missing: glob patterns of module keys the layout is known not to carry (they keep their
            initialisation, e.g. the per-level output norms absent from ImageNet checkpoints).
        strict: raise on any other mismatch; when False, the fitting keys are loaded and the same report is
            logged as a warning (a checkpoint with no fitting key still raises).

    Returns:
        The allowed missing keys that kept their initialisation.

    Raises:
        CheckpointMismatchError: ``strict`` and some key is missing, unexpected or of the wrong shape, or nothing
            at all matched (a checkpoint of another model).
    """
    own = module.state_dict()
    matched = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    mis_shaped = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    unexpected = sorted(k for k in state_dict if k not in own)
    missing = sorted(k for k in own if k not in state_dict)
    allowed = [k for k in missing if any(fnmatchcase(k, pattern) for pattern in allowed_missing)]
    missing = [k for k in missing if k not in allowed]

    problems = []
    if not matched:
        problems.append(f'none of its {len(state_dict)} keys fits the {len(own)} keys of '
                        f'{type(module).__name__}: it is a checkpoint of another model')
    if missing:
        problems.append(f'{len(missing)} model keys not in the checkpoint: {", ".join(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} checkpoint keys not used: {", ".join(unexpected)}')
    if mis_shaped:
        problems.append(f'{len(mis_shaped)} keys of the wrong shape: {"; ".join(mis_shaped)}')
    report = '\n  - '.join(problems)
    if problems and (strict or not matched):
        raise CheckpointMismatchError(
            f'cannot load {source} into {type(module).__name__}:\n  - {report}\n'
            'Check that the checkpoint is of this model and arch (see tools/model_converters/); '
            "pass init_cfg=dict(type='Pretrained', checkpoint=..., strict=False) to load the fitting keys anyway.")
    if problems:
        print_log(f'strict=False: loaded {len(matched)} fitting keys of {source} into {type(module).__name__}; '
                  f'the rest kept their initialisation:\n  - {report}', logger='current', level=logging.WARNING)
    module.load_state_dict(matched, strict=False)
    return allowed
