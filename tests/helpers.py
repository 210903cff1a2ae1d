"""Helpers shared by the test modules: loading a script of ``tools/``, tiny data sets in the real COCO / ADE20K
layouts, tiny configs built on the shipped ones, non-trivial random weights and output comparisons.

Test modules import from here (``from helpers import ...``), never from each other: each module runs on its own.
"""
from __future__ import annotations

import importlib.util
import json
import os
import os.path as osp
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'


def load_tool(path: str) -> ModuleType:
    """``tools/<path>`` under the name ``mmswin_tool_<path with / and . as _>`` (``tools/test.py`` as plain ``test``
    would clash with the standard library's)."""
    name = 'mmswin_tool_' + path.removesuffix('.py').replace('/', '_').replace('.', '_')
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOOLS / path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights everywhere (LayerNorms and bias tables included) so that every mapping matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            module_name = name.rsplit('.', 1)[0] if '.' in name else ''
            if 'norm' in module_name.rsplit('.', 1)[-1] and name.endswith('.weight'):
                p.copy_(1 + 0.2 * noise)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1  # keeps activations O(1) through deep stacks
                p.copy_(noise / fan_in ** 0.5 if p.dim() > 1 else 0.1 * noise)
    return model


def max_diff(a, b) -> float:
    """Largest absolute difference over two equally long sequences of tensors."""
    assert len(a) == len(b)
    return max((x - y).abs().max().item() for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------------------------
# Tiny synthetic data sets in the real layouts.

SIZE = 64


# ---------------------------------------------------------------------------------------------------------------
# Tiny synthetic data sets in the real layouts.

def _image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def write_coco(root: str, num_images: int = 4) -> str:
    """COCO layout under root/coco: 64x64 images with two rectangular instances each (person, bicycle); the json
    lists all 80 COCO categories (mmdet's label indices follow the category list)."""
    import mmcv
    from mmdet.datasets import CocoDataset
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CocoDataset.METAINFO['classes'])]
    rng = np.random.default_rng(0)
    coco = osp.join(root, 'coco')
    os.makedirs(osp.join(coco, 'annotations'), exist_ok=True)
    for split in ('train2017', 'val2017'):
        os.makedirs(osp.join(coco, split), exist_ok=True)
        images, anns = [], []
        for i in range(1, num_images + 1):
            name = f'{i:012d}.jpg'
            mmcv.imwrite(_image(rng), osp.join(coco, split, name))
            images.append(dict(id=i, file_name=name, width=SIZE, height=SIZE))
            for k, (x, y, w, h) in enumerate([(4, 6, 30, 40), (36, 20, 24, 30)]):
                anns.append(dict(id=len(anns) + 1, image_id=i, category_id=(1, 2)[k], iscrowd=0, area=w * h,
                                 bbox=[x, y, w, h], segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
        with open(osp.join(coco, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=anns,
                           categories=categories), f)
    return coco


def write_ade(root: str, num_images: int = 2) -> str:
    """ADE20K layout under root/ade/ADEChallengeData2016: 64x64 images, label PNGs with values 0..150."""
    import mmcv
    rng = np.random.default_rng(1)
    ade = osp.join(root, 'ade', 'ADEChallengeData2016')
    for split in ('training', 'validation'):
        os.makedirs(osp.join(ade, 'images', split), exist_ok=True)
        os.makedirs(osp.join(ade, 'annotations', split), exist_ok=True)
        for i in range(num_images):
            mmcv.imwrite(_image(rng), osp.join(ade, 'images', split, f'ADE_{split}_{i:08d}.jpg'))
            label = np.zeros((SIZE, SIZE), np.uint8)
            label[:32] = 1 + i
            label[32:, :40] = 13
            label[32:, 40:] = 150
            mmcv.imwrite(label, osp.join(ade, 'annotations', split, f'ADE_{split}_{i:08d}.png'))
    return ade


# ---------------------------------------------------------------------------------------------------------------
# Tiny configs: real configs, shrunk backbone, 64x64 pipelines, synthetic data.

TINY_SWIN = 'dict(_delete_=True, embed_dims=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8))'


def tiny_det_config(path: str, data_root: str, extra: str = '') -> str:
    text = f"""_base_ = {str(REPO / 'configs' / 'mask_rcnn_swin_t_fpn_1x_coco.py')!r}
data_root = {data_root + '/'!r}
model = dict(
    backbone=dict(arch={TINY_SWIN}, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256]),
    train_cfg=dict(rpn=dict(sampler=dict(num=32)), rpn_proposal=dict(nms_pre=200, max_per_img=50),
                   rcnn=dict(sampler=dict(num=16))),
    # score_thr 0: an (almost) untrained detector still predicts boxes, so the outputs can be checked
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(score_thr=0.0, max_per_img=10)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=({SIZE}, {SIZE}), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({SIZE}, {SIZE}), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(interval=1))
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return path


def tiny_seg_config(path: str, data_root: str, extra: str = '') -> str:
    text = f"""_base_ = {str(REPO / 'configs' / 'upernet_swin_t_ade20k.py')!r}
data_root = {data_root!r}
model = dict(
    data_preprocessor=dict(size=({SIZE}, {SIZE})),
    backbone=dict(arch={TINY_SWIN}, init_cfg=None),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=32),
    auxiliary_head=dict(in_channels=128, channels=16))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=({SIZE}, {SIZE}), ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=({SIZE}, {SIZE}), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({SIZE}, {SIZE}), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return path
