"""Loading a config the way the tools run it: overrides, the task check, the work folder, the checkpoint to resume.

One implementation each, shared by ``tools/train.py``, ``tools/test.py``, ``tools/infer.py``, the analysis tools
and the demo.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import re
from collections.abc import Mapping
from typing import Any

__all__ = ['TASK_SCOPES', 'check_task_scope', 'load_config', 'load_tool_config', 'find_resume_checkpoint']

TASK_SCOPES = ('mmdet', 'mmseg')


def check_task_scope(cfg: Any, config: str = 'the config') -> str:
    """The config's ``default_scope`` (``'mmdet'`` or ``'mmseg'``), which tells the task.

    Raises:
        SystemExit: any other scope, with the base to inherit.
    """
    scope = cfg.get('default_scope')
    if scope not in TASK_SCOPES:
        raise SystemExit(f'{config}: default_scope must be "mmdet" (detection) or "mmseg" (segmentation), got '
                         f'{scope!r}; inherit mmdet::_base_/default_runtime.py or mmseg::_base_/default_runtime.py')
    return scope


def load_config(config: str, cfg_options: Mapping | None = None, *, drop_pretrained: bool = False) -> Any:
    """``Config.fromfile`` + ``--cfg-options`` + the task check.

    Args:
        drop_pretrained: set backbone ``init_cfg`` entries whose local file is missing to None -- for tools that
            load a full checkpoint afterwards or need no weights (test, infer, FLOPs, export).
    """
    from mmengine.config import Config

    from mmswin.apis.preflight import drop_pretrained_init
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    check_task_scope(cfg, config)
    if drop_pretrained:
        drop_pretrained_init(cfg)
    return cfg


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
