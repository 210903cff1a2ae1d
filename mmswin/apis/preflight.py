"""Checks the tools run before building anything: is the data there, is the pretrained file there.

* :func:`find_missing_data` / :func:`missing_data_message`: a data set that is not where the config says gives a
  short message naming the expected layout and where to get the data, instead of a traceback from a loader.
* :func:`find_missing_pretrained` / :func:`missing_pretrained_message`: a backbone ``init_cfg`` of type
  ``Pretrained`` pointing at a local file that does not exist, with how to get the file or train from scratch.

Imports the standard library and :mod:`mmswin.datasets` (whose checks bring numpy and PIL), neither torch nor
mmdet / mmseg. Configs are read duck-typed: anything that behaves like a mapping (``mmengine.Config``,
``ConfigDict``, ``dict``).
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from mmswin.datasets.wrappers import leaf_dataset_cfgs

__all__ = [
    'MissingPath', 'find_missing_data', 'check_annotation_files', 'missing_data_message', 'find_missing_pretrained',
    'missing_pretrained_message', 'PRETRAINED_SOURCES', 'drop_pretrained_init',
]

_DATALOADERS = {'train': 'train_dataloader', 'val': 'val_dataloader', 'test': 'test_dataloader'}


@dataclass(frozen=True)
class MissingPath:
    """One path a config needs that does not exist.

    Attributes:
        path: the path as the dataset would open it (data_root joined).
        key: where it comes from in the config, e.g. ``train_dataloader.dataset.ann_file``.
        dataset_type: the dataset's ``type`` (e.g. ``CocoDataset``), used to pick the layout hint.
        data_root: the dataset's ``data_root`` ('' when unset).
    """

    path: str
    key: str
    dataset_type: str
    data_root: str


def _is_remote(path: str) -> bool:
    return '://' in path or path.startswith(('open-mmlab:', 'torchvision:', 'mmcls:', 'mmpretrain:', 'modelzoo:'))


def _join(root: str, path: str) -> str:
    if not root or osp.isabs(path) or _is_remote(path):
        return path
    return osp.join(root, path)


def find_missing_data(cfg: Mapping, splits: tuple[str, ...] = ('train', 'val')) -> list[MissingPath]:
    """The data paths that the given dataloaders of ``cfg`` need and that do not exist locally.

    Checks, per dataset, the ``data_root``, the ``ann_file`` and every ``data_prefix`` entry, each joined to
    ``data_root`` as mmengine's ``BaseDataset`` joins them. When ``data_root`` itself is missing, only it is reported.
    Remote paths (``s3://`` ...) and datasets with ``backend_args`` (a non-local file backend) are not checked.

    Args:
        cfg: a loaded config.
        splits: which of ``train``, ``val``, ``test`` to check. A split whose dataloader is None / absent is skipped.

    Returns:
        The missing paths, in config order, without duplicates.
    """
    missing: list[MissingPath] = []
    seen: set[str] = set()

    def add(path: str, key: str, dtype: str, root: str) -> None:
        if path not in seen and not osp.exists(path):
            seen.add(path)
            missing.append(MissingPath(path, key, dtype, root))

    for split in splits:
        if split not in _DATALOADERS:
            raise ValueError(f'splits: unknown split {split!r}; valid values are {sorted(_DATALOADERS)}')
        loader_key = _DATALOADERS[split]
        loader = cfg.get(loader_key)
        if not isinstance(loader, Mapping) or not isinstance(loader.get('dataset'), Mapping):
            continue
        for dataset, key in leaf_dataset_cfgs(loader['dataset'], f'{loader_key}.dataset'):
            if dataset.get('backend_args'):
                continue
            dtype = str(dataset.get('type', ''))
            root = str(dataset.get('data_root') or '')
            if root and not _is_remote(root) and not osp.isdir(root):
                add(root, f'{key}.data_root', dtype, root)
                continue
            ann_file = dataset.get('ann_file')
            if ann_file:
                add(_join(root, str(ann_file)), f'{key}.ann_file', dtype, root)
            prefix = dataset.get('data_prefix') or {}
            if isinstance(prefix, Mapping):
                for name, value in prefix.items():
                    if value:
                        add(_join(root, str(value)), f'{key}.data_prefix.{name}', dtype, root)
    return [m for m in missing if not _is_remote(m.path)]


_LAYOUTS = {  # dataset type -> (name, layout, where to get it, how to link a copy)
    'CocoDataset': (
        'COCO 2017',
        """data/coco/
    annotations/instances_train2017.json
    annotations/instances_val2017.json
    train2017/   (118k .jpg)
    val2017/     (5k .jpg)""",
        'https://cocodataset.org/#download: "2017 Train images", "2017 Val images" and "2017 Train/Val '
        'annotations"; unzip all three into data/coco/',
        'mkdir -p data && ln -s /path/to/coco data/coco',
    ),
    'ADE20KDataset': (
        'ADE20K, SceneParsing release ADEChallengeData2016',
        """data/ade/ADEChallengeData2016/
    images/training/          (20210 .jpg)
    images/validation/        (2000 .jpg)
    annotations/training/     (20210 .png)
    annotations/validation/   (2000 .png)""",
        'http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip; unzip it into data/ade/',
        'mkdir -p data/ade && ln -s /path/to/ADEChallengeData2016 data/ade/ADEChallengeData2016',
    ),
}


_FULL_PARSE_BYTES = 200 * 2 ** 20  # larger annotation files (COCO train: 450 MB) get the cheap checks only


def _ends(path: str) -> tuple[bytes, bytes]:
    with open(path, 'rb') as f:
        head = f.read(64).lstrip()
        f.seek(max(0, os.path.getsize(path) - 64))
        tail = f.read().rstrip()
    return head[:1], tail[-1:]


def check_annotation_files(cfg: Mapping, splits: tuple[str, ...] = ('train', 'val')) -> int:
    """Check that every ``.json`` annotation file of the given dataloaders is JSON, and that a COCO file lists
    images. Files above 200 MB are checked for their first and last character only (a truncated copy). Missing
    files are :func:`find_missing_data`'s business. Returns the number of files checked.

    Raises:
        DataCheckError: naming the file, what is wrong with it and what to do.
    """
    import json

    from mmswin.datasets.checks import DataCheckError
    checked = 0
    for split in splits:
        loader = cfg.get(_DATALOADERS[split])
        if not isinstance(loader, Mapping) or not isinstance(loader.get('dataset'), Mapping):
            continue
        for dataset, key in leaf_dataset_cfgs(loader['dataset'], f'{_DATALOADERS[split]}.dataset'):
            ann_file = dataset.get('ann_file')
            if not ann_file or not str(ann_file).endswith('.json') or dataset.get('backend_args'):
                continue
            path = _join(str(dataset.get('data_root') or ''), str(ann_file))
            if _is_remote(path) or not osp.isfile(path):
                continue
            checked += 1
            where = f'annotation file {path} ({key}.ann_file)'
            if os.path.getsize(path) > _FULL_PARSE_BYTES:
                if _ends(path) != (b'{', b'}'):
                    raise DataCheckError(f'{where} is not a complete JSON object (it does not start with "{{" and '
                                         'end with "}"): a truncated copy? Copy it again.')
                continue
            try:
                with open(path, encoding='utf-8') as f:
                    content = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise DataCheckError(f'{where} is not JSON: {err}. Is it the right file (a COCO instances json), '
                                     'and complete?') from None
            if 'Coco' in str(dataset.get('type', '')):
                images = content.get('images') if isinstance(content, Mapping) else None
                if not isinstance(images, list):
                    raise DataCheckError(f'{where} has no "images" list: it is not a COCO instances file')
                if not images:
                    raise DataCheckError(f'{where} lists no images: nothing to train or evaluate on. Check that '
                                         'the converter wrote the images (tools/dataset_converters/) and that this '
                                         'is the right split.')
    return checked


def missing_data_message(missing: list[MissingPath], config_path: str = '') -> str:
    """A short, readable explanation of missing data: what is missing, the expected layout, how to get it."""
    if not missing:
        return ''
    cwd = os.getcwd()
    lines = [f'Data set not found{f" for {config_path}" if config_path else ""} '
             f'(relative paths are taken from {cwd}). Missing:']
    lines += [f'  {m.path}   ({m.key})' for m in missing]
    coco = any(m.dataset_type == 'CocoDataset' for m in missing)
    for dtype in dict.fromkeys(m.dataset_type for m in missing):
        if dtype in _LAYOUTS:
            name, layout, source, link = _LAYOUTS[dtype]
            lines += ['', f'Expected layout ({name}):', f'  {layout}', f'Get it from {source}.',
                      f'Have a copy elsewhere? Link it: {link}']
    roots = sorted({m.data_root for m in missing if m.data_root})
    override = ('Or point the config at it: --cfg-options train_dataloader.dataset.data_root=DIR '
                'val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR')
    if coco:
        override += (' val_evaluator.ann_file=DIR/annotations/instances_val2017.json'
                     ' test_evaluator.ann_file=DIR/annotations/instances_val2017.json')
    lines += ['', override]
    if roots:
        lines.append(f'  (the config has data_root={", ".join(roots)})')
    return '\n'.join(lines)


# Where the pretrained files our configs name come from (file name -> how to get it).
PRETRAINED_SOURCES: dict[str, str] = {
    'swin_tiny_patch4_window7_224.pth':
        'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth',
    'swin_small_patch4_window7_224.pth':
        'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth',
    'swin_base_patch4_window7_224.pth':
        'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224.pth',
    'swin_large_patch4_window7_224_22k.pth':
        'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window7_224_22k.pth',
    # ImageNet-22K at 384x384, window 12: the upernet_swin_{b,l}_ade20k_640_22k.py configs
    'swin_base_patch4_window12_384_22k.pth':
        'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window12_384_22k.pth',
    'swin_large_patch4_window12_384_22k.pth':
        'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth',
    # Swin V2 (official release v2.0.0): ImageNet-1K at 256x256, window 16; ImageNet-22K at 192x192, window 12
    **{name: f'https://github.com/SwinTransformer/storage/releases/download/v2.0.0/{name}' for name in (
        'swinv2_tiny_patch4_window16_256.pth', 'swinv2_small_patch4_window16_256.pth',
        'swinv2_base_patch4_window16_256.pth', 'swinv2_base_patch4_window12_192_22k.pth',
        'swinv2_large_patch4_window12_192_22k.pth')},
}
_SHUNTED_SOURCE = ('the Google Drive folder of the official Shunted Transformer release '
                   '(https://github.com/OliverRensu/Shunted-Transformer#model-zoo: '
                   'https://drive.google.com/drive/folders/15iZKXFT7apjUSoN2WUMAbb0tvJgyh3YP); '
                   'save the ImageNet-1k checkpoint of the matching size (T, S or B) under this name')


def _pretrained_source(path: str) -> str | None:
    name = osp.basename(path)
    if name in PRETRAINED_SOURCES:
        return PRETRAINED_SOURCES[name]
    if name.startswith('shunted'):
        return _SHUNTED_SOURCE
    return None


def _walk_init_cfgs(node: Any, key: str) -> Iterator[tuple[str, Mapping]]:
    if isinstance(node, Mapping):
        init_cfg = node.get('init_cfg')
        for item in (init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]):
            if isinstance(item, Mapping) and item.get('type') == 'Pretrained':
                yield f'{key}.init_cfg', item
        for name, value in node.items():
            if name != 'init_cfg':
                yield from _walk_init_cfgs(value, f'{key}.{name}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk_init_cfgs(value, f'{key}[{i}]')


def find_missing_pretrained(cfg: Mapping) -> list[tuple[str, str]]:
    """``(config key, path)`` of every ``init_cfg=dict(type='Pretrained', checkpoint=...)`` in ``cfg.model`` whose
    checkpoint is a local path that does not exist (URLs are left to mmengine's downloader)."""
    found = []
    for key, init_cfg in _walk_init_cfgs(cfg.get('model'), 'model'):
        path = init_cfg.get('checkpoint')
        if isinstance(path, str) and not _is_remote(path) and not osp.isfile(osp.expanduser(path)):
            found.append((f'{key}.checkpoint', path))
    return found


def missing_pretrained_message(missing: list[tuple[str, str]]) -> str:
    """How to get each missing pretrained file, use another one, or train from scratch."""
    if not missing:
        return ''
    lines = ['Pretrained backbone weights not found:']
    for key, path in missing:
        lines.append(f'  {path}   ({key})')
        source = _pretrained_source(path)
        if source and source.startswith('http'):
            lines.append(f'  get it: mkdir -p {osp.dirname(path) or "."} && wget -O {path} {source}')
        elif source:
            lines.append(f'  get it from {source}')
    key0 = missing[0][0]
    lines += ['Use a file elsewhere:   --cfg-options ' + f'{key0}=/path/to/file.pth',
              'Train from scratch:     --cfg-options ' + f'{key0[:-len(".checkpoint")]}=None'
              '   (the published recipes start from ImageNet weights; from scratch they need far longer schedules)']
    return '\n'.join(lines)


def drop_pretrained_init(cfg: Any) -> list[str]:
    """Set every ``Pretrained`` init_cfg inside ``cfg.model`` whose local file is missing to None (in place).

    Used when a checkpoint is loaded afterwards anyway (``--resume`` / ``load_from``), which overwrites the
    backbone weights. Returns the config keys that were changed.
    """
    changed = []
    for key, _ in find_missing_pretrained(cfg):
        parts = key.split('.')[1:-2]  # drop leading 'model' and trailing 'init_cfg.checkpoint'
        node = cfg['model']
        for part in parts:
            node = node[part]
        node['init_cfg'] = None
        changed.append(key)
    return changed
