"""Building the model of a config outside a Runner: for inference, FLOPs, speed and export tools."""
from __future__ import annotations

import os.path as osp
from typing import Any

import torch

__all__ = ['DEFAULT_SHAPES', 'build_model', 'init_model', 'dummy_inputs', 'dummy_batch']

# The input sizes the Swin papers report complexity at: 800x1280 (H x W) for detection, 512x512 for segmentation.
DEFAULT_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 512)}


def build_model(cfg: Any, device: str = 'cpu') -> torch.nn.Module:
    """The model of ``cfg`` in eval mode, SyncBN reverted to BN (no process group needed); random weights unless
    the config's ``init_cfg`` loads some (call ``init_weights`` for that)."""
    import mmswin.models  # noqa: F401  (registers the backbones)
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmseg':
        cfg.model.train_cfg = None  # as mmseg.apis.init_model
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    return model.to(device).eval()


def init_model(cfg: Any, checkpoint: str, device: str = 'cpu') -> torch.nn.Module:
    """The model of ``cfg`` with ``checkpoint`` loaded strictly, in eval mode, ``dataset_meta`` and ``cfg`` set
    (class names from the checkpoint's meta data when present, else from the config's test data set).

    Raises:
        SystemExit: the checkpoint file does not exist.
    """
    from mmengine.registry import DATASETS
    from mmengine.runner import load_checkpoint

    if not osp.isfile(checkpoint) and '://' not in checkpoint:
        raise SystemExit(f'checkpoint not found: {checkpoint}')
    model = build_model(cfg, 'cpu')
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    dataset_cfg = dict(cfg.test_dataloader.dataset)
    while 'dataset' in dataset_cfg:  # dataset wrappers
        dataset_cfg = dict(dataset_cfg['dataset'])
    dataset_cfg['lazy_init'] = True  # only the class names and palette are needed
    meta = dict(DATASETS.build(dataset_cfg).metainfo)
    ckpt_meta = (ckpt.get('meta') or {}).get('dataset_meta') if isinstance(ckpt, dict) else None
    if ckpt_meta:
        meta.update({k.lower(): v for k, v in ckpt_meta.items()})
    model.dataset_meta = meta
    model.cfg = cfg
    return model.to(device).eval()


def _meta(height: int, width: int) -> dict[str, Any]:
    return dict(ori_shape=(height, width), img_shape=(height, width), pad_shape=(height, width),
                batch_input_shape=(height, width), scale_factor=(1.0, 1.0), flip=False, flip_direction=None,
                img_path=None)


def _sample_type(scope: str) -> type:
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        return DetDataSample
    from mmseg.structures import SegDataSample
    return SegDataSample


def dummy_inputs(scope: str, height: int, width: int, batch_size: int = 1,
                 device: str = 'cpu') -> tuple[torch.Tensor, list]:
    """Normalised-looking random images ``(B, 3, H, W)`` and data samples saying the images are ``H x W``: what
    ``model(inputs, samples, mode=...)`` takes after the data pre-processor."""
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch_size, 3, height, width, generator=gen).to(device)
    return inputs, [_sample_type(scope)(metainfo=_meta(height, width)) for _ in range(batch_size)]


def dummy_batch(scope: str, height: int, width: int, batch_size: int = 1) -> dict[str, Any]:
    """A data batch as a dataloader gives it: uint8 images (CHW) and data samples with meta data: what
    ``model.test_step`` takes (the data pre-processor runs)."""
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, height, width), generator=gen, dtype=torch.uint8) for _ in range(batch_size)]
    return dict(inputs=images, data_samples=[_sample_type(scope)(metainfo=_meta(height, width))
                                             for _ in range(batch_size)])
