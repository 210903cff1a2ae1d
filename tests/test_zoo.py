"""The model zoo beyond Mask R-CNN / UperNet-512: the sizes of the Cascade Mask R-CNN, RetinaNet and ImageNet-22K
UperNet configs, and Swin-L (window 12, the 22K weights' window) against mmdet 3.3 on the same weights.

Parameter counts do not depend on weights, so they are pinned exactly and checked against the published figures
(rounded to 1 M by their sources) within 2 %. FLOPs are measured with ``tools/analysis/get_flops.py`` (minutes per
config on a CPU), reported in the README model-zoo tables, not here.
"""
from __future__ import annotations

import os.path as osp

import pytest
import torch

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

import mmswin.models  # noqa: E402,F401
from mmswin.models.backbones.swin import (SwinTransformer, convert_swin_state_dict,  # noqa: E402
                                          detect_swin_layout, relative_position_index, shift_window_mask,
                                          unfold_to_official_order)

from helpers import max_diff as _max_diff, randomize_ as _randomize_  # noqa: E402


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO, 'configs')
ATOL = 1e-4

# config -> (parameters of the whole model, of the backbone), as built (random weights, SyncBN kept).
PARAMS = {
    'cascade_mask_rcnn_swin_t_fpn_1x_coco.py': (85_629_804, 27_520_698),
    'cascade_mask_rcnn_swin_t_fpn_3x_coco.py': (85_629_804, 27_520_698),
    'cascade_mask_rcnn_swin_s_fpn_3x_coco.py': (106_947_708, 48_838_602),
    'cascade_mask_rcnn_swin_b_fpn_3x_coco.py': (144_977_002, 86_745_016),
    'cascade_mask_rcnn_shunted_t_fpn_3x_coco.py': (69_026_802, 11_040_576),
    'cascade_mask_rcnn_shunted_s_fpn_3x_coco.py': (79_874_482, 21_888_256),
    'cascade_mask_rcnn_shunted_b_fpn_3x_coco.py': (97_087_602, 39_101_376),
    # Swin-T without stage 0's output norm (levels 1-3 out): 27_520_698 - 2 * 96
    'retinanet_swin_t_fpn_1x_coco.py': (38_458_606, 27_520_506),
    'retinanet_shunted_t_fpn_1x_coco.py': (21_274_164, 11_040_576),
    'retinanet_shunted_s_fpn_1x_coco.py': (32_121_844, 21_888_256),
    # window 12: larger relative position bias tables than window 7 (Swin-B: + 135_360)
    'upernet_swin_b_ade20k_640_22k.py': (121_415_076, 86_880_376),
    'upernet_swin_l_ade20k_640_22k.py': (233_962_976, 195_201_204),
    # Swin V2 (window 16, or 24 for the 22K configs: the continuous bias has the same size at every window)
    'mask_rcnn_swinv2_t_fpn_1x_coco.py': (47_853_402, 27_579_498),
    'mask_rcnn_swinv2_t_fpn_3x_coco.py': (47_853_402, 27_579_498),
    'mask_rcnn_swinv2_s_fpn_1x_coco.py': (69_234_666, 48_960_762),
    'mask_rcnn_swinv2_s_fpn_3x_coco.py': (69_234_666, 48_960_762),
    'mask_rcnn_swinv2_b_fpn_1x_coco.py': (107_292_392, 86_895_608),
    'mask_rcnn_swinv2_b_fpn_3x_coco.py': (107_292_392, 86_895_608),
    'cascade_mask_rcnn_swinv2_t_fpn_3x_coco.py': (85_688_604, 27_579_498),
    'cascade_mask_rcnn_swinv2_s_fpn_3x_coco.py': (107_069_868, 48_960_762),
    'cascade_mask_rcnn_swinv2_b_fpn_3x_coco.py': (145_127_594, 86_895_608),
    'upernet_swinv2_t_ade20k.py': (60_000_662, 27_579_498),
    'upernet_swinv2_s_ade20k.py': (81_381_926, 48_960_762),
    'upernet_swinv2_b_ade20k.py': (121_430_308, 86_895_608),
    'upernet_swinv2_b_ade20k_640_22k.py': (121_430_308, 86_895_608),
    'upernet_swinv2_l_ade20k_640_22k.py': (233_967_392, 195_205_620),
}
# Published SwinV2 ImageNet-1K classifier parameters, in M (official README): the backbone plus the 1000-class head.
PUBLISHED_CLASSIFIER_M = {'swinv2_t': 28, 'swinv2_s': 50, 'swinv2_b': 88, 'swinv2_l': 197}
# Published whole-model parameters, in M (Swin-Transformer-Object-Detection README: Cascade Mask R-CNN;
# Swin-Transformer README / paper Table 3: UperNet 22K). RetinaNet and the Shunted configs have none.
PUBLISHED_M = {
    'cascade_mask_rcnn_swin_t_fpn_1x_coco.py': 86,
    'cascade_mask_rcnn_swin_t_fpn_3x_coco.py': 86,
    'cascade_mask_rcnn_swin_s_fpn_3x_coco.py': 107,
    'cascade_mask_rcnn_swin_b_fpn_3x_coco.py': 145,
    'upernet_swin_b_ade20k_640_22k.py': 121,
    'upernet_swin_l_ade20k_640_22k.py': 234,
}
SWIN_L = dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48))


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('name', sorted(PARAMS))
def test_parameter_counts(name):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.model.backbone.init_cfg = None
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert (_count(model), _count(model.backbone)) == PARAMS[name]
    if name in PUBLISHED_M:
        assert abs(_count(model) / 1e6 / PUBLISHED_M[name] - 1) < 0.02
    v2 = next((k for k in PUBLISHED_CLASSIFIER_M if f'_{k}_' in name), None)
    if v2:
        classifier = _count(model.backbone) + model.backbone.num_features[-1] * 1001
        assert abs(classifier / 1e6 / PUBLISHED_CLASSIFIER_M[v2] - 1) < 0.02


def test_every_new_zoo_config_has_a_pinned_size():
    import glob
    names = {osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py'))}
    zoo = {n for n in names
           if n.startswith(('cascade_mask_rcnn_', 'retinanet_')) or n.endswith('_22k.py') or '_swinv2_' in n}
    assert zoo == set(PARAMS)


# ---------------------------------------------------------------------------------------------------------------
# Swin-L, window 12: parity with mmdet 3.3 and the official ImageNet-22K checkpoint layout
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def mmdet_swin_l():
    from mmdet.models.backbones import SwinTransformer as MMDetSwin
    model = MMDetSwin(**SWIN_L, window_size=12, pretrain_img_size=384, drop_path_rate=0.0)
    _randomize_(model, seed=7)
    model.eval()  # mmdet's train() returns None, so does its eval()
    return model


@pytest.mark.slow
def test_swin_large_window12_parity_with_mmdet(mmdet_swin_l):
    ours = SwinTransformer('large', window_size=12, pretrain_img_size=384, drop_path_rate=0.0).eval()
    assert ours.arch == SWIN_L
    ours.load_state_dict(convert_swin_state_dict(mmdet_swin_l.state_dict()), strict=True)
    # 97x131: every stage padded to the window (stages 3-4 smaller than one window);
    # 384x384 (the 22K pre-training size): every map a multiple of 12, no padding
    for size in [(97, 131), (384, 384)]:
        x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        with torch.no_grad():
            diff = _max_diff(ours(x), mmdet_swin_l(x))
        assert diff < ATOL, (size, diff)


def _official_layout(mmdet_state: dict[str, torch.Tensor], num_classes: int = 21841) -> dict[str, torch.Tensor]:
    """The mmdet weights under the key names of the official Microsoft release (as in
    swin_large_patch4_window12_384_22k.pth): ``layers.*``, ``attn.qkv`` / ``attn.proj``, ``mlp.fc1`` / ``mlp.fc2``,
    ``patch_embed.proj``, position-major merging order, the final ``norm`` (= norm3, no norm0..2), a 21841-class
    ``head`` and the derived buffers the official code saves (relative_position_index; attn_mask of the shifted
    blocks at the 384 input: stage maps 96 / 48 / 24 / 12, the last one a single window, so unshifted there)."""
    official: dict[str, torch.Tensor] = {}
    for key, value in mmdet_state.items():
        if key.startswith(('norm0.', 'norm1.', 'norm2.')):
            continue
        new = key.replace('patch_embed.projection.', 'patch_embed.proj.').replace('stages.', 'layers.')
        new = new.replace('.attn.w_msa.', '.attn.').replace('.ffn.layers.0.0.', '.mlp.fc1.')
        new = new.replace('.ffn.layers.1.', '.mlp.fc2.').replace('norm3.', 'norm.')
        if '.downsample.' in new:
            value = unfold_to_official_order(value)
        official[new] = value.clone()
    for stage, (depth, size) in enumerate(zip(SWIN_L['depths'], (96, 48, 24, 12))):
        for block in range(depth):
            prefix = f'layers.{stage}.blocks.{block}.attn'
            official[f'{prefix}.relative_position_index'] = relative_position_index(12)
            if block % 2 and size > 12:
                mask = shift_window_mask(size, size, 12, 6).float() * -100.0  # nW, 144, 144
                official[f'layers.{stage}.blocks.{block}.attn_mask'] = mask
    official['head.weight'] = torch.zeros(num_classes, 8 * SWIN_L['embed_dims'])
    official['head.bias'] = torch.zeros(num_classes)
    return official


@pytest.mark.slow
def test_official_22k_window12_checkpoint_loads_strictly_into_the_swin_l_config(mmdet_swin_l, tmp_path):
    mmdet_state = mmdet_swin_l.state_dict()
    official = _official_layout(mmdet_state)
    assert 'layers.0.downsample.reduction.weight' in official and 'layers.3.downsample.norm.weight' not in official
    assert detect_swin_layout(official) == 'official'
    path = tmp_path / 'swin_large_patch4_window12_384_22k.pth'
    torch.save(dict(model=official), path)
    del official

    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'upernet_swin_l_ade20k_640_22k.py'))
    assert osp.basename(cfg.model.backbone.init_cfg.checkpoint) == path.name
    cfg.model.backbone.init_cfg.checkpoint = str(path)
    init_default_scope(cfg.default_scope)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()  # strict: a missing, unexpected or mis-shaped key raises
    backbone.eval()

    ours = backbone.state_dict()
    expected = convert_swin_state_dict(mmdet_state)
    assert set(ours) == set(expected)
    for key, value in ours.items():
        if key.startswith(('norm0.', 'norm1.', 'norm2.')):  # not in ImageNet checkpoints: identity LayerNorms
            assert torch.equal(value, torch.ones_like(value) if key.endswith('weight') else torch.zeros_like(value))
        else:
            assert torch.equal(value, expected[key]), key
    x = torch.randn(1, 3, 97, 131, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the last level (final norm of the checkpoint = norm3) is mmdet's output
        assert (backbone(x)[3] - mmdet_swin_l(x)[3]).abs().max().item() < ATOL
