"""Pretrained weights into an mmswin backbone: one path for both families.

:func:`load_pretrained` is what ``init_weights`` runs for ``init_cfg=dict(type='Pretrained', checkpoint=...)``:

1. read -- :func:`read_state_dict`: a local file (safe ``torch.load``, see :mod:`mmswin.utils.checkpoint_io`), a
   URL, or an already loaded dict; unwrapped from ``state_dict`` / ``model`` / ``module``; a detector / segmentor
   ``backbone.`` prefix stripped when present;
2. detect the layout and convert -- the family's pure ``convert_checkpoint(state_dict)`` (one converter per
   family: :func:`~mmswin.models.backbones.swin.convert_swin_state_dict`,
   :func:`~mmswin.models.backbones.shunted.convert_shunted_checkpoint`);
3. strict report -- :func:`load_state_dict_strict`: every backbone key not filled and every checkpoint key left
   unused is named in one :class:`CheckpointMismatchError`, except the keys a layout is documented not to carry.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

import torch
from mmengine.logging import print_log
from torch import nn

from mmswin.utils.checkpoint_io import safe_torch_load

__all__ = ['CheckpointMismatchError', 'PRETRAINED_KEYS', 'read_checkpoint', 'read_state_dict', 'strip_prefix',
           'load_state_dict_strict', 'load_pretrained', 'split_init_cfg']

_WRAPPER_KEYS = ('state_dict', 'model', 'module', 'state_dict_ema', 'model_ema')
PRETRAINED_KEYS = ('type', 'checkpoint', 'strict', 'prefix', 'map_location')

# convert(state_dict) -> (state_dict in the model's layout, layout name, glob patterns of keys allowed missing)
Converter = Callable[[Mapping[str, torch.Tensor]], tuple[dict[str, torch.Tensor], str, list[str]]]


class CheckpointMismatchError(RuntimeError, ValueError):
    """The checkpoint does not fit the model (another model, another arch, missing / unused / mis-shaped keys)."""


def _load_url(url: str, map_location: Any) -> Any:
    """A checkpoint behind a URL: ``http(s)://`` and ``file://`` through torch.hub's cache with the same
    allow-list as local files; mmengine's other schemes (``open-mmlab://``, ``torchvision://`` ...) through its
    ``CheckpointLoader``."""
    if url.startswith(('http://', 'https://', 'file://')):
        from mmswin.utils.checkpoint_io import mmengine_safe_globals
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            return torch.hub.load_state_dict_from_url(url, map_location=map_location, weights_only=True,
                                                      progress=False)
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader.load_checkpoint(url, map_location=map_location)


def read_checkpoint(checkpoint: str | os.PathLike, map_location: Any = 'cpu') -> Any:
    """The object a checkpoint file or URL holds (:func:`safe_torch_load`; URLs through :func:`_load_url`).

    Raises:
        CheckpointFileError / UnsafeCheckpointError: see :func:`safe_torch_load`.
    """
    if isinstance(checkpoint, str) and '://' in checkpoint:
        return _load_url(checkpoint, map_location)
    return safe_torch_load(checkpoint, map_location=map_location)


def read_state_dict(checkpoint: str | os.PathLike | Mapping, prefix: str = 'backbone.',
                    map_location: Any = 'cpu') -> dict[str, torch.Tensor]:
    """Read a checkpoint into a flat ``{name: tensor}`` dict.

    Args:
        checkpoint: a file path, a URL, or an already loaded object.
        prefix: stripped when any key carries it (detector / segmentor checkpoints); other keys are then dropped,
            since they belong to the neck and heads.
        map_location: where the tensors are loaded (``torch.load``'s argument). Default: ``'cpu'``.

    Raises:
        FileNotFoundError / UnsafeCheckpointError / ValueError: see :func:`safe_torch_load`.
        ValueError: the object holds no tensors (not a checkpoint).
    """
    if isinstance(checkpoint, Mapping):
        source, name = checkpoint, 'the given dict'
    else:
        source, name = read_checkpoint(checkpoint, map_location), repr(os.fspath(checkpoint))
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


SHOWN_KEYS = 8  # keys named per kind of mismatch (all of them are in the debug log)


def _first(keys: list[str], sep: str) -> str:
    shown = sep.join(keys[:SHOWN_KEYS])
    return shown if len(keys) <= SHOWN_KEYS else f'{shown}{sep}... ({len(keys) - SHOWN_KEYS} more)'


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
        problems.append(f'{len(missing)} model keys not in the checkpoint: {_first(missing, ", ")}')
    if unexpected:
        problems.append(f'{len(unexpected)} checkpoint keys not used: {_first(unexpected, ", ")}')
    if mis_shaped:
        problems.append(f'{len(mis_shaped)} keys of the wrong shape: {_first(mis_shaped, "; ")}')
    report = '\n  - '.join(problems)
    if problems:
        print_log(f'{source}: missing {missing}; unused {unexpected}; wrong shape {mis_shaped}', logger='current',
                  level=logging.DEBUG)
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


def split_init_cfg(init_cfg: Any) -> tuple[Mapping | None, list]:
    """``init_cfg`` (None, a dict or a list of dicts) -> its one ``Pretrained`` entry (or None) and the others.

    Raises:
        ValueError: more than one ``Pretrained`` entry, or a ``Pretrained`` entry without ``checkpoint`` or with
            keys other than :data:`PRETRAINED_KEYS`.
    """
    cfgs = [] if init_cfg is None else list(init_cfg) if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    pretrained = [c for c in cfgs if isinstance(c, Mapping) and c.get('type') == 'Pretrained']
    if len(pretrained) > 1:
        raise ValueError(f'init_cfg has {len(pretrained)} Pretrained entries; give one')
    if pretrained:
        unknown = set(pretrained[0]) - set(PRETRAINED_KEYS)
        if unknown or 'checkpoint' not in pretrained[0]:
            raise ValueError("init_cfg=dict(type='Pretrained', checkpoint=PATH_OR_URL, strict=True, "
                             "prefix='backbone.', map_location='cpu') takes a checkpoint and only those keys; got "
                             f'{dict(pretrained[0])!r}')
    return (pretrained[0] if pretrained else None), [c for c in cfgs if not (pretrained and c is pretrained[0])]


def load_pretrained(model: nn.Module, cfg: Mapping, convert: Converter) -> None:
    """Read, convert and strictly load ``cfg['checkpoint']`` (a ``Pretrained`` init_cfg) into ``model``.

    Logs one line naming the file, the detected layout and the keys that kept their initialisation.
    """
    checkpoint = cfg['checkpoint']
    state = read_state_dict(checkpoint, prefix=cfg.get('prefix', 'backbone.'),
                            map_location=cfg.get('map_location', 'cpu'))
    converted, layout, allowed_missing = convert(state)
    source = f'{checkpoint!r} ({layout})' if not isinstance(checkpoint, Mapping) else f'a state dict ({layout})'
    kept = load_state_dict_strict(model, converted, source=source, allowed_missing=allowed_missing,
                                  strict=cfg.get('strict', True))
    print_log(f'{type(model).__name__}: loaded {source}'
              + (f'; kept the initialisation of {", ".join(kept)}' if kept else ''), logger='current')
