"""mmswin.SwinTransformer: output contract, parity with mmdet 3.3 and timm, checkpoint layouts, options."""
from __future__ import annotations

import copy
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import mmswin.models  # noqa: F401  (registers the backbones, installs safe loading)
from mmswin.models.backbones.swin import (SWIN_ARCHS, SwinBlock, SwinTransformer, convert_swin_state_dict,
                                          detect_swin_layout, official_to_unfold_order,
                                          resize_relative_position_bias_table, shift_window_mask,
                                          unfold_to_official_order, window_attention, window_partition,
                                          window_reverse, window_token_index)
from mmswin.models.pretrained import CheckpointMismatchError
from mmswin.registry import MODELS
from helpers import max_diff, randomize_

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))
ATOL = 1e-4


def _small(**kwargs) -> SwinTransformer:
    kwargs.setdefault('drop_path_rate', 0.0)
    return SwinTransformer(arch=SMALL, **kwargs).eval()


def _mmdet(**kwargs):
    from mmdet.models.backbones import SwinTransformer as MMDetSwin
    arch = kwargs.pop('arch', SMALL)
    kwargs.setdefault('drop_path_rate', 0.0)
    model = MMDetSwin(**arch, **kwargs)
    model.eval()  # mmdet's train() returns None
    return model


def _save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


def _load(model: SwinTransformer, checkpoint, **cfg) -> SwinTransformer:
    model.init_cfg = dict(type='Pretrained', checkpoint=checkpoint, **cfg)
    model.init_weights()
    return model


# ---------------------------------------------------------------------------------------------------------------
# Output contract
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('arch', list(SWIN_ARCHS))
def test_arch_presets_contract_and_size(arch):
    model = SwinTransformer(arch).eval()
    c = SWIN_ARCHS[arch]['embed_dims']
    assert model.out_channels == (c, 2 * c, 4 * c, 8 * c)
    assert model.out_strides == (4, 8, 16, 32)
    assert [f['num_chs'] for f in model.feature_info] == list(model.out_channels)
    assert [f['reduction'] for f in model.feature_info] == [4, 8, 16, 32]
    # ImageNet parameter counts of the paper (classifier head 8C x 1000 included), to the rounding of the table.
    head = 8 * c * 1000 + 1000
    out_norms = 2 * (c + 2 * c + 4 * c)  # norm0..2 are not in the classifier
    expected = {'tiny': 28e6, 'small': 50e6, 'base': 88e6, 'large': 197e6}[arch]
    n = sum(p.numel() for p in model.parameters()) - out_norms + head
    assert abs(n - expected) < 0.5e6, n
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 32, 40))
    assert [tuple(o.shape) for o in outs] == [(1, c, 8, 10), (1, 2 * c, 4, 5), (1, 4 * c, 2, 3), (1, 8 * c, 1, 2)]


@pytest.mark.parametrize('size', [(224, 224), (193, 251), (97, 131), (31, 45), (5, 7), (1, 1)])
def test_any_input_size(size):
    model = _small()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    h, w = size
    for i, out in enumerate(outs):
        s = 4 * 2 ** i
        assert tuple(out.shape) == (2, 32 * 2 ** i, math.ceil(h / s), math.ceil(w / s))
        assert out.is_contiguous() and torch.isfinite(out).all()


def test_out_indices_and_tiny_shapes_at_224():
    model = SwinTransformer('tiny', out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 192, 28, 28), (1, 768, 7, 7)]
    assert model.out_channels == (192, 768) and model.out_strides == (8, 32)
    assert not hasattr(model, 'norm0') and not hasattr(model, 'norm2')


def _reference_shift_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """mmdet's / the official region labelling with slices, as a reference for shift_window_mask."""
    hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
    region = torch.zeros(1, hp, wp, 1)
    bounds = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, h_slice in enumerate(bounds):
        for j, w_slice in enumerate(bounds):
            region[:, h_slice, w_slice, :] = 3 * i + j
    region = window_partition(region, ws).squeeze(-1)  # nW, N
    return region[:, None, :] != region[:, :, None]


@pytest.mark.parametrize('h,w', [(13, 22), (14, 14), (3, 5), (7, 7), (1, 1), (29, 8)])
def test_shift_window_mask_matches_the_official_region_labels(h, w):
    assert torch.equal(shift_window_mask(h, w, 7, 3), _reference_shift_mask(h, w, 7, 3))


def test_window_partition_round_trip():
    x = torch.randn(2, 14, 21, 4)
    windows = window_partition(x, 7)
    assert windows.shape == (12, 49, 4)
    assert torch.equal(windows[1], x[0, :7, 7:14].reshape(49, 4))  # row-major window order
    assert torch.equal(window_reverse(windows, 7, 14, 21), x)


@pytest.mark.parametrize('shifted', [False, True])
@pytest.mark.parametrize('grad', [False, True])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_window_attention_forms_agree(shifted, grad, dtype):
    """The explicit products and the SDPA call of window_attention (whichever the CPU picks) give SDPA's outputs
    and gradients, with the bias shared by all windows and the shift mask by the windows of every image."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(6, 2, 49, 8, generator=gen).to(dtype).requires_grad_(grad) for _ in range(3))
    bias = torch.randn(2, 49, 49, generator=gen).requires_grad_(grad)
    masked = (torch.rand(3, 49, 49, generator=gen) < 0.3) & ~torch.eye(49, dtype=torch.bool)  # no row fully masked
    shift_mask = torch.zeros(3, 49, 49).masked_fill_(masked, float('-inf')) if shifted else None
    full = bias.unsqueeze(0) + (shift_mask.unsqueeze(1).repeat(2, 1, 1, 1) if shifted else 0)  # 6, 2, 49, 49
    with torch.set_grad_enabled(grad):
        out = window_attention(q, k, v, bias, shift_mask, 8 ** -0.5)
        expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=full, scale=8 ** -0.5)
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    assert out.dtype == dtype and torch.allclose(out.float(), expected, atol=tol)
    if grad:
        grads = torch.autograd.grad(out.float().sum(), (q, bias))
        expected_grads = torch.autograd.grad(expected.sum(), (q, bias))
        for g, e in zip(grads, expected_grads):
            assert torch.allclose(g.float(), e.float(), atol=10 * tol, rtol=tol)


@pytest.mark.parametrize('h,w,shift', [(14, 14, 3), (13, 17, 3), (5, 9, 3), (20, 8, 0)])
def test_window_token_index_is_the_pad_roll_partition_layout(h, w, shift):
    """The gather indices reproduce pad + roll + window_partition, and send every token back where it came from."""
    tokens = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, h, w, 1)
    hp, wp = -(-h // 7) * 7, -(-w // 7) * 7
    windows = window_partition(torch.roll(F.pad(tokens, (0, 0, 0, wp - w, 0, hp - h)), (-shift, -shift), (1, 2)), 7)
    slot_token, token_window, token_slot = window_token_index(h, w, 7, shift)
    padded = torch.cat([tokens.view(-1), torch.zeros(1)])  # index h*w reads the zero padding
    assert torch.equal(padded[slot_token], windows.view(-1))
    assert torch.equal(windows.view(-1, 49)[token_window, token_slot], tokens.view(-1))


@pytest.mark.parametrize('size', [(61, 75), (224, 224), (5, 7)])
def test_inference_gather_layout_equals_the_training_layout(size):
    """Under no_grad the windows are gathered by index, with grads by pad / roll / views: same outputs."""
    model = randomize_(_small())
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        gathered = model(x)
    views = model(x)  # grad enabled: the view layout
    assert max_diff(gathered, [o.detach() for o in views]) < 1e-5


def test_an_mmseg_swin_config_works_with_only_the_type_changed(tmp_path):
    """mmseg's stock Swin backbone dict (embed_dims / depths / num_heads / strides / qk_scale / act_cfg / norm_cfg
    ...) builds our Swin-T with a deprecation warning; mmdet's ``pretrained=`` becomes the Pretrained init_cfg."""
    from mmengine.config import Config
    (tmp_path / 'user.py').write_text("_base_ = 'mmseg::_base_/models/upernet_swin.py'\n")
    backbone = dict(Config.fromfile(str(tmp_path / 'user.py')).model.backbone, type='mmswin.SwinTransformer')
    with pytest.warns(DeprecationWarning, match='embed_dims'):
        model = MODELS.build(backbone)
    assert model.arch == dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
    assert model.out_channels == (96, 192, 384, 768)
    with pytest.warns(DeprecationWarning):
        model = SwinTransformer(arch='base', depths=(2, 2, 2, 2), pretrained='x.pth')
    assert model.arch['embed_dims'] == 128 and model.arch['depths'] == (2, 2, 2, 2)
    assert model.init_cfg == dict(type='Pretrained', checkpoint='x.pth')
    with pytest.raises(ValueError, match='qk_scale'), pytest.warns(DeprecationWarning):
        SwinTransformer(arch=SMALL, qk_scale=0.1)
    with pytest.raises(TypeError, match='drop_path_rat'):
        SwinTransformer(arch=SMALL, drop_path_rat=0.1)


def test_no_derived_tensor_in_the_state_dict():
    model = _small()
    keys = set(model.state_dict())
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
        model(torch.randn(1, 3, 50, 70))
    assert set(model.state_dict()) == keys
    assert not any('relative_position_index' in k or 'mask' in k or 'position_major' in k for k in keys)


# ---------------------------------------------------------------------------------------------------------------
# Parity with mmdet 3.3 and timm on the same weights
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def mmdet_pair():
    ref = randomize_(_mmdet(window_size=7))
    ours = _small()
    ours.load_state_dict(convert_swin_state_dict(ref.state_dict()), strict=True)
    return ref, ours


@pytest.mark.parametrize('size', [(224, 224), (193, 251), (97, 131), (200, 334), (5, 7)])
def test_parity_with_mmdet(mmdet_pair, size):
    ref, ours = mmdet_pair
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        assert max_diff(ours(x), ref(x)) < ATOL


def test_training_gradients_match_mmdet(mmdet_pair):
    ref, ours = copy.deepcopy(mmdet_pair)
    ref.train()
    ours.train()
    x = torch.randn(2, 3, 97, 131)
    out_ref, out_ours = ref(x), ours(x)
    assert max_diff(out_ours, out_ref) < ATOL
    weights = [torch.randn_like(o) for o in out_ref]
    sum((o * w).sum() for o, w in zip(out_ref, weights)).backward()
    sum((o * w).sum() for o, w in zip(out_ours, weights)).backward()
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        expected = ref_params[name].grad
        assert (p.grad - expected).abs().max() <= 1e-4 * expected.abs().max() + 1e-6, name


def test_parity_with_mmdet_tiny_arch_through_detector_checkpoint(tmp_path):
    ref = randomize_(_mmdet(arch=dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))), seed=1)
    state = {f'backbone.{k}': v for k, v in ref.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    path = _save(dict(state_dict=state, meta=dict(epoch=12)), tmp_path / 'mask-rcnn.pth')
    ours = _load(SwinTransformer('tiny', drop_path_rate=0.0), path).eval()
    x = torch.randn(1, 3, 200, 250)
    with torch.no_grad():
        assert max_diff(ours(x), ref(x)) < ATOL


def test_parity_with_timm_when_every_map_exceeds_the_window():
    timm = pytest.importorskip('timm')
    ref = randomize_(timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, img_size=448,
                                       embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)), seed=2).eval()
    ours = _load(_small(), ref.state_dict())  # timm layout, classifier head included
    x = torch.randn(1, 3, 448, 448)
    with torch.no_grad():
        feats = ref.forward_intermediates(x, intermediates_only=True)  # NCHW, no norm
        final = ref.forward_features(x).permute(0, 3, 1, 2)  # timm's final norm on the last stage
        outs = ours(x)
    # norm0..2 are not in ImageNet checkpoints (identity LayerNorms); timm's final norm fills norm3.
    for i in range(3):
        expected = F.layer_norm(feats[i].permute(0, 2, 3, 1), (feats[i].shape[1],)).permute(0, 3, 1, 2)
        assert (outs[i] - expected).abs().max() < ATOL
    assert (outs[3] - final).abs().max() < ATOL


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint layouts
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def layouts(tmp_path_factory):
    """The same weights in every layout, each generated from a real reference where one exists.

    timm model state dict -> timm layout; official = timm with the documented renames (merging at the end of stage
    i, ``head.``) plus its derived buffers; mmdet layout = mmdet's own ``swin_converter`` of the official file loaded
    into mmdet's model (its state dict, output norms randomised), saved as a detector checkpoint; mmseg = the same
    weights through mmseg's model; mmpretrain = stages naming with the final norm as norm3 and a head; mmswin = our
    converter tool's output of the official file.
    """
    timm = pytest.importorskip('timm')
    from mmdet.models.backbones.swin import swin_converter
    from mmseg.models.backbones import SwinTransformer as MMSegSwin

    tmp = tmp_path_factory.mktemp('layouts')
    ref = randomize_(timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, embed_dim=32,
                                       depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)), seed=3)
    timm_sd = ref.state_dict()
    official = {}
    for k, v in timm_sd.items():
        k = k.replace('head.fc.', 'head.')
        parts = k.split('.')
        if k.startswith('layers.') and parts[2] == 'downsample':
            parts[1] = str(int(parts[1]) - 1)
        official['.'.join(parts)] = v
    for k, v in ref.named_buffers():  # relative_position_index, attn_mask: saved by the official code
        official[k] = v
    assert any(k.endswith('attn_mask') for k in official) and 'layers.0.downsample.reduction.weight' in official

    mmdet_model = _mmdet(window_size=7)
    converted = {k[len('backbone.'):]: v for k, v in swin_converter(official).items()}
    missing, unexpected = mmdet_model.load_state_dict(converted, strict=False)
    assert sorted(missing) == [f'norm{i}.{p}' for i in range(4) for p in ('bias', 'weight')]
    assert all(k.startswith('norm.') or k.endswith('attn_mask') for k in unexpected)
    with torch.no_grad():
        for i in range(4):
            getattr(mmdet_model, f'norm{i}').weight.normal_(1, 0.2)
            getattr(mmdet_model, f'norm{i}').bias.normal_(0, 0.2)
    mmdet_sd = mmdet_model.state_dict()
    mmseg_model = MMSegSwin(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))
    mmseg_model.load_state_dict(mmdet_sd, strict=True)  # same names: mmseg 1.x carries the same backbone
    mmpretrain = {k: v for k, v in mmdet_sd.items() if not k.startswith('norm')}
    mmpretrain.update({'norm3.weight': timm_sd['norm.weight'], 'norm3.bias': timm_sd['norm.bias'],
                       'head.fc.weight': timm_sd['head.fc.weight'], 'head.fc.bias': timm_sd['head.fc.bias']})

    files = {
        'official': _save(dict(model=official), tmp / 'swin_official.pth'),
        'timm': _save(timm_sd, tmp / 'swin_timm.pth'),
        'mmdet': _save(dict(state_dict={f'backbone.{k}': v for k, v in mmdet_sd.items()}), tmp / 'mmdet.pth'),
        'mmseg': _save(dict(state_dict={f'backbone.{k}': v for k, v in mmseg_model.state_dict().items()},
                            meta=dict(iter=160000)), tmp / 'mmseg.pth'),
        'mmpretrain': _save(dict(state_dict={f'{"head" if k.startswith("head") else "backbone"}.'
                                             f'{k[5:] if k.startswith("head") else k}': v
                                             for k, v in mmpretrain.items()}), tmp / 'mmpretrain.pth'),
    }
    files['mmswin'] = str(tmp / 'swin_mmswin.pth')
    subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'model_converters', 'swin2mmswin.py'),
                    files['official'], files['mmswin']], check=True, capture_output=True, cwd=REPO)
    return dict(files=files, timm=ref.eval(), mmdet=mmdet_model)


@pytest.mark.parametrize('layout,detected', [('official', 'official'), ('timm', 'timm'), ('mmdet', 'mmdet'),
                                             ('mmseg', 'mmdet'), ('mmpretrain', 'mmpretrain'),
                                             ('mmswin', 'mmpretrain')])
def test_every_layout_loads_strictly_to_the_same_weights(layouts, layout, detected):
    from mmswin.models.pretrained import read_state_dict

    path = layouts['files'][layout]
    assert detect_swin_layout(read_state_dict(path)) == detected
    ours = _load(_small(), path).state_dict()
    reference = _load(_small(), layouts['files']['official']).state_dict()
    mmdet_sd = layouts['mmdet'].state_dict()
    for key, value in ours.items():
        if key.startswith('norm') and layout in ('mmdet', 'mmseg'):
            assert torch.equal(value, mmdet_sd[key]), key  # the detector's own output norms
        else:  # ImageNet layouts: norm0..2 identity, norm3 = the final norm
            assert torch.equal(value, reference[key]), key
            assert torch.equal(value, mmdet_sd[key]) or key.startswith('norm'), key
    if layout not in ('mmdet', 'mmseg'):
        assert torch.equal(ours['norm0.weight'], torch.ones(32))
        assert not torch.equal(ours['norm3.weight'], torch.ones(256))


def test_official_layout_gives_mmdet_outputs(layouts):
    """The official ImageNet file: the maps of mmdet's backbone holding the same weights, whose output norms are
    what that file implies (norm0..2 identity, norm3 the final norm)."""
    ours = _load(_small(), layouts['files']['official'])
    reference = copy.deepcopy(layouts['mmdet'])
    official = torch.load(layouts['files']['official'], weights_only=True)['model']
    with torch.no_grad():
        for i in range(3):
            getattr(reference, f'norm{i}').weight.fill_(1)
            getattr(reference, f'norm{i}').bias.zero_()
        reference.norm3.weight.copy_(official['norm.weight'])
        reference.norm3.bias.copy_(official['norm.bias'])
        x = torch.randn(1, 3, 97, 131)
        assert max_diff(ours(x), reference(x)) < ATOL


def test_merging_order_round_trip():
    w = torch.randn(8, 16)
    assert torch.equal(unfold_to_official_order(official_to_unfold_order(w)), w)
    v = torch.randn(16)
    assert torch.equal(unfold_to_official_order(official_to_unfold_order(v)), v)
    # Unfold order: channel-major over (0,0),(0,1),(1,0),(1,1); official: [x(0,0) | x(1,0) | x(0,1) | x(1,1)].
    c = 4
    official = torch.arange(4 * c).float()  # position-major: position p, channel k -> p * c + k
    unfold = official_to_unfold_order(official)
    assert unfold[0 * 4 + 1].item() == 2 * c + 0  # channel 0 at Unfold position (0,1) = official x2
    assert unfold[3 * 4 + 2].item() == 1 * c + 3  # channel 3 at (1,0) = official x1


def test_window12_checkpoint_into_window7(tmp_path):
    src = randomize_(_mmdet(window_size=12), seed=4)
    state = {f'backbone.{k}': v for k, v in src.state_dict().items() if 'relative_position_index' not in k}
    path = _save(dict(state_dict=state), tmp_path / 'w12.pth')
    ours = _load(_small(window_size=7), path)
    # mmdet's own loader resizes the same way (bicubic over the (2w-1, 2w-1) grid)
    from mmengine.config import ConfigDict
    ref = _mmdet(window_size=7, init_cfg=ConfigDict(type='Pretrained', checkpoint=path))
    ref.init_weights()
    for key, value in ours.state_dict().items():
        assert torch.allclose(value, ref.state_dict()[key], atol=1e-6), key
    table = src.stages[0].blocks[0].attn.w_msa.relative_position_bias_table
    resized = ours.stages[0].blocks[0].attn.w_msa.relative_position_bias_table
    assert resized.shape == (169, 1)
    assert torch.allclose(resized, resize_relative_position_bias_table(table, 7))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert max_diff(ours(x), ref(x)) < ATOL


def test_checkpoint_errors(tmp_path, layouts):
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(ValueError, match='notes.pth.*not a readable torch checkpoint'):
        _load(_small(), str(text))
    resnet = {'conv1.weight': torch.zeros(64, 3, 7, 7), 'layer1.0.conv1.weight': torch.zeros(64, 64, 3, 3)}
    with pytest.raises(ValueError, match='not of a Swin Transformer'):
        _load(_small(), _save(dict(state_dict=resnet), tmp_path / 'resnet.pth'))

    from mmswin.models.pretrained import read_state_dict
    full = read_state_dict(layouts['files']['mmdet'])
    partial = {k: v for k, v in full.items() if k != 'stages.1.blocks.0.ffn.layers.1.weight'}
    partial['neck.extra'] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as err:
        _load(_small(), partial)
    assert 'stages.1.blocks.0.ffn.layers.1.weight' in str(err.value) and 'neck.extra' in str(err.value)
    # a checkpoint of another arch: the arch found and the model's, counts and the first keys of each kind
    with pytest.raises(CheckpointMismatchError) as err:
        _load(SwinTransformer(arch=dict(embed_dims=32, depths=(2, 2, 4, 2), num_heads=(1, 2, 4, 8))), full)
    msg = str(err.value)
    assert 'depths (2, 2, 2, 2)' in msg and 'the model is (embed_dims 32, depths (2, 2, 4, 2)' in msg
    assert '26 model keys not in the checkpoint: stages.2.blocks.2.' in msg and '(18 more)' in msg
    assert len(msg) < 2000
    with pytest.raises(CheckpointMismatchError, match='wrong shape'):
        _load(SwinTransformer(arch=dict(embed_dims=64, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))), full)
    with pytest.raises(CheckpointMismatchError, match=r"the model is arch 'tiny' \(embed_dims 96"):
        _load(SwinTransformer('tiny'), full)
    # strict=False loads the fitting keys
    model = _load(_small(), partial, strict=False)
    assert torch.equal(model.state_dict()['stages.0.blocks.0.norm1.weight'], full['stages.0.blocks.0.norm1.weight'])


def test_registry_and_config_build(tmp_path, layouts):
    from mmdet.registry import MODELS as MMDET_MODELS

    # _scope_: a default scope another test left current in this worker (e.g. 'mmdet') must not pick mmdet's class
    model = MODELS.build(dict(type='SwinTransformer', _scope_='mmswin', arch=SMALL, drop_path_rate=0.0,
                              init_cfg=dict(type='Pretrained', checkpoint=layouts['files']['timm'])))
    model.init_weights()
    assert isinstance(model, SwinTransformer)
    via_mmdet = MMDET_MODELS.build(dict(type='mmswin.SwinTransformer', arch='tiny'))
    assert isinstance(via_mmdet, SwinTransformer)
    with pytest.raises(ValueError, match='tiny, small, base, large'):
        MODELS.build(dict(type='SwinTransformer', _scope_='mmswin', arch='huge'))


# ---------------------------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 3, 4])
def test_frozen_stages_as_mmdet(frozen_stages):
    ours = _small(frozen_stages=frozen_stages, use_abs_pos_embed=True)
    ref = _mmdet(frozen_stages=frozen_stages, use_abs_pos_embed=True)
    ref.train()
    frozen = {n for n, p in ours.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, p in ref.named_parameters() if not p.requires_grad}
    expected = set()
    if frozen_stages >= 0:
        expected |= {n for n, _ in ours.named_parameters() if n.startswith(('patch_embed.', 'absolute_pos_embed'))}
    for i in range(max(frozen_stages, 0)):
        expected |= {n for n, _ in ours.named_parameters() if n.startswith((f'stages.{i}.', f'norm{i}.'))}
    assert frozen == expected
    ours.train()
    for name, module in ours.named_modules():
        is_frozen = any(p.requires_grad is False for p in module.parameters(recurse=False))
        if is_frozen and name:  # the root holds absolute_pos_embed and stays in training mode
            assert not module.training, name
    assert ours.stages[3].training == (frozen_stages < 4)
    if frozen_stages < 4:
        sum(o.mean() for o in ours(torch.randn(1, 3, 64, 64))).backward()
        assert all(p.grad is None for n, p in ours.named_parameters() if n in frozen)
        assert all(p.grad is not None for n, p in ours.named_parameters() if n not in frozen)


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = randomize_(_small(with_cp=False)).train()
    ckpt = copy.deepcopy(plain)
    for stage in ckpt.stages:
        for block in stage.blocks:
            block.with_cp = True
    x = torch.randn(2, 3, 61, 75)
    out_a, out_b = plain(x), ckpt(x)
    assert max_diff(out_a, out_b) == 0
    sum((o * o).mean() for o in out_a).backward()
    sum((o * o).mean() for o in out_b).backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-5), name


def test_every_parameter_gets_a_gradient():
    model = _small(drop_path_rate=0.2, drop_rate=0.1, attn_drop_rate=0.1, use_abs_pos_embed=True).train()
    sum(o.mean() for o in model(torch.randn(2, 3, 70, 90))).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='huge'), 'tiny, small, base, large'),
    (dict(arch=dict(embed_dims=32, depths=(2, 2))), 'embed_dims, depths, num_heads'),
    (dict(arch=dict(embed_dims=30, depths=(2, 2, 2, 2), num_heads=(4, 2, 4, 8))), 'num_heads'),
    (dict(out_indices=(4,)), 'out_indices'),
    (dict(out_indices=(2, 1)), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(frozen_stages=-2), 'frozen_stages'),
    (dict(window_size=0), 'window_size'),
    (dict(drop_path_rate=1.5), 'drop_path_rate'),
    (dict(pretrain_img_size=(224, 224, 3)), 'pretrain_img_size'),
    (dict(init_cfg=dict(type='Pretrained', path='x.pth')), 'init_cfg'),
])
def test_invalid_arguments(kwargs, match):
    kwargs.setdefault('arch', SMALL)
    with pytest.raises(ValueError, match=match):
        SwinTransformer(**kwargs)


def test_abs_pos_embed_resized_to_the_input(tmp_path):
    ref = randomize_(_mmdet(use_abs_pos_embed=True, pretrain_img_size=224), seed=5)
    path = _save(dict(state_dict={f'backbone.{k}': v for k, v in ref.state_dict().items()}), tmp_path / 'abs.pth')
    ours = _load(_small(use_abs_pos_embed=True, pretrain_img_size=224), path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert max_diff(ours(x), ref(x)) < ATOL  # at the pretraining size mmdet works
    grid = ours.absolute_pos_embed.detach().view(1, 56, 56, 32).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(40, 72), mode='bicubic', align_corners=False).flatten(2).transpose(1, 2)
    assert torch.allclose(ours._abs_pos_embed((40, 72)), expected)
    ours.train()
    outs = ours(torch.randn(1, 3, 160, 288))  # another size: mmdet fails here, we resize
    sum(o.mean() for o in outs).backward()
    assert ours.absolute_pos_embed.grad.abs().sum() > 0
    # a checkpoint made for another pretraining size is resized at load time
    other = _load(_small(use_abs_pos_embed=True, pretrain_img_size=192), path)
    assert other.absolute_pos_embed.shape == (1, 48 * 48, 32)


def test_bf16_autocast_forward_backward():
    model = randomize_(_small()).train()
    x = torch.randn(1, 3, 97, 131)
    reference = model(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    for out, ref in zip(outs, reference):
        assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
        assert (out.float() - ref).abs().mean() < 0.05 * ref.abs().mean()
    sum(o.float().mean() for o in outs).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_float32_residual_keeps_the_stream_float32_and_the_gradient_closer():
    """Same numbers in float32; under bf16 autocast every block reads and returns a float32 stream, and outputs and
    gradients come closer to float32's (measured over seeds 0-3: 0.80-0.84x the error without it)."""
    plain = randomize_(_small()).train()
    stream32 = _small(float32_residual=True).train()
    stream32.load_state_dict(plain.state_dict())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 64, 64, generator=gen)
    for out, ref in zip(stream32(x), plain(x)):
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
    weights = [torch.randn(out.shape, generator=gen) for out in plain(x)]

    def outputs_and_grad(model: SwinTransformer, bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            outs = model(x)
        sum((out.float() * w).sum() for out, w in zip(outs, weights)).backward()
        return torch.cat([o.float().flatten() for o in outs]), torch.cat([p.grad.flatten() for p in model.parameters()])

    seen = []
    hooks = [block.register_forward_hook(lambda m, args, out: seen.append((args[0].dtype, out.dtype)))
             for block in stream32.modules() if isinstance(block, SwinBlock)]
    out32, grad32 = outputs_and_grad(plain, bf16=False)
    out_plain, grad_plain = outputs_and_grad(plain, bf16=True)
    out_stream32, grad_stream32 = outputs_and_grad(stream32, bf16=True)
    for hook in hooks:
        hook.remove()
    assert len(seen) == 8 and set(seen) == {(torch.float32, torch.float32)}

    def error(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a - b).norm() / b.norm()).item()

    assert error(out_stream32, out32) < 0.92 * error(out_plain, out32)
    assert error(grad_stream32, grad32) < 0.92 * error(grad_plain, grad32)


def test_fp16_autocast_forward_if_the_cpu_supports_it():
    model = randomize_(_small()).eval()
    x = torch.randn(1, 3, 64, 80)
    try:
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.float16):
            outs = model(x)
    except RuntimeError as err:  # CPU kernels without half support
        pytest.skip(f'float16 autocast on CPU not supported here: {err}')
    with torch.no_grad():
        reference = model(x)
    for out, ref in zip(outs, reference):
        assert torch.isfinite(out).all()
        assert (out.float() - ref).abs().mean() < 0.05 * ref.abs().mean()


def test_five_stage_swin_of_the_rtmdet_p6_config_equals_mmdets(tmp_path):
    """mmdet's rtmdet_l_swin_b_p6 config builds a five-stage Swin-B (strides (4, 2, 2, 2, 2), a fifth stage for
    P6). Its backbone dict with only the type changed builds ours, and on the same weights (shrunk widths) the four
    returned maps equal mmdet's, also at sizes where the last stages are smaller than the window."""
    from mmengine.config import Config
    (tmp_path / 'user.py').write_text("_base_ = 'mmdet::rtmdet/rtmdet_l_swin_b_p6_4xb16-100e_coco.py'\n")
    stock = dict(Config.fromfile(str(tmp_path / 'user.py')).model.backbone)
    assert tuple(stock['strides']) == (4, 2, 2, 2, 2) and len(stock['depths']) == 5
    with pytest.warns(DeprecationWarning, match='strides'):
        full = MODELS.build(dict(stock, type='mmswin.SwinTransformer', init_cfg=None))
    assert full.num_stages == 5 and full.out_indices == (1, 2, 3, 4)
    assert full.out_channels == (256, 512, 1024, 2048) and full.out_strides == (8, 16, 32, 64)
    small = dict(stock, embed_dims=16, depths=(2, 2, 2, 2, 1), num_heads=(1, 2, 2, 4, 4), drop_path_rate=0.0,
                 init_cfg=None)
    small.pop('type')
    ref = randomize_(_mmdet(arch={}, **small), seed=6)
    with pytest.warns(DeprecationWarning):
        ours = MODELS.build(dict(small, type='mmswin.SwinTransformer')).eval()
    ours.load_pretrained(_save(dict(state_dict={f'backbone.{k}': v for k, v in ref.state_dict().items()}),
                               tmp_path / 'rtmdet_p6.pth'))
    for size in [(256, 320), (97, 131)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            assert max_diff(ours(x), ref(x)) < ATOL, size
    with pytest.raises(ValueError, match=r'strides=\(4, 2, 2, 2\).*\(4, 2, 2, 2, 2\) for this arch'):
        MODELS.build(dict(small, type='mmswin.SwinTransformer', strides=(4, 2, 2, 2)))
