"""mmswin.SwinTransformerV2: the maps of timm's Swin V2 on the same weights, every checkpoint layout loading strictly
to the same weights, window transfer, and the small-map rule."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

import mmswin.models  # noqa: F401  (registers the backbones)
from helpers import max_diff, randomize_
from mmswin.models.backbones.swin import official_to_unfold_order
from mmswin.models.backbones.swin_v2 import (SwinTransformerV2, convert_swin_v2_state_dict, detect_swin_v2_layout,
                                             log_spaced_coordinates)
from mmswin.models.pretrained import CheckpointMismatchError
from mmswin.registry import MODELS

timm = pytest.importorskip('timm')

ATOL = 1e-4
SMALL = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


def _timm(img_size, window_size: int = 8, pretrained_window_sizes=(0, 0, 0, 0), seed: int = 3):
    model = timm.create_model('swinv2_tiny_window8_256', pretrained=False, img_size=img_size, embed_dim=32,
                              depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=window_size,
                              pretrained_window_sizes=pretrained_window_sizes)
    return randomize_(model, seed=seed).eval()


def _timm_maps(model, x: torch.Tensor) -> list[torch.Tensor]:
    """timm's four stage maps, NCHW, through mmswin's output norms: the final norm for the last (it is norm3), a
    plain LayerNorm over the channels for the others (norm0..2 as an ImageNet file leaves them)."""
    maps = model.forward_intermediates(x, indices=4, norm=True, output_fmt='NCHW', intermediates_only=True)
    return [F.layer_norm(m.permute(0, 2, 3, 1), m.shape[1:2]).permute(0, 3, 1, 2) for m in maps[:3]] + maps[3:]


def _ours(checkpoint, **kwargs) -> SwinTransformerV2:
    model = SwinTransformerV2(arch=SMALL, drop_path_rate=0.0, init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
                              **kwargs)
    model.init_weights()
    return model.eval()


def _save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


def test_log_spaced_coordinates_match_the_paper():
    table = log_spaced_coordinates(8)
    assert table.shape == (15, 15, 2)
    assert torch.allclose(table[7, 7], torch.zeros(2))  # offset 0
    top = math.log2(9) / math.log2(8)  # the largest offset, 7 / 7 * 8, maps to log2(8 + 1) / log2(8)
    assert torch.allclose(table[14, 0], torch.tensor([top, -top]))
    # normalised by the pretrained window: offset 7 of a window-16 table equals offset 7 of the window-8 one
    assert torch.allclose(log_spaced_coordinates(16, 8)[15 + 7, 15], log_spaced_coordinates(8)[7 + 7, 7])


@pytest.mark.parametrize('size', [(256, 256), (512, 768)], ids=['square', 'wide'])
def test_maps_equal_timm_on_the_same_weights(tmp_path, size):
    """Every stage map larger than the window (the wide case) or the last one exactly the window (square: the
    window stays, the shift is dropped, as timm does)."""
    ref = _timm(size)
    ours = _ours(_save(ref.state_dict(), tmp_path / 'timm.pth'))
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        assert max_diff(ours(x), _timm_maps(ref, x)) < ATOL


@pytest.fixture(scope='module')
def layouts(tmp_path_factory):
    """The same random weights in every layout: timm's state dict; official = timm with the merging at the end of
    stage i, ``head.`` and the persistent buffers the official code saves; mmpretrain = stages naming, w_msa /
    ffn names, merging at the start of stage i+1 in nn.Unfold order, classifier prefixes."""
    tmp = tmp_path_factory.mktemp('v2_layouts')
    ref = _timm((256, 256))
    timm_sd = ref.state_dict()
    official = {}
    for key, value in timm_sd.items():
        parts = key.replace('head.fc.', 'head.').split('.')
        if key.startswith('layers.') and parts[2] == 'downsample':
            parts[1] = str(int(parts[1]) - 1)
        official['.'.join(parts)] = value
    for name, buf in ref.named_buffers():  # relative_coords_table, relative_position_index, attn_mask
        if buf is not None and not name.endswith('k_bias'):
            parts = name.split('.')
            official['.'.join(parts)] = buf
    mmpretrain = {}
    for key, value in timm_sd.items():
        if key.startswith('head'):
            mmpretrain[key.replace('head.fc.', 'head.fc.')] = value
            continue
        new = key.replace('patch_embed.proj.', 'patch_embed.projection.').replace('layers.', 'stages.')
        new = new.replace('.attn.', '.attn.w_msa.').replace('.mlp.fc1.', '.ffn.layers.0.0.')
        new = new.replace('.mlp.fc2.', '.ffn.layers.1.')
        if '.downsample.reduction.' in new:
            value = official_to_unfold_order(value)
        if new.startswith('norm.'):
            new = 'norm3.' + new[5:]
        mmpretrain[new] = value
    files = {
        'timm': _save(timm_sd, tmp / 'timm.pth'),
        'official': _save(dict(model=official), tmp / 'official.pth'),
        'mmpretrain': _save(dict(state_dict={(k if k.startswith('head') else f'backbone.{k}'): v
                                             for k, v in mmpretrain.items()}), tmp / 'mmpretrain.pth'),
    }
    ours = _ours(files['timm'])
    files['mmswin'] = _save(dict(state_dict={f'backbone.{k}': v for k, v in ours.state_dict().items()}),
                            tmp / 'detector.pth')
    return dict(files=files, timm=ref, official=official)


@pytest.mark.parametrize('layout', ['timm', 'official', 'mmpretrain', 'mmswin'])
def test_every_layout_loads_strictly_to_the_same_weights(layouts, layout):
    from mmswin.models.pretrained import read_state_dict
    path = layouts['files'][layout]
    assert detect_swin_v2_layout(read_state_dict(path)) == layout
    reference = _ours(layouts['files']['timm']).state_dict()
    loaded = _ours(path).state_dict()
    assert loaded.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(loaded[key], value), (layout, key)
    assert not torch.equal(reference['norm3.weight'], torch.ones(256))  # the final norm became norm3
    assert torch.equal(reference['norm0.weight'], torch.ones(32))  # the others stay identity


def test_official_layout_gives_timm_maps(layouts):
    ours = _ours(layouts['files']['official'])
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        assert max_diff(ours(x), _timm_maps(layouts['timm'], x)) < ATOL


def test_window_transfer_equals_timm_built_for_the_new_window(tmp_path):
    """Window-8 weights in a window-16 model with pretrained_window_size=8: the coordinate table is recomputed for
    16 and normalised by 8 (nothing interpolated), as timm builds it with the same sizes (SwinV2-T 8 -> 16)."""
    source = _timm((256, 256), window_size=8)
    path = _save(source.state_dict(), tmp_path / 'w8.pth')
    target = _timm((512, 512), window_size=16, pretrained_window_sizes=(8, 8, 8, 8))
    missing, unexpected = target.load_state_dict(source.state_dict(), strict=False)
    assert not unexpected and all('relative' in k or 'attn_mask' in k or 'k_bias' in k for k in missing)
    ours = _ours(path, window_size=16, pretrained_window_size=8)
    x = torch.randn(1, 3, 512, 512)
    with torch.no_grad():
        assert max_diff(ours(x), _timm_maps(target, x)) < ATOL
        plain = _ours(path, window_size=16)  # without the pretrained size the table is another one
        assert max_diff(plain(x), _timm_maps(target, x)) > 1e-3


def test_small_maps_shrink_the_window_and_drop_the_shift():
    model = SwinTransformerV2(arch=SMALL, window_size=8, drop_path_rate=0.0).eval()
    assert model.stages[0].window_for((64, 64)) == (8, 4)
    assert model.stages[0].window_for((8, 20)) == (8, 0)
    assert model.stages[0].window_for((5, 20)) == (5, 0)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 40, 72))  # maps 10x18, 5x9, 3x5, 2x3
    assert [tuple(o.shape[2:]) for o in outs] == [(10, 18), (5, 9), (3, 5), (2, 3)]
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('size', [(100, 137), (256, 256), (40, 72)])
def test_inference_gather_layout_equals_the_training_layout(size):
    """Under no_grad the windows are gathered by index, with grads by pad / roll / views: the same maps, padded and
    shifted windows (100x137: 25x35 map, window 8) and shrunken windows (40x72) included."""
    model = randomize_(SwinTransformerV2(arch=SMALL, window_size=8, drop_path_rate=0.0)).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        gathered = model(x)
    views = model(x)  # grad enabled: the view layout
    assert max_diff(gathered, [o.detach() for o in views]) < 1e-5


def test_a_v1_checkpoint_is_named_as_such(tmp_path):
    v1 = MODELS.build(dict(type='mmswin.SwinTransformer', arch=dict(SMALL), drop_path_rate=0.0))
    path = _save(v1.state_dict(), tmp_path / 'v1.pth')
    with pytest.raises(CheckpointMismatchError, match="Swin Transformer V1.*mmswin.SwinTransformer'"):
        _ours(path)


def test_strict_report_names_a_wrong_arch(tmp_path, layouts):
    model = SwinTransformerV2(arch=dict(SMALL, depths=(2, 2, 4, 2)), drop_path_rate=0.0,
                              init_cfg=dict(type='Pretrained', checkpoint=layouts['files']['timm']))
    with pytest.raises(CheckpointMismatchError, match=r'depths \(2, 2, 2, 2\).*the model is .*depths \(2, 2, 4, 2\)'):
        model.init_weights()


def test_conversion_is_pure_and_drops_derived_buffers(layouts):
    official = layouts['official']
    before = copy.copy(official)
    converted = convert_swin_v2_state_dict(official)
    assert official.keys() == before.keys()
    assert not any(k.endswith(('relative_coords_table', 'relative_position_index', 'attn_mask')) or
                   k.startswith('head') for k in converted)
    assert 'stages.0.downsample.reduction.weight' in converted and 'norm3.weight' in converted


def test_bf16_autocast_stays_close_to_float32(layouts):
    model = _ours(layouts['files']['timm'])
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        full = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            half = model(x)
    for a, b in zip(full, half):
        assert ((a - b.float()).norm() / a.norm()).item() < 0.05
