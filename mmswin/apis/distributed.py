"""Distributed runs on machines without CUDA: gloo instead of nccl, DDP without device ids, BN instead of SyncBN."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ['adapt_distributed_to_cpu', 'prepare_distributed', 'init_cpu_process_group']


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
