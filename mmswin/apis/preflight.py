"""Checks and adjustments that ``tools/train.py`` / ``tools/test.py`` run before building an mmengine Runner.

* :func:`find_missing_data` / :func:`missing_data_message`: a data set that is not where the config says gives a
  short message naming the expected layout and where to get the data, instead of a traceback from a loader.
* :func:`find_missing_pretrained` / :func:`missing_pretrained_message`: a backbone ``init_cfg`` of type
  ``Pretrained`` pointing at a local file that does not exist, with how to get the file or train from scratch.
* :func:`adapt_distributed_to_cpu`: distributed runs on machines without CUDA (gloo process group, DDP without
  ``device_ids``).

Only the standard library and mmengine are imported here (no mmdet / mmseg), so ``import mmswin`` stays light.
Configs are read duck-typed: anything that behaves like a mapping (``mmengine.Config``, ``ConfigDict``, ``dict``).
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

__all__ = [
    'MissingPath', 'find_missing_data', 'missing_data_message', 'find_missing_pretrained',
    'missing_pretrained_message', 'PRETRAINED_SOURCES', 'adapt_distributed_to_cpu', 'drop_pretrained_init',
    'load_tool_config', 'prepare_distributed',
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


def _leaf_datasets(dataset: Mapping, key: str) -> Iterator[tuple[Mapping, str]]:
    """Datasets inside wrappers (RepeatDataset, ClassBalancedDataset, ConcatDataset, ...)."""
    if 'dataset' in dataset and isinstance(dataset['dataset'], Mapping):
        yield from _leaf_datasets(dataset['dataset'], f'{key}.dataset')
    elif 'datasets' in dataset and isinstance(dataset['datasets'], (list, tuple)):
        for i, sub in enumerate(dataset['datasets']):
            if isinstance(sub, Mapping):
                yield from _leaf_datasets(sub, f'{key}.datasets[{i}]')
    else:
        yield dataset, key


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
        for dataset, key in _leaf_datasets(loader['dataset'], f'{loader_key}.dataset'):
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
    for key, path in find_missing_pretrained(cfg):
        parts = key.split('.')[1:-2]  # drop leading 'model' and trailing 'init_cfg.checkpoint'
        node = cfg['model']
        for part in parts:
            node = node[part]
        node['init_cfg'] = None
        changed.append(key)
    return changed


def adapt_distributed_to_cpu(cfg: Any, cuda_available: bool | None = None) -> bool:
    """Make a distributed (``launcher != 'none'``) run work on a machine without CUDA. Returns whether it changed.

    * ``env_cfg.dist_cfg.backend``: ``nccl`` (the stock default, GPU only) becomes ``gloo``; any other backend set
      by the user is kept.
    * ``model_wrapper_cfg``: DDP gets ``device_ids=None`` (mmengine passes ``[LOCAL_RANK]``, which DDP refuses for a
      CPU module), unless the config sets ``device_ids`` itself.
    * ``model``: ``SyncBN`` layers (GPU only in torch) become ``BN``.

    The caller must also create the process group itself (see ``tools/train.py``): mmengine's ``init_dist`` calls
    ``torch.cuda.set_device``, which fails without CUDA. The Runner skips its own initialisation when a group exists.
    """
    if cfg.get('launcher', 'none') == 'none':
        return False
    if cuda_available is None:
        import torch
        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return False
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or {'type': 'MMDistributedDataParallel'}
    if wrapper.get('type', 'MMDistributedDataParallel') in ('MMDistributedDataParallel', 'DistributedDataParallel'):
        wrapper.setdefault('device_ids', None)
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg['model_wrapper_cfg'] = wrapper
    _syncbn_to_bn(cfg.get('model'))
    return True


def _syncbn_to_bn(node: Any) -> None:
    if isinstance(node, Mapping):
        if node.get('type') == 'SyncBN' and hasattr(node, '__setitem__'):
            node['type'] = 'BN'
        for value in node.values():
            _syncbn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _syncbn_to_bn(value)


def load_tool_config(config: str, cfg_options: Mapping | None, launcher: str, work_dir: str | None) -> Any:
    """The config as ``tools/train.py`` and ``tools/test.py`` run it (mmdet's / mmseg's conventions).

    Loads ``config``, merges ``--cfg-options``, turns on mmswin's safeguards (atomic checkpoints, a NaN / inf loss
    stop, data file checks) also for configs that do not list them, checks that ``default_scope`` names the task,
    and sets ``work_dir``: command line > config > ``./work_dirs/CONFIG_NAME``.
    """
    from mmengine.config import Config

    from mmswin.engine import enable_safeguards
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    enable_safeguards(cfg)
    scope = cfg.get('default_scope')
    if scope not in ('mmdet', 'mmseg'):
        raise SystemExit(f'{config}: default_scope must be "mmdet" (detection) or "mmseg" (segmentation), '
                         f'got {scope!r}; inherit mmdet::_base_/default_runtime.py or mmseg::_base_/default_runtime.py')
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def prepare_distributed(cfg: Any) -> None:
    """On machines without CUDA: adapt the config (:func:`adapt_distributed_to_cpu`) and, under torchrun, create
    the gloo process group here, since mmengine's ``init_dist`` calls ``torch.cuda.set_device``; the Runner then
    reuses the group."""
    if adapt_distributed_to_cpu(cfg) and cfg.launcher == 'pytorch':
        init_cpu_process_group(cfg.env_cfg.dist_cfg.backend)


def init_cpu_process_group(backend: str = 'gloo') -> None:
    """Create the default process group from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))


def ensure_external_config_lookup() -> bool:
    """Make ``_base_ = 'mmdet::...'`` / ``'mmseg::...'`` work when ``pkg_resources`` is not installed.

    mmengine 0.10.7 (its last release) finds the configs of other packages with ``pkg_resources``, which
    setuptools >= 82 no longer ships: every config inheriting a stock mmdet / mmseg base then fails with
    ``ModuleNotFoundError: No module named 'pkg_resources'``. When (and only when) ``pkg_resources`` cannot be
    imported, this points mmengine's config loader at equivalents built on ``importlib.metadata``. Idempotent.
    Returns whether the replacement is in place. (``pip install 'setuptools<82'`` is the other fix.)
    """
    import importlib.util
    if importlib.util.find_spec('pkg_resources') is not None:
        return False
    import importlib.metadata as metadata

    import mmengine.config.config as config_module

    def is_installed(package: str) -> bool:
        try:
            metadata.distribution(package)
            return True
        except metadata.PackageNotFoundError:
            spec = importlib.util.find_spec(package)
            return spec is not None and spec.origin is not None

    def get_installed_path(package: str) -> str:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            spec = importlib.util.find_spec(package)
            if spec is None or spec.origin is None:
                raise
            return osp.dirname(spec.origin)
        location = str(dist.locate_file(''))
        if osp.exists(osp.join(location, package)):
            return osp.join(location, package)
        top_level = (dist.read_text('top_level.txt') or package).split()
        return osp.join(location, top_level[0] if top_level else package)

    config_module.is_installed = is_installed
    config_module.get_installed_path = get_installed_path
    return True
