"""Every shipped config parses, follows its published recipe, builds, and runs loss and predict on tiny inputs.

Config families: Mask R-CNN, Cascade Mask R-CNN and RetinaNet on COCO (mmdet), UperNet on ADE20K (mmseg, 512x512
from ImageNet-1k weights, 640x640 from the ImageNet-22K window-12 weights).

Also: a user's stock mmdet / mmseg config with only ``custom_imports`` and a backbone swapped in (the snippet of the
model-zoo text) builds and runs, and the optimizer of each recipe puts weight decay where the recipe says.
"""
from __future__ import annotations

import copy
import glob
import os.path as osp
import re
from typing import NamedTuple

import pytest
import torch

mmdet = pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine.config import Config  # noqa: E402
from mmengine.model import revert_sync_batchnorm  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

import mmswin.models  # noqa: E402,F401
from mmswin.apis import PRETRAINED_SOURCES, missing_pretrained_message  # noqa: E402


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO, 'configs')
CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
DET_MODELS = ('mask_rcnn', 'cascade_mask_rcnn', 'retinanet')
DET_CONFIGS = [c for c in CONFIGS if c.startswith(tuple(f'{m}_' for m in DET_MODELS))]
SEG_CONFIGS = [c for c in CONFIGS if c.startswith('upernet_')]

EXPECTED = {  # the file names the issue asks for
    'upernet_swin_t_ade20k.py', 'upernet_swin_s_ade20k.py', 'upernet_swin_b_ade20k.py',
    'upernet_shunted_t_ade20k.py', 'upernet_shunted_s_ade20k.py', 'upernet_shunted_b_ade20k.py',
    'mask_rcnn_swin_t_fpn_1x_coco.py', 'mask_rcnn_swin_s_fpn_1x_coco.py', 'mask_rcnn_swin_b_fpn_1x_coco.py',
    'mask_rcnn_swin_t_fpn_3x_coco.py', 'mask_rcnn_swin_s_fpn_3x_coco.py',
    *(f'mask_rcnn_shunted_{s}_fpn_{k}_coco.py' for s in 'tsb' for k in ('1x', '3x')),
    # the official Swin detection / segmentation zoo, RetinaNet, and their Shunted counterparts
    'cascade_mask_rcnn_swin_t_fpn_1x_coco.py',
    *(f'cascade_mask_rcnn_{f}_{s}_fpn_3x_coco.py' for f in ('swin', 'shunted') for s in 'tsb'),
    'retinanet_swin_t_fpn_1x_coco.py', 'retinanet_shunted_t_fpn_1x_coco.py', 'retinanet_shunted_s_fpn_1x_coco.py',
    'upernet_swin_b_ade20k_640_22k.py', 'upernet_swin_l_ade20k_640_22k.py',
}
ARCH = {'t': 'tiny', 's': 'small', 'b': 'base', 'l': 'large'}
SWIN_WIDTH = {'tiny': 96, 'small': 96, 'base': 128, 'large': 192}
SWIN_HEADS = {'tiny': (3, 6, 12, 24), 'small': (3, 6, 12, 24), 'base': (4, 8, 16, 32), 'large': (6, 12, 24, 48)}
PRETRAINED = {
    ('swin', 't', '1k'): 'checkpoints/swin_tiny_patch4_window7_224.pth',
    ('swin', 's', '1k'): 'checkpoints/swin_small_patch4_window7_224.pth',
    ('swin', 'b', '1k'): 'checkpoints/swin_base_patch4_window7_224.pth',
    ('swin', 'b', '22k'): 'checkpoints/swin_base_patch4_window12_384_22k.pth',
    ('swin', 'l', '22k'): 'checkpoints/swin_large_patch4_window12_384_22k.pth',
    ('swinv2', 't', '1k'): 'checkpoints/swinv2_tiny_patch4_window16_256.pth',
    ('swinv2', 's', '1k'): 'checkpoints/swinv2_small_patch4_window16_256.pth',
    ('swinv2', 'b', '1k'): 'checkpoints/swinv2_base_patch4_window16_256.pth',
    ('swinv2', 'b', '22k'): 'checkpoints/swinv2_base_patch4_window12_192_22k.pth',
    ('swinv2', 'l', '22k'): 'checkpoints/swinv2_large_patch4_window12_192_22k.pth',
    ('shunted', 't', '1k'): 'checkpoints/shunted_t.pth',
    ('shunted', 's', '1k'): 'checkpoints/shunted_s.pth',
    ('shunted', 'b', '1k'): 'checkpoints/shunted_b.pth',
}
# the recipe's drop-path rate per (model, family, size, schedule); None: any
DROP_PATH = {
    ('mask_rcnn', 'swin'): {'t': 0.2, 's': 0.2, 'b': 0.3},  # mmdet 3.x; Swin-B: our choice (official B rate)
    ('cascade_mask_rcnn', 'swin'): {'t': 0.2, 's': 0.2, 'b': 0.3},  # official cascade configs (T 1x: 0.0, below)
    ('retinanet', 'swin'): {'t': 0.2},  # mmdet 3.x
    ('upernet', 'swin'): {'t': 0.3, 's': 0.3, 'b': 0.3, 'l': 0.3},  # official / mmseg UperNet
    ('mask_rcnn', 'shunted'): {'t': 0.1, 's': 0.1, 'b': 0.1},  # PVT v2 detection
    ('cascade_mask_rcnn', 'shunted'): {'t': 0.1, 's': 0.1, 'b': 0.1},
    ('retinanet', 'shunted'): {'t': 0.1, 's': 0.1},
    ('upernet', 'shunted'): {'t': 0.1, 's': 0.2, 'b': 0.3},  # our choice: the ImageNet rates
    ('mask_rcnn', 'swinv2'): {'t': 0.2, 's': 0.3, 'b': 0.3},  # our choice: the V1 rates (mmdet / official B)
    ('cascade_mask_rcnn', 'swinv2'): {'t': 0.2, 's': 0.3, 'b': 0.3},
    ('upernet', 'swinv2'): {'t': 0.3, 's': 0.3, 'b': 0.3, 'l': 0.3},  # the V1 UperNet rate
}


class Parts(NamedTuple):
    model: str  # mask_rcnn, cascade_mask_rcnn, retinanet, upernet
    family: str  # swin, swinv2, shunted
    size: str  # t, s, b, l
    schedule: str  # 1x, 3x, 160k
    pretrain: str  # 1k (ImageNet-1k, 224) or 22k (ImageNet-22K, 384, window 12)


def _parts(name: str) -> Parts:
    """What a config file name says: model, backbone family, size letter, schedule, pretraining."""
    m = re.match(r'(mask_rcnn|cascade_mask_rcnn|retinanet|upernet)_(swin|swinv2|shunted)_([tsbl])_'
                 r'(?:fpn_(1x|3x)_coco|ade20k(_640_22k)?)\.py$', name)
    assert m, name
    return Parts(m.group(1), m.group(2), m.group(3), m.group(4) or '160k', '22k' if m.group(5) else '1k')


def _drop_path(p: Parts) -> float:
    if (p.model, p.family, p.size, p.schedule) == ('cascade_mask_rcnn', 'swin', 't', '1x'):
        return 0.0  # the official Swin-T cascade 1x trains without drop-path
    return DROP_PATH[p.model, p.family][p.size]


_cfg_cache: dict[str, Config] = {}


def load(name: str) -> Config:
    if name not in _cfg_cache:
        _cfg_cache[name] = Config.fromfile(osp.join(CONFIG_DIR, name))
    return copy.deepcopy(_cfg_cache[name])


def test_all_issue_configs_exist():
    assert EXPECTED <= set(CONFIGS), sorted(EXPECTED - set(CONFIGS))


@pytest.mark.parametrize('name', CONFIGS)
def test_config_contract(name):
    """Scope, custom imports, our backbone of the right size, the documented pretrained path."""
    parts = _parts(name)
    family, size = parts.family, parts.size
    cfg = load(name)
    assert cfg.default_scope == ('mmseg' if parts.model == 'upernet' else 'mmdet')
    assert cfg.custom_imports == dict(imports=['mmswin.models', 'mmswin.engine'], allow_failed_imports=False)
    # the safeguards also work with mmdet's / mmseg's own train.py
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.interval == (1 if cfg.default_scope == 'mmdet' else 16000)
    assert [h.type for h in cfg.custom_hooks] == ['NonFiniteLossHook', 'DataCheckHook']
    # one visualizer per run: mmengine keeps one per name and process, and a fixed name sends a second run's
    # scalars into the first run's log dir
    assert 'name' not in cfg.visualizer, cfg.visualizer
    backbone = cfg.model.backbone
    assert backbone.type == {'swin': 'mmswin.SwinTransformer', 'swinv2': 'mmswin.SwinTransformerV2',
                             'shunted': 'mmswin.ShuntedTransformer'}[family]
    assert backbone.arch == ARCH[size]
    pretrained = PRETRAINED[family, size, parts.pretrain]
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=pretrained)
    assert 'pretrained' not in backbone and cfg.model.get('pretrained') is None
    # datasets at the documented roots, 16 images per iteration on 8 GPUs
    root = 'data/coco/' if cfg.default_scope == 'mmdet' else 'data/ade/ADEChallengeData2016'
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == root
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    # the missing-file message knows where the file comes from
    msg = missing_pretrained_message([('model.backbone.init_cfg.checkpoint', pretrained)])
    assert 'model.backbone.init_cfg=None' in msg
    source = 'https://github.com/SwinTransformer/storage' if family != 'shunted' else 'drive.google.com'
    assert source in msg
    if family != 'shunted':  # the download address of exactly this file
        assert PRETRAINED_SOURCES[osp.basename(pretrained)].endswith('/' + osp.basename(pretrained))


def _milestones(cfg: Config) -> tuple[int, list[int]]:
    warm, step = cfg.param_scheduler
    assert warm.type == 'LinearLR' and not warm.by_epoch and warm.begin == 0
    return warm.end, step


SWIN_NO_DECAY = {'absolute_pos_embed': 0., 'relative_position_bias_table': 0., 'norm': 0.}
# V2 adds the official optimizer's no-decay parameters: the position-bias MLP, the logit scales, the q / v biases
SWINV2_NO_DECAY = {**SWIN_NO_DECAY, 'cpb_mlp': 0., 'logit_scale': 0., 'q_bias': 0., 'v_bias': 0.}
# (model, family) -> optimizer type, lr, weight decay, warm-up iterations, no-decay keys (None: decay everywhere)
DET_OPTIMIZERS = {
    ('mask_rcnn', 'swin'): ('AdamW', 1e-4, 0.05, 1000, SWIN_NO_DECAY),  # mmdet 3.x / official Swin
    ('cascade_mask_rcnn', 'swin'): ('AdamW', 1e-4, 0.05, 1000, SWIN_NO_DECAY),  # official Swin (warm-up: mmdet 3.x)
    ('cascade_mask_rcnn', 'shunted'): ('AdamW', 1e-4, 0.05, 1000, SWIN_NO_DECAY),  # PVT v2 cascade 3x = Swin's
    ('mask_rcnn', 'shunted'): ('AdamW', 2e-4, 1e-4, 500, None),  # PVT v2 Mask R-CNN
    ('retinanet', 'shunted'): ('AdamW', 1e-4, 1e-4, 500, None),  # PVT v2 RetinaNet
    ('retinanet', 'swin'): ('SGD', 0.01, 1e-4, 500, None),  # mmdet 3.x Swin RetinaNet: RetinaNet's stock SGD
    ('mask_rcnn', 'swinv2'): ('AdamW', 1e-4, 0.05, 1000, SWINV2_NO_DECAY),  # the Swin recipes
    ('cascade_mask_rcnn', 'swinv2'): ('AdamW', 1e-4, 0.05, 1000, SWINV2_NO_DECAY),
}
CASCADE_STDS = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])


def _widths(family: str, size: str) -> list[int]:
    return [SWIN_WIDTH[ARCH[size]] * 2**i for i in range(4)] if family != 'shunted' else [64, 128, 256, 512]


@pytest.mark.parametrize('name', DET_CONFIGS)
def test_detection_recipe(name):
    parts = _parts(name)
    cfg = load(name)
    epochs, milestones = {'1x': (12, [8, 11]), '3x': (36, [27, 33])}[parts.schedule]
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == epochs
    warm_end, step = _milestones(cfg)
    assert step.type == 'MultiStepLR' and step.milestones == milestones and step.gamma == 0.1
    assert step.end == epochs
    opt = cfg.optim_wrapper.optimizer
    opt_type, lr, weight_decay, warm_up, no_decay = DET_OPTIMIZERS[parts.model, parts.family]
    assert (opt.type, opt.lr, opt.weight_decay, warm_end) == (opt_type, lr, weight_decay, warm_up)
    if opt_type == 'AdamW':
        assert tuple(opt.betas) == (0.9, 0.999) and 'momentum' not in opt
    else:
        assert opt.momentum == 0.9 and 'betas' not in opt
    if no_decay is None:
        assert 'paramwise_cfg' not in cfg.optim_wrapper
    else:
        keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
        assert {k: v.decay_mult for k, v in keys.items()} == no_decay
    assert cfg.model.backbone.drop_path_rate == _drop_path(parts)
    widths = _widths(parts.family, parts.size)

    if parts.model == 'retinanet':  # mmdet's Swin RetinaNet wiring: levels 1-3 into the FPN, P6 / P7 on C5
        assert cfg.model.type == 'RetinaNet'
        assert tuple(cfg.model.backbone.out_indices) == (1, 2, 3)
        neck = cfg.model.neck
        assert neck.in_channels == widths[1:] and neck.start_level == 0
        assert neck.add_extra_convs == 'on_input' and neck.num_outs == 5 and neck.out_channels == 256
        assert cfg.model.bbox_head.type == 'RetinaHead' and cfg.model.bbox_head.num_classes == 80
    else:
        assert 'out_indices' not in cfg.model.backbone  # all four levels
        assert cfg.model.neck.in_channels == widths
    if parts.model == 'cascade_mask_rcnn':  # the official Swin cascade heads
        roi = cfg.model.roi_head
        assert cfg.model.type == 'CascadeRCNN' and roi.type == 'CascadeRoIHead' and roi.num_stages == 3
        assert roi.stage_loss_weights == [1, 0.5, 0.25]
        assert [r.assigner.pos_iou_thr for r in cfg.model.train_cfg.rcnn] == [0.5, 0.6, 0.7]
        assert len(roi.bbox_head) == 3
        for head, stds in zip(roi.bbox_head, CASCADE_STDS):
            assert head.type == 'Shared4Conv1FCBBoxHead'  # 4 shared convs + 1 shared fc
            assert (head.in_channels, head.conv_out_channels, head.fc_out_channels) == (256, 256, 1024)
            assert head.norm_cfg == dict(type='SyncBN', requires_grad=True)
            assert head.reg_decoded_bbox is True and head.reg_class_agnostic is False
            assert head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
            assert head.loss_cls.type == 'CrossEntropyLoss' and not head.loss_cls.use_sigmoid
            assert head.bbox_coder.target_means == [0.] * 4 and head.bbox_coder.target_stds == stds
            assert head.num_classes == 80
        assert roi.mask_head.type == 'FCNMaskHead' and roi.mask_head.num_classes == 80
    if parts.model == 'mask_rcnn':
        assert cfg.model.type == 'MaskRCNN'

    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline_types = [t.type for t in pipeline]
    load_ann = pipeline[pipeline_types.index('LoadAnnotations')]
    assert load_ann.with_bbox and load_ann.get('with_mask', False) == (parts.model != 'retinanet')
    if parts.schedule == '3x' or parts.model == 'cascade_mask_rcnn':  # the official cascade 1x is ms + crop too
        choice = pipeline[pipeline_types.index('RandomChoice')]
        resize, crop = choice.transforms
        assert [s[0] for s in resize[0].scales] == list(range(480, 801, 32))
        assert [t.type for t in crop] == ['RandomChoiceResize', 'RandomCrop', 'RandomChoiceResize']
        assert tuple(crop[1].crop_size) == (384, 600)
    else:
        assert 'RandomChoice' not in pipeline_types
        assert pipeline[pipeline_types.index('Resize')].scale == (1333, 800)


@pytest.mark.parametrize('name', SEG_CONFIGS)
def test_segmentation_recipe(name):
    parts = _parts(name)
    cfg = load(name)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 160000
    warm_end, poly = _milestones(cfg)
    assert warm_end == 1500 and poly.type == 'PolyLR' and poly.power == 1.0 and poly.end == 160000
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay, tuple(opt.betas)) == ('AdamW', 6e-5, 0.01, (0.9, 0.999))
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    no_decay = SWINV2_NO_DECAY if parts.family == 'swinv2' else SWIN_NO_DECAY
    assert {k: v.decay_mult for k, v in keys.items()} == no_decay
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert head.type == 'UPerHead' and tuple(head.pool_scales) == (1, 2, 3, 6) and head.channels == 512
    assert head.num_classes == aux.num_classes == 150 and head.norm_cfg.type == 'SyncBN'
    assert aux.type == 'FCNHead' and aux.in_index == 2 and aux.loss_decode.loss_weight == 0.4
    widths = _widths(parts.family, parts.size)
    assert head.in_channels == widths and aux.in_channels == widths[2]
    assert cfg.model.backbone.drop_path_rate == _drop_path(parts)
    if parts.family == 'swinv2':  # window 16 (24 for the 22K window-12 weights, transferred from (12, 12, 12, 6))
        bb = cfg.model.backbone
        assert 'pretrain_img_size' not in bb
        if parts.pretrain == '22k':
            assert (bb.window_size, tuple(bb.pretrained_window_size)) == (24, (12, 12, 12, 6))
            crop, scale = (640, 640), (2560, 640)
        else:
            assert bb.window_size == 16 and 'pretrained_window_size' not in bb
            crop, scale = (512, 512), (2048, 512)
    elif parts.pretrain == '22k':  # ImageNet-22K weights at 384: window 12, 640x640 crops from the 2560x640 scale
        assert cfg.model.backbone.window_size == 12 and cfg.model.backbone.pretrain_img_size == 384
        crop, scale = (640, 640), (2560, 640)
    else:
        assert 'window_size' not in cfg.model.backbone and 'pretrain_img_size' not in cfg.model.backbone  # 7, 224
        crop, scale = (512, 512), (2048, 512)
    assert tuple(cfg.crop_size) == crop and tuple(cfg.model.data_preprocessor.size) == crop
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert [t.type for t in pipeline] == ['LoadImageFromFile', 'LoadAnnotations', 'RandomResize', 'RandomCrop',
                                          'RandomFlip', 'PhotoMetricDistortion', 'PackSegInputs']
    assert tuple(pipeline[2].scale) == scale and tuple(pipeline[2].ratio_range) == (0.5, 2.0)
    assert tuple(pipeline[3].crop_size) == crop and pipeline[3].cat_max_ratio == 0.75
    test_resize = [t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize']
    assert [tuple(t.scale) for t in test_resize] == [scale]
    assert cfg.img_ratios == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75] and cfg.tta_model.type == 'SegTTAModel'


_out_channels: dict[tuple, tuple] = {}


@pytest.mark.parametrize('name', CONFIGS)
def test_full_size_backbone_matches_heads(name):
    """The real-size backbone of each config emits what its neck / heads expect."""
    cfg = load(name)
    init_default_scope(cfg.default_scope)
    bb = dict(cfg.model.backbone, init_cfg=None)
    out_indices = tuple(bb.get('out_indices', (0, 1, 2, 3)))
    key = (bb['type'], bb['arch'], out_indices)  # the window size changes no channel count
    if key not in _out_channels:
        backbone = MODELS.build(bb)
        _out_channels[key] = tuple(backbone.out_channels)
        assert tuple(backbone.out_strides) == tuple(4 * 2**i for i in out_indices)
        assert [backbone.feature_info[i]['num_chs'] for i in out_indices] == list(backbone.out_channels)
    channels = list(_out_channels[key])
    if cfg.default_scope == 'mmdet':
        assert cfg.model.neck.in_channels == channels
    else:
        assert cfg.model.decode_head.in_channels == channels
        assert cfg.model.auxiliary_head.in_channels == channels[cfg.model.auxiliary_head.in_index]


# ---------------------------------------------------------------------------------------------------------------
# Build + loss + predict on tiny inputs, backbone shrunk (widths of the config kept, so the neck / heads are the
# config's own).

def shrink(cfg: Config) -> Config:
    """Depth-reduced backbone, small sample counts, no pretrained file, 64x64 crops."""
    bb = cfg.model.backbone
    bb.init_cfg = None
    if bb.type in ('mmswin.SwinTransformer', 'mmswin.SwinTransformerV2'):
        arch = bb.arch
        bb.arch = dict(embed_dims=SWIN_WIDTH[arch], depths=(2, 2, 2, 2), num_heads=SWIN_HEADS[arch])
    else:
        bb.arch = 'tiny'  # every Shunted size has widths 64..512
    if cfg.model.type == 'RetinaNet':
        cfg.model.test_cfg.nms_pre = 200
        cfg.model.test_cfg.max_per_img = 10
    elif cfg.default_scope == 'mmdet':
        cfg.model.train_cfg.rpn.sampler.num = 32
        cfg.model.train_cfg.rpn_proposal.nms_pre = 200
        cfg.model.train_cfg.rpn_proposal.max_per_img = 100
        rcnn = cfg.model.train_cfg.rcnn
        for stage in (rcnn if isinstance(rcnn, list) else [rcnn]):  # one per cascade stage
            stage.sampler.num = 32
        cfg.model.test_cfg.rpn.nms_pre = 200
        cfg.model.test_cfg.rpn.max_per_img = 50
        cfg.model.test_cfg.rcnn.max_per_img = 10
    else:
        cfg.model.data_preprocessor.size = (64, 64)
    return cfg


def det_inputs(batch: int = 2, size: int = 64) -> dict:
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=batch, image_shapes=[(3, size, size)] * batch, num_items=[3] * batch,
                          num_classes=80, with_mask=True)


def seg_inputs(batch: int = 2, size: int = 64, num_classes: int = 150) -> dict:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(batch):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size), scale_factor=(1., 1.)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, size, size), generator=gen))
        samples.append(sample)
    images = [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8) for _ in range(batch)]
    return dict(inputs=images, data_samples=samples)


def build_model(cfg: Config) -> torch.nn.Module:
    init_default_scope(cfg.default_scope)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    return model


def run_loss_and_predict(model: torch.nn.Module, scope: str, backward: bool = False) -> None:
    torch.manual_seed(0)
    packed = det_inputs() if scope == 'mmdet' else seg_inputs()
    model.train()
    data = model.data_preprocessor(copy.deepcopy(packed), True)
    with torch.set_grad_enabled(backward):
        losses = model(**data, mode='loss')
        total, _ = model.parse_losses(losses)
    assert torch.isfinite(total), losses
    if backward:
        total.backward()
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not no_grad, f'parameters without gradient (DDP would fail): {no_grad[:5]}'

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(packed), False)
        results = model(**data, mode='predict')
    assert len(results) == 2
    if scope == 'mmdet':
        for res in results:
            inst = res.pred_instances
            assert inst.bboxes.shape[1] == 4 and len(inst) <= 10
            if model.with_mask:
                assert inst.masks.shape[1:] == (64, 64)
            else:  # RetinaNet: boxes only
                assert 'masks' not in inst
    else:
        for res in results:
            assert res.pred_sem_seg.data.shape == (1, 64, 64)
            assert res.seg_logits.data.shape == (150, 64, 64)


def fingerprint(cfg: Config) -> str:
    """The shrunk model config without what cannot change the code path (drop-path rate, pretrained file)."""
    model = copy.deepcopy(cfg.model)
    model.backbone.pop('drop_path_rate', None)
    model.backbone.pop('init_cfg', None)
    return Config(dict(model=model)).pretty_text


def _representatives() -> dict[str, str]:
    """config -> the first config (sorted) whose shrunk model is identical: e.g. 1x and 3x of one backbone differ
    only in schedule and pipeline, so only the representative of each group is built and run."""
    first: dict[str, str] = {}
    return {name: first.setdefault(fingerprint(shrink(load(name))), name) for name in CONFIGS}


REPRESENTATIVE = _representatives()
RUN_CONFIGS = sorted(set(REPRESENTATIVE.values()))
# backward (every parameter gets a gradient, as DDP needs) for one config of each model, and for each RetinaNet
# group (the backbones return three levels only there)
BACKWARD = {next(c for c in RUN_CONFIGS if _parts(c).model == model)
            for model in ('mask_rcnn', 'cascade_mask_rcnn', 'retinanet', 'upernet')}
BACKWARD |= {c for c in RUN_CONFIGS if _parts(c).model == 'retinanet'}


@pytest.mark.parametrize('name', CONFIGS)
def test_config_shares_the_model_of_its_representative(name):
    """What makes running one config per group enough: the shrunk models are identical."""
    representative = REPRESENTATIVE[name]
    assert fingerprint(shrink(load(name))) == fingerprint(shrink(load(representative)))
    assert representative in RUN_CONFIGS


@pytest.mark.slow
@pytest.mark.parametrize('name', RUN_CONFIGS)
def test_config_builds_and_runs(name):
    """Build, loss (with backward for one config per task) and predict, for one config of each model group."""
    cfg = shrink(load(name))
    model = build_model(cfg)
    run_loss_and_predict(model, cfg.default_scope, backward=name in BACKWARD)


# ---------------------------------------------------------------------------------------------------------------
# A user's own stock config with our backbone swapped in: the snippet of README.md.

def swapped_config(tmp_path, scope: str, family: str) -> Config:
    if family == 'swin':
        backbone, channels = "type='mmswin.SwinTransformer', arch='tiny'", [96, 192, 384, 768]
    else:
        backbone, channels = "type='mmswin.ShuntedTransformer', arch='tiny'", [64, 128, 256, 512]
    if scope == 'mmdet':
        text = f"""_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmswin.models'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, {backbone}),
    neck=dict(in_channels={channels}))
"""
    else:
        text = f"""_base_ = 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py'
custom_imports = dict(imports=['mmswin.models'], allow_failed_imports=False)
model = dict(
    pretrained=None,  # the stock model names ResNet weights here
    backbone=dict(_delete_=True, {backbone}),
    decode_head=dict(in_channels={channels}),
    auxiliary_head=dict(in_channels={channels[2]}))
"""
    path = tmp_path / f'my_{scope}_{family}.py'
    path.write_text(text)
    return Config.fromfile(str(path))


@pytest.mark.slow
@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
@pytest.mark.parametrize('family', ['swin', 'shunted'])
def test_swapped_stock_config(tmp_path, scope, family):
    cfg = swapped_config(tmp_path, scope, family)
    assert cfg.model.backbone.type.startswith('mmswin.')
    assert 'depth' not in cfg.model.backbone  # _delete_ dropped the ResNet arguments
    if scope == 'mmseg':
        cfg.model.data_preprocessor.size = (64, 64)
    if family == 'swin':
        cfg.model.backbone.arch = dict(embed_dims=96, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24))
    model = build_model(cfg)
    assert type(model.backbone).__module__.startswith('mmswin.')
    run_loss_and_predict(model, scope)


def test_swapped_snippet_is_documented():
    """README.md shows the same snippets as the test above."""
    doc = open(osp.join(REPO, 'README.md')).read()
    for line in ("_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'",
                 "_base_ = 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py'",
                 "custom_imports = dict(imports=['mmswin.models'], allow_failed_imports=False)",
                 'pretrained=None', '_delete_=True', 'neck=dict(in_channels=[96, 192, 384, 768])'):
        assert line in doc, line


# ---------------------------------------------------------------------------------------------------------------
# Optimizer: weight decay where the recipe puts it.

@pytest.mark.parametrize('name', ['mask_rcnn_swin_t_fpn_1x_coco.py', 'upernet_shunted_t_ade20k.py',
                                  'mask_rcnn_shunted_t_fpn_1x_coco.py', 'cascade_mask_rcnn_shunted_t_fpn_3x_coco.py',
                                  'retinanet_swin_t_fpn_1x_coco.py'])
def test_optimizer_decay_rules(name):
    from mmengine.optim import build_optim_wrapper
    cfg = shrink(load(name))
    model = build_model(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    id_to_name = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[id_to_name[id(p)]] = group['weight_decay']
    base = cfg.optim_wrapper.optimizer.weight_decay
    no_decay_keys = list(cfg.optim_wrapper.get('paramwise_cfg', {}).get('custom_keys', {}))
    checked = 0
    for pname, wd in decay.items():
        expected = 0. if any(k in pname for k in no_decay_keys) else base
        assert wd == pytest.approx(expected), (pname, wd)
        checked += 1
    assert checked == len(list(model.parameters()))
    if 'swin' in name and no_decay_keys:
        assert any('relative_position_bias_table' in n and wd == 0 for n, wd in decay.items())
    if no_decay_keys:
        assert any(n.startswith('backbone.') and 'norm' in n and wd == 0 for n, wd in decay.items())
        assert any(n.startswith('backbone.') and wd == base for n, wd in decay.items())
