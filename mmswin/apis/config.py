"""Loading a config the way the tools run it: overrides, the task check, the work folder, the checkpoint to resume.

One implementation each, shared by ``tools/train.py``, ``tools/test.py``, ``tools/infer.py``, the analysis tools
and the demo.
"""
from __future__ import annotations

import difflib
import glob
import inspect
import os
import os.path as osp
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mmswin.apis.errors import ConfigError

__all__ = ['TASK_SCOPES', 'check_task_scope', 'check_cfg_options', 'load_config', 'load_tool_config',
           'find_resume_checkpoint']

TASK_SCOPES = ('mmdet', 'mmseg')


def check_task_scope(cfg: Any, config: str = 'the config') -> str:
    """The config's ``default_scope`` (``'mmdet'`` or ``'mmseg'``), which tells the task.

    Raises:
        ConfigError: any other scope, with the base to inherit.
    """
    scope = cfg.get('default_scope')
    if scope not in TASK_SCOPES:
        raise ConfigError(f'{config}: default_scope must be "mmdet" (detection) or "mmseg" (segmentation), got '
                          f'{scope!r}; inherit mmdet::_base_/default_runtime.py or mmseg::_base_/default_runtime.py')
    return scope


def _registered_class(type_name: str, scope: str | None) -> Any:
    """The class (or function) a ``type`` names in any mmengine registry, looked up in ``scope``; None if none."""
    import importlib

    import mmengine.registry as registries
    if scope:
        importlib.import_module(f'{scope}.registry')  # creates the scope's child registries
    keys = [type_name] if '.' in type_name or not scope else [f'{scope}.{type_name}', type_name]
    for name in dir(registries):
        registry = getattr(registries, name)
        if not isinstance(registry, registries.Registry):
            continue
        for key in keys:
            try:
                found = registry.get(key)
            except Exception:  # a lazily imported location that fails: not this registry's type
                found = None
            if found is not None:
                return found
    return None


def _arguments(obj: Any) -> tuple[set[str], bool]:
    """The keyword arguments ``obj`` (a class or function) takes, and whether it takes any (``**kwargs``)."""
    try:
        signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    except (TypeError, ValueError):
        return set(), True
    names = {n for n, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names - {'self'}, any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())


def check_cfg_options(cfg: Any, options: Mapping[str, Any]) -> None:
    """Refuse ``--cfg-options`` keys that are typos, before they are merged (mmengine would add them silently).

    A key that does not exist in ``cfg`` is refused when a close spelling exists (a sibling key, or an argument
    of the ``type`` of the dict it goes into), or when that ``type`` takes no such argument and no ``**kwargs``;
    otherwise it is a new setting and allowed (``model.backbone.compile=True``).

    Raises:
        ConfigError: naming the key, what it would go into and the likely intended key.
    """
    from mmengine.runner import Runner
    runner_args, _ = _arguments(Runner)
    scope = cfg.get('default_scope')
    root = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    for key in options:
        node: Any = root
        for depth, part in enumerate(key.split('.')):
            where = '.'.join(key.split('.')[:depth]) or 'the config'
            if isinstance(node, Sequence) and not isinstance(node, str):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f'--cfg-options {key}: {where} is a list of {len(node)} items; {part!r} is not '
                                      f'an index of it (0..{len(node) - 1})')
                node = node[int(part)]
                continue
            if not isinstance(node, Mapping):
                raise ConfigError(f'--cfg-options {key}: {where} is a {type(node).__name__} ({str(node)[:60]}), not a '
                                  f'dict: it has no key {part!r}')
            if part in node:
                node = node[part]
                continue
            owner = node.get('type') if depth else None
            cls = _registered_class(owner, scope) if isinstance(owner, str) else None
            params, var_kwargs = _arguments(cls) if cls is not None else (set(), True)
            if part in params or (depth == 0 and part in runner_args):
                break  # a new setting of a known argument
            known = set(node) | params | (runner_args if depth == 0 else set())
            close = difflib.get_close_matches(part, sorted(known), n=1, cutoff=0.75)
            what = f'{where} ({owner})' if owner else where
            if close:
                raise ConfigError(f'--cfg-options {key}: {what} has no key {part!r}; did you mean '
                                  f"{'.'.join(key.split('.')[:depth] + [close[0]])!r}?")
            if cls is not None and not var_kwargs:
                raise ConfigError(f'--cfg-options {key}: {owner} takes no argument {part!r}; it takes '
                                  f'{", ".join(sorted(params))}')
            break  # a new setting


def load_config(config: str, cfg_options: Mapping | None = None, *, drop_pretrained: bool = False) -> Any:
    """``Config.fromfile`` + ``--cfg-options`` (typos refused, see :func:`check_cfg_options`) + the task check.

    Args:
        drop_pretrained: set backbone ``init_cfg`` entries whose local file is missing to None -- for tools that
            load a full checkpoint afterwards or need no weights (test, infer, FLOPs, export).
    """
    from mmengine.config import Config

    from mmswin.apis.preflight import drop_pretrained_init
    if not osp.isfile(config):
        raise ConfigError(_config_not_found(config))
    cfg = Config.fromfile(config)
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(dict(cfg_options))
    check_task_scope(cfg, config)
    if drop_pretrained:
        drop_pretrained_init(cfg)
    return cfg


def _config_not_found(config: str) -> str:
    """The message for a config path that does not exist, with the closest configs of its folder."""
    folder = osp.dirname(config) or '.'
    if not osp.isdir(folder):
        return f'config file not found: {config} (no folder {folder})'
    names = [n for n in os.listdir(folder) if n.endswith('.py')]
    close = difflib.get_close_matches(osp.basename(config), names, n=3, cutoff=0.6)
    hint = f'; did you mean {" or ".join(osp.join(folder, n) for n in close)}?' if close else \
        f' ({len(names)} configs in {folder})'
    return f'config file not found: {config}{hint}'


def load_tool_config(config: str, cfg_options: Mapping | None, launcher: str, work_dir: str | None) -> Any:
    """The config as ``tools/train.py`` and ``tools/test.py`` run it (mmdet's / mmseg's conventions): loaded with
    ``--cfg-options``, ``launcher`` set, ``work_dir`` from the command line > the config >
    ``./work_dirs/CONFIG_NAME``. The caller turns the safeguards on (``mmswin.engine.enable_safeguards``) once
    its own options are applied."""
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def _step(path: str) -> int:
    match = re.search(r'(\d+)\.pth$', osp.basename(path))
    return int(match.group(1)) if match else -1


def find_resume_checkpoint(work_dir: str) -> str | None:
    """The checkpoint ``--resume`` continues from: the one ``work_dir/last_checkpoint`` names, or -- when that file
    is missing, empty (a kill while mmengine rewrote it) or names a file that is gone -- the newest complete
    ``epoch_N.pth`` / ``iter_N.pth`` in ``work_dir`` (checkpoints are renamed into place only once complete).
    None when there is none."""
    last_file = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last_file):
        with open(last_file) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            return named
    candidates = [p for p in glob.glob(osp.join(work_dir, '*.pth'))
                  if re.fullmatch(r'(epoch|iter)_\d+\.pth', osp.basename(p)) and os.path.getsize(p) > 0]
    return max(candidates, key=lambda p: (_step(p), os.path.getmtime(p))) if candidates else None
