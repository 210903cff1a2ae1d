"""mmswin.ShuntedTransformer: parity with the official computation, checkpoints, options, contract."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import mmswin.models  # noqa: F401  (registers the backbones, installs safe loading)
from mmswin.models.backbones.shunted import (ShuntedTransformer, convert_shunted_checkpoint, infer_shunted_arch)
from mmswin.models.pretrained import CheckpointMismatchError
from mmswin.registry import MODELS
from helpers import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATOL = 1e-4

_peer = load_tool('analysis/peers/shunted_official.py')  # the official computation, op for op
build_reference, randomize_ = _peer.build_reference, _peer.randomize_


def _pair(arch: str, seed: int = 0, **kwargs) -> tuple[nn.Module, ShuntedTransformer]:
    """A randomised official reference and our backbone loaded from its full state dict (classifier included)."""
    ref = randomize_(build_reference(arch), seed).eval()
    ours = ShuntedTransformer(arch, drop_path_rate=0.0, **kwargs)
    ours.load_pretrained(ref.state_dict())
    return ref, ours.eval()


def _max_diff(a: tuple[torch.Tensor, ...], b: list[torch.Tensor]) -> float:
    assert [t.shape for t in a] == [t.shape for t in b]
    return max((x - y).abs().max().item() for x, y in zip(a, b))


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine an OpenMP team whose other
    thread is descheduled stalls at every barrier (measured: 30x slower); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def tiny_pair():
    return _pair('tiny')


# ---------------------------------------------------------------------------------------------------------------
# parity with the official computation
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('hw, sizes', [
    ((224, 224), [(56, 56), (28, 28), (14, 14), (7, 7)]),
    ((97, 131), [(24, 33), (12, 17), (6, 9), (3, 5)]),
    ((200, 264), [(50, 66), (25, 33), (13, 17), (7, 9)]),
    ((32, 37), [(8, 9), (4, 5), (2, 3), (1, 2)]),
])
def test_parity_tiny(tiny_pair, hw, sizes):
    ref, ours = tiny_pair
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, expected = ours(x), ref.forward_pyramid(x)
    assert [tuple(t.shape[2:]) for t in out] == sizes
    assert [t.shape[1] for t in out] == [64, 128, 256, 512]
    assert all(t.is_contiguous() for t in out)
    assert _max_diff(out, expected) < ATOL


@pytest.mark.parametrize('arch, hw', [('small', (97, 131)), ('small', (200, 264)), ('base', (97, 131))])
def test_parity_small_base(arch, hw):
    ref, ours = _pair(arch, seed=3)
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert _max_diff(ours(x), ref.forward_pyramid(x)) < ATOL


def test_parity_in_training_mode_without_dropout():
    """train() keeps the stem BN in eval (norm_eval) and nothing else is stochastic without drop rates."""
    ref, ours = _pair('tiny', seed=4)
    ours.train()
    x = torch.randn(2, 3, 64, 64)
    out = ours(x)
    with torch.no_grad():
        assert _max_diff(tuple(t.detach() for t in out), ref.forward_pyramid(x)) < ATOL


def test_state_dict_is_the_official_layout():
    for arch in ('tiny', 'small', 'base'):
        ref_sd = build_reference(arch).state_dict()
        ours_sd = ShuntedTransformer(arch).state_dict()
        expected = {k: v.shape for k, v in ref_sd.items() if not k.startswith('head.')}
        assert {k: v.shape for k, v in ours_sd.items()} == expected, arch


def test_parameter_counts_match_the_paper_release():
    # shunted.md counts the backbone's state dict (parameters plus the stem BN statistics), head dropped
    for arch, total, params in (('tiny', 11_040_705, 11_040_576), ('small', 21_888_514, 21_888_256)):
        model = ShuntedTransformer(arch)
        assert sum(v.numel() for v in model.state_dict().values()) == total
        assert sum(p.numel() for p in model.parameters()) == params


# ---------------------------------------------------------------------------------------------------------------
# contract
# ---------------------------------------------------------------------------------------------------------------
def test_registry_and_output_contract():
    with pytest.raises(ValueError, match='out_indices must be increasing'):  # one rule for every family
        MODELS.build(dict(type='mmswin.ShuntedTransformer', arch='tiny', out_indices=(3, 1)))
    model = MODELS.build(dict(type='mmswin.ShuntedTransformer', arch='tiny', out_indices=(1, 3)))
    assert isinstance(model, ShuntedTransformer)
    assert model.out_channels == (128, 512) and model.out_strides == (8, 32)
    assert [(f['num_chs'], f['reduction'], f['module']) for f in model.feature_info] == [
        (64, 4, 'norm1'), (128, 8, 'norm2'), (256, 16, 'norm3'), (512, 32, 'norm4')]
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 96))
    assert [tuple(t.shape) for t in out] == [(1, 128, 8, 12), (1, 512, 2, 3)]
    for t, c, s in zip(out, model.out_channels, model.out_strides):
        assert t.shape[1] == c and t.shape[2] == 64 // s


def test_fpn_accepts_the_outputs():
    from mmdet.models.necks import FPN
    model = ShuntedTransformer('tiny').eval()
    fpn = FPN(in_channels=list(model.out_channels), out_channels=32, num_outs=5).eval()
    with torch.no_grad():
        outs = fpn(model(torch.randn(1, 3, 96, 128)))
    assert [tuple(t.shape[2:]) for t in outs] == [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2)]


def test_backward_reaches_every_parameter():
    model = ShuntedTransformer('tiny', drop_path_rate=0.1).train()
    sum(t.mean() for t in model(torch.randn(2, 3, 64, 64))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='huge'), "arch must be one of \\['base', 'small', 'tiny'\\]"),
    (dict(arch=dict(depths=[1, 1, 1, 1])), 'depths.*num_conv'),
    (dict(arch=dict(depths=[1, 1, 1], num_conv=0)), 'depths must be 4'),
    (dict(arch=dict(depths=[1, 1, 1, 1], num_conv=0, num_heads=[3, 4, 8, 16])), 'divisible'),
    (dict(out_indices=(0, 4)), 'out_indices'),
    (dict(out_indices=()), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages.*-1..4'),
    (dict(drop_path_rate=1.0), 'drop_path_rate'),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShuntedTransformer(**kwargs)


def test_arch_dict_and_aliases():
    custom = ShuntedTransformer(dict(depths=[1, 1, 1, 1], num_conv=1, embed_dims=[32, 64, 128, 256]))
    assert custom.out_channels == (32, 64, 128, 256)
    assert 'patch_embed1.conv.4.weight' in custom.state_dict()
    with torch.no_grad():
        assert custom.eval()(torch.randn(1, 3, 64, 64))[3].shape == (1, 256, 2, 2)
    assert ShuntedTransformer('S').depths == ShuntedTransformer('small').depths == (2, 4, 12, 1)


@pytest.mark.parametrize('hw', [(31, 64), (64, 16), (8, 8)])
def test_small_inputs_are_rejected(hw):
    with pytest.raises(ValueError, match='at least 32x32'):
        ShuntedTransformer('tiny')(torch.randn(1, 3, *hw))


# ---------------------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('layout', ['raw', 'model', 'state_dict', 'detector', 'no_head'])
def test_checkpoint_layouts_round_trip(tmp_path, tiny_pair, layout):
    ref, _ = tiny_pair
    sd = ref.state_dict()  # official layout with the classifier head.*
    obj = {'raw': sd, 'model': {'model': sd, 'epoch': 300}, 'state_dict': {'state_dict': sd},
           'detector': {'state_dict': {**{f'backbone.{k}': v for k, v in sd.items() if not k.startswith('head.')},
                                       'neck.lateral_convs.0.conv.weight': torch.zeros(8, 64, 1, 1)},
                        'meta': {'epoch': 12}},
           'no_head': {k: v for k, v in sd.items() if not k.startswith('head.')}}[layout]
    path = tmp_path / 'ckpt.pth'
    torch.save(obj, path)
    model = ShuntedTransformer('tiny', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert _max_diff(model.eval()(x), ref.forward_pyramid(x)) < ATOL


def test_pretrained_through_a_parent_init_weights(tmp_path, tiny_pair):
    """As in a detector: mmengine's BaseModule.init_weights of the parent reaches the backbone's own loader."""
    from mmengine.model import BaseModule
    ref, _ = tiny_pair
    path = tmp_path / 'ckpt.pth'
    torch.save({'model': ref.state_dict()}, path)

    class Detector(BaseModule):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = MODELS.build(dict(
                type='mmswin.ShuntedTransformer', arch='tiny',
                init_cfg=[dict(type='Constant', val=0.5, layer='Linear'),
                          dict(type='Pretrained', checkpoint=str(path))]))
            self.neck = nn.Conv2d(512, 8, 1)

    det = Detector()
    det.init_weights()
    assert det.backbone.is_init
    for k, v in det.backbone.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), k


def test_checkpoint_of_the_wrong_family_is_named(tmp_path):
    swin_like = {'patch_embed.proj.weight': torch.zeros(96, 3, 4, 4),
                 'layers.0.blocks.0.attn.relative_position_bias_table': torch.zeros(169, 3),
                 'layers.0.blocks.0.attn.qkv.weight': torch.zeros(288, 96)}
    path = tmp_path / 'swin.pth'
    torch.save({'model': swin_like}, path)
    model = ShuntedTransformer('tiny', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match='Swin Transformer checkpoint.*layers.0.blocks.0.attn.qkv'):
        model.init_weights()


def test_checkpoint_of_another_arch_names_arch_and_keys():
    small_sd = ShuntedTransformer('small').state_dict()
    model = ShuntedTransformer('tiny')
    with pytest.raises(CheckpointMismatchError) as err:
        model.load_pretrained(small_sd)
    msg = str(err.value)
    assert "arch 'small'" in msg and "model is arch 'tiny'" in msg
    assert '337 checkpoint keys not used: block1.1.attn.kv1.bias' in msg and '(329 more)' in msg
    assert '1 model keys not in the checkpoint: patch_embed1.conv.3.bias' in msg and len(msg) < 2000
    assert 'patch_embed1.conv.3.weight: checkpoint (64, 64, 3, 3) vs model (64, 64, 2, 2)' in msg
    # strict=False loads what fits and keeps the rest
    before = model.state_dict()['patch_embed1.conv.3.weight'].clone()
    model.load_pretrained(small_sd, strict=False)
    assert torch.equal(model.state_dict()['block3.0.attn.q.weight'], small_sd['block3.0.attn.q.weight'])
    assert torch.equal(model.state_dict()['patch_embed1.conv.3.weight'], before)


def test_missing_keys_are_reported():
    sd = ShuntedTransformer('tiny').state_dict()
    del sd['norm4.weight'], sd['block2.1.attn.local_conv2.bias']
    sd['block2.1.attn.extra'] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match='block2.1.attn.local_conv2.bias, norm4.weight'
                       '(.|\n)*block2.1.attn.extra'):
        ShuntedTransformer('tiny').load_pretrained(sd)


def test_conversion_is_pure_and_infers_arch():
    sd = build_reference('base').state_dict()
    keys = list(sd)
    out = convert_shunted_checkpoint(sd)
    assert list(sd) == keys and not any(k.startswith('head.') for k in out)
    assert infer_shunted_arch(out) == dict(depths=(3, 4, 24, 2), num_conv=2)


def _run_converter(*argv: str) -> int:
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'shunted2mmswin', os.path.join(REPO, 'tools', 'model_converters', 'shunted2mmswin.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(list(argv))


def test_converter_command(tmp_path, capsys):
    sd = randomize_(build_reference('tiny')).state_dict()
    src, dst = tmp_path / 'ckpt_T.pth', tmp_path / 'out' / 'shunted_t.pth'
    torch.save({'model': sd}, src)
    assert _run_converter(str(src), str(dst)) == 0
    assert 'Shunted tiny' in capsys.readouterr().out
    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['arch'] == 'tiny'
    assert set(converted['state_dict']) == {k for k in sd if not k.startswith('head.')}
    model = ShuntedTransformer('tiny', init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    assert torch.equal(model.state_dict()['block3.3.attn.kv1.weight'], sd['block3.3.attn.kv1.weight'])

    bad = tmp_path / 'bad.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'layer1.0.conv1.weight': torch.zeros(64, 64, 1, 1)}, bad)
    assert _run_converter(str(bad), str(tmp_path / 'x.pth')) == 1
    assert 'ResNet-style checkpoint' in capsys.readouterr().err
    assert not (tmp_path / 'x.pth').exists()


def test_converter_script_runs_as_a_command():
    script = os.path.join(REPO, 'tools', 'model_converters', 'shunted2mmswin.py')
    res = subprocess.run([sys.executable, script, '--help'], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0 and 'SRC' in res.stdout.upper()


# ---------------------------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------------------------
def _stage_prefixes(frozen_stages: int) -> tuple[str, ...]:
    if frozen_stages < 0:
        return ()
    prefixes = ['patch_embed1.']
    for i in range(1, frozen_stages + 1):
        prefixes += [f'patch_embed{i}.', f'block{i}.', f'norm{i}.']
    return tuple(prefixes)


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 3, 4])
def test_frozen_stages(frozen_stages):
    model = ShuntedTransformer('tiny', frozen_stages=frozen_stages, drop_path_rate=0.2, norm_eval=False)
    frozen = _stage_prefixes(frozen_stages)
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith(frozen)), name  # applied at construction
    model.train()
    for name, m in model.named_modules():
        if name and name.split('.')[0] + '.' in frozen:
            assert not m.training, name
        elif name:
            assert m.training, name
    outs = model(torch.randn(1, 3, 64, 64))
    if frozen_stages < 4:
        sum(t.sum() for t in outs).backward()
    for name, p in model.named_parameters():
        assert (p.grad is None) == name.startswith(frozen), name


def test_norm_eval_keeps_stem_statistics():
    for norm_eval in (True, False):
        model = ShuntedTransformer('tiny', norm_eval=norm_eval).train()
        bn = model.patch_embed1.conv[1]
        assert isinstance(bn, nn.BatchNorm2d) and bn.training == (not norm_eval)
        assert bn.weight.requires_grad  # affine still trains
        before = bn.running_mean.clone()
        model(torch.randn(2, 3, 64, 64))
        assert torch.equal(bn.running_mean, before) == norm_eval
        assert model.block1[0].training  # only batch norms are affected


def test_syncbn_norm_cfg_builds():
    model = ShuntedTransformer('small', norm_cfg=dict(type='SyncBN', requires_grad=True))
    bns = [m for m in model.patch_embed1.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 2 and all(isinstance(m, nn.SyncBatchNorm) for m in bns)
    assert set(model.state_dict()) == set(ShuntedTransformer('small').state_dict())
    model.train()  # norm_eval keeps them in eval, so a single process runs them
    assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 64, 16, 16)


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    # stochastic depth and dropout on: the recomputation must replay the same random draws
    plain = ShuntedTransformer('tiny', drop_path_rate=0.3, drop_rate=0.1).train()
    ckpt = ShuntedTransformer('tiny', drop_path_rate=0.3, drop_rate=0.1, with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    results = []
    for model in (plain, ckpt):
        torch.manual_seed(7)
        outs = model(x)
        sum((t * t).mean() for t in outs).backward()
        results.append(([t.detach() for t in outs], {n: p.grad for n, p in model.named_parameters()}))
    (o1, g1), (o2, g2) = results
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(o1, o2))
    for n in g1:
        assert torch.allclose(g1[n], g2[n], atol=1e-6, rtol=1e-4), n


def test_bf16_autocast_is_finite():
    model = ShuntedTransformer('tiny').train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(torch.randn(1, 3, 64, 64))
        loss = sum(t.float().mean() for t in outs)
    loss.backward()
    assert all(torch.isfinite(t.float()).all() for t in outs)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_explicit_attention_equals_sdpa():
    """The float32 CUDA path (explicit products, which use TF32) computes what the fused kernel computes."""
    from mmswin.models.backbones.shunted import explicit_attention
    q, k, v = torch.randn(2, 4, 50, 16), torch.randn(2, 4, 13, 16), torch.randn(2, 4, 13, 16)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(explicit_attention(q, k, v), expected, atol=1e-5)


def test_plus_depthwise_conv_equals_the_explicit_sum():
    """``x + dwconv(x)`` as one convolution (centre taps raised by one) in float32, fused with the GELU by oneDNN in
    CPU inference, an explicit add under autocast: the values and gradients of the explicit sum each time."""
    import torch.nn.functional as F
    from torch.profiler import profile

    from mmswin.models.backbones import shunted
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    hw = (5, 7)
    x = torch.randn(2, 35, 8, requires_grad=True)

    def explicit(gelu: bool) -> torch.Tensor:
        y = x + shunted.map_to_tokens(conv(shunted.tokens_to_map(x, hw)))[0]
        return F.gelu(y) if gelu else y

    for gelu in (False, True):
        expected = explicit(gelu)
        grads = torch.autograd.grad(expected.square().sum(), (x, conv.weight, conv.bias))
        out = shunted.plus_depthwise_conv(x, hw, conv, gelu)
        torch.testing.assert_close(out, expected)
        for got, want in zip(torch.autograd.grad(out.square().sum(), (x, conv.weight, conv.bias)), grads):
            torch.testing.assert_close(got, want)
        with torch.no_grad(), profile() as prof:
            torch.testing.assert_close(shunted.plus_depthwise_conv(x, hw, conv, gelu), expected.detach())
        fused = any('_convolution_pointwise' in e.name for e in prof.events())
        assert fused == (gelu and shunted._ONEDNN_CONV_GELU)  # the GELU inside oneDNN's convolution
        with torch.autocast('cpu', torch.bfloat16):
            low = shunted.plus_depthwise_conv(x, hw, conv, gelu)
        torch.testing.assert_close(low.float(), expected, atol=0.1, rtol=0.05)
    assert not shunted._fused_cpu_inference(x)  # gradients wanted: autograd needs the unfused ops
    with torch.no_grad(), torch.autocast('cpu', torch.bfloat16):
        assert not shunted._fused_cpu_inference(x)
