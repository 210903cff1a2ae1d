"""One contract, every family: each registered mmswin backbone (``mmswin.models.backbones.base.FAMILIES``) is run
through the same checks, the way timm tests every model with one parametrised suite. A new family only needs a
tiny arch in ``TINY`` below."""
from __future__ import annotations

import copy

import pytest
import torch

import mmswin.models  # noqa: F401  (registers the backbones)
from mmswin.models.backbones.base import FAMILIES, PyramidBackbone
from mmswin.models.pretrained import CheckpointMismatchError
from mmswin.registry import MODELS

TINY = {  # the smallest arch of each family that still has every stage
    'swin': dict(arch=dict(embed_dims=8, depths=(2, 1, 1, 1), num_heads=(1, 1, 2, 2)), window_size=3),
    'shunted': dict(arch=dict(depths=(1, 1, 1, 1), num_conv=0, embed_dims=(8, 16, 32, 32),
                              num_heads=(2, 2, 4, 4))),
    'swinv2': dict(arch=dict(embed_dims=8, depths=(2, 1, 1, 1), num_heads=(1, 1, 2, 2)), window_size=3),
}
FAMILY_NAMES = sorted(FAMILIES)


def _build(family: str, **kwargs) -> PyramidBackbone:
    cfg = dict(type=f'mmswin.{FAMILIES[family].__name__}', drop_path_rate=0.0, **TINY[family])
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_every_family_is_covered():
    assert {'swin', 'shunted', 'swinv2'} <= set(FAMILIES)
    assert set(FAMILIES) <= set(TINY), f'add a tiny arch for {sorted(set(FAMILIES) - set(TINY))} to TINY'


@pytest.mark.parametrize('family', FAMILY_NAMES)
@pytest.mark.parametrize('hw', [(64, 64), (97, 131), (70, 45)])
def test_shapes_strides_and_channels_at_odd_sizes(family, hw):
    model = _build(family).eval()
    assert model.num_stages == len(model.feature_info) == 4
    assert [f['reduction'] for f in model.feature_info] == [4, 8, 16, 32]
    assert model.out_indices == (0, 1, 2, 3)
    assert model.out_strides == tuple(f['reduction'] for f in model.feature_info)
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *hw))
    assert len(outs) == len(model.out_indices)
    for out, channels, stride in zip(outs, model.out_channels, model.out_strides):
        assert out.shape[:2] == (2, channels)
        for side, size in zip(out.shape[2:], hw):  # the family rounds up (padding) or down (convolutions)
            assert abs(side - size / stride) <= 1, (family, hw, out.shape, stride)


@pytest.mark.parametrize('family', FAMILY_NAMES)
def test_one_out_indices_rule(family):
    model = _build(family, out_indices=(1, 3))
    assert model.out_channels == tuple(model.feature_info[i]['num_chs'] for i in (1, 3))
    with torch.no_grad():
        assert [o.shape[1] for o in model.eval()(torch.randn(1, 3, 64, 64))] == list(model.out_channels)
    for bad in [(3, 1), (1, 1), (0, 4), (), (-1,)]:
        with pytest.raises(ValueError, match='out_indices must be increasing, distinct stage indices in 0..3'):
            _build(family, out_indices=bad)
    with pytest.raises(ValueError, match=r'frozen_stages must be an int in -1\.\.4'):
        _build(family, frozen_stages=5)
    with pytest.raises(ValueError, match=r'drop_path_rate must be in \[0, 1\)'):
        _build(family, drop_path_rate=1.5)


@pytest.mark.parametrize('family', FAMILY_NAMES)
def test_min_input_size_is_the_forward_s_limit(family):
    model = _build(family).eval()
    side = model.min_input_size
    with torch.no_grad():
        model(torch.randn(1, 3, side, side))
        if side > 1:
            with pytest.raises(ValueError, match='at least'):
                model(torch.randn(1, 3, side - 1, side))


@pytest.mark.parametrize('family', FAMILY_NAMES)
def test_frozen_stages_at_construction_and_after_train(family):
    counts = []
    for k in range(-1, 5):
        model = _build(family, frozen_stages=k).train()
        frozen_params = [n for n, p in model.named_parameters() if not p.requires_grad]
        counts.append(len(frozen_params))
        frozen_modules = model._frozen_modules()
        assert all(not m.training for m in frozen_modules), 'train() keeps the frozen parts in eval mode'
        in_frozen = {id(p) for m in frozen_modules for p in m.parameters()}
        assert all(id(p) in in_frozen or p.requires_grad for p in model.parameters())
        if k == -1:
            assert counts[-1] == 0 and not frozen_modules
        if k == 4:
            assert all(not p.requires_grad for p in model.parameters()), 'frozen_stages=num_stages freezes all'
    assert counts == sorted(counts) and counts[0] < counts[1] < counts[-1], counts


@pytest.mark.parametrize('family', FAMILY_NAMES)
def test_with_cp_gives_the_same_outputs_and_gradients(family):
    plain, checkpointed = _build(family).train(), _build(family, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    results = []
    for model in (plain, checkpointed):
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        results.append(([o.detach() for o in outs], {n: p.grad.clone() for n, p in model.named_parameters()}))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(a, b)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], msg=name)


@pytest.mark.parametrize('family', FAMILY_NAMES)
def test_float32_residual_keeps_every_block_s_stream_float32_under_autocast(family):
    plain, stream32 = _build(family).train(), _build(family, float32_residual=True).train()
    stream32.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for a, b in zip(plain(x), stream32(x)):  # float32: the same numbers
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for model, dtype in ((plain, torch.bfloat16), (stream32, torch.float32)):
        blocks = [m for m in model.modules() if type(m).__name__.endswith('Block')]
        seen = []
        hooks = [block.register_forward_hook(lambda m, args, out, seen=seen: seen.append((args[0].dtype, out.dtype)))
                 for block in blocks]
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs = model(x)
        for hook in hooks:
            hook.remove()
        assert len(seen) == len(blocks) >= 4 and set(seen) == {(dtype, dtype)}, (family, seen)
        sum(o.float().mean() for o in outs).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize('family', FAMILY_NAMES)
def test_strict_loading_reports_what_does_not_fit(family):
    source = _build(family)
    state = source.state_dict()
    target = _build(family)
    target.load_pretrained(state)  # its own layout loads strictly
    for name, value in target.state_dict().items():
        torch.testing.assert_close(value, state[name], msg=name)

    key = next(k for k in state if k.endswith('weight') and state[k].dim() == 2)
    missing = {k: v for k, v in state.items() if k != key}
    with pytest.raises(CheckpointMismatchError, match=f'1 model keys not in the checkpoint: {key}'):
        _build(family).load_pretrained(missing)
    extra = dict(copy.deepcopy(state), **{'stray.weight': torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError, match='1 checkpoint keys not used: stray.weight'):
        _build(family).load_pretrained(extra)
    loose = _build(family)
    loose.load_pretrained(missing, strict=False)  # the fitting keys, the rest keeps its initialisation
    other = next(k for k in missing if missing[k].dim() == 2)
    torch.testing.assert_close(loose.state_dict()[other], state[other])


@pytest.mark.parametrize('family', FAMILY_NAMES)
def test_described_and_exportable(family):
    model = _build(family)
    assert 'depths' in model.describe_arch()
    side = model.min_export_side()
    assert side >= model.min_input_size
    assert model.exportable_side(side) and not model.exportable_side(side - 1)
    assert model.export_rule
