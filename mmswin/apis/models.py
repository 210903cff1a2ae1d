"""Building the model of a config outside a Runner: for inference, FLOPs, speed and export tools."""
from __future__ import annotations

from typing import Any

import torch

__all__ = ['DEFAULT_SHAPES', 'build_model', 'init_model', 'load_model_checkpoint', 'dummy_inputs', 'dummy_batch']

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


def load_model_checkpoint(model: torch.nn.Module, checkpoint: str) -> dict[str, Any]:
    """Every weight of ``model`` (a detector or segmentor) from ``checkpoint`` (a path or URL), strictly, with the
    project's short report; returns the checkpoint's ``meta`` (``{}`` when it has none).

    Raises:
        CheckpointFileError / UnsafeCheckpointError: the file is missing, not a torch checkpoint, or unsafe.
        CheckpointMismatchError: keys that do not fit, counted and named; a backbone-only (ImageNet) file is
            named as such, with how to start a training from it instead.
    """
    from mmswin.models.backbones.base import PyramidBackbone
    from mmswin.models.pretrained import (CheckpointMismatchError, load_state_dict_strict, read_checkpoint,
                                          read_state_dict)
    raw = read_checkpoint(checkpoint)
    state = read_state_dict(raw, prefix='')
    meta = raw.get('meta') if isinstance(raw, dict) and isinstance(raw.get('meta'), dict) else {}
    parts = {key.split('.')[0] for key in model.state_dict()}  # backbone, neck, decode_head, roi_head, ...
    backbone = getattr(model, 'backbone', None)
    if not any(key.split('.')[0] in parts for key in state) and isinstance(backbone, PyramidBackbone):
        try:
            _, layout, _ = backbone.convert_checkpoint(state)
        except (CheckpointMismatchError, ValueError, KeyError):
            layout = None
        if layout is not None:
            raise CheckpointMismatchError(
                f'{checkpoint} is a backbone checkpoint ({len(state)} tensors, {layout}), not a whole '
                f'{type(model).__name__}: tools/test.py, tools/infer.py and --resume need the checkpoint a training '
                'with this config writes (work_dirs/CONFIG/iter_N.pth or epoch_N.pth). To train from these '
                f'backbone weights instead: tools/train.py CONFIG --cfg-options '
                f'model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint={checkpoint}')
    load_state_dict_strict(model, state, source=checkpoint)
    return meta


def init_model(cfg: Any, checkpoint: str, device: str = 'cpu') -> torch.nn.Module:
    """The model of ``cfg`` with ``checkpoint`` loaded strictly (:func:`load_model_checkpoint`), in eval mode,
    ``dataset_meta`` and ``cfg`` set (class names from the checkpoint's meta data when present, else from the
    config's test data set).

    Raises:
        CheckpointFileError / CheckpointMismatchError / UnsafeCheckpointError: see :func:`load_model_checkpoint`.
    """
    from mmengine.registry import DATASETS

    from mmswin.datasets.wrappers import leaf_dataset_cfgs

    model = build_model(cfg, 'cpu')
    ckpt_meta = load_model_checkpoint(model, checkpoint).get('dataset_meta')
    dataset_cfg = dict(next(leaf_dataset_cfgs(cfg.test_dataloader.dataset))[0])  # the first, if concatenated
    dataset_cfg['lazy_init'] = True  # only the class names and palette are needed
    meta = dict(DATASETS.build(dataset_cfg).metainfo)
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
