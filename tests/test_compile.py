"""torch.compile of both backbones: one graph (no break) in every mode and option, compiled results equal to eager,
and new input sizes that do not recompile every time (automatic dynamic shapes)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import mmswin.models  # noqa: F401
from mmswin.models.backbones.shunted import ShuntedTransformer
from mmswin.models.backbones.swin import SwinTransformer
from mmswin.models.backbones.swin_v2 import SwinTransformerV2

SWIN_SMALL = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
SHUNTED_SMALL = dict(depths=(1, 1, 1, 1), num_conv=0, embed_dims=(16, 32, 64, 64), num_heads=(2, 2, 4, 4))


def _swin(**kwargs) -> SwinTransformer:
    kwargs.setdefault('drop_path_rate', 0.1)  # per-block rates: must not become guards
    return SwinTransformer(arch=SWIN_SMALL, **kwargs)


def _shunted(**kwargs) -> ShuntedTransformer:
    return ShuntedTransformer(arch=SHUNTED_SMALL, **kwargs)


def _swinv2(**kwargs) -> SwinTransformerV2:
    kwargs.setdefault('drop_path_rate', 0.1)
    kwargs.setdefault('window_size', 4)
    return SwinTransformerV2(arch=SWIN_SMALL, **kwargs)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _explain(model: torch.nn.Module, x: torch.Tensor, train: bool, amp: torch.dtype | None):
    model.train(train)
    with torch.autocast('cpu', dtype=amp or torch.bfloat16, enabled=amp is not None):
        return torch._dynamo.explain(model)(x)


@pytest.mark.parametrize('build,size,options', [
    (_swin, (61, 75), {}),  # odd sizes: padding in the embedding, the windows and the merging
    (_swin, (5, 7), dict(use_abs_pos_embed=True)),  # below the window; the embedding resized
    (_swin, (64, 96), dict(with_cp=True, frozen_stages=2)),
    (_shunted, (61, 75), {}),
    (_shunted, (64, 96), dict(with_cp=True, frozen_stages=2)),
    (_swinv2, (61, 75), dict(pretrained_window_size=3)),  # odd sizes, small maps (shrunk windows), transfer
    (_swinv2, (64, 96), dict(with_cp=True, frozen_stages=2)),
], ids=['swin-odd', 'swin-below-window-abs-pos', 'swin-cp-frozen', 'shunted-odd', 'shunted-cp-frozen', 'swinv2-odd',
        'swinv2-cp-frozen'])
@pytest.mark.parametrize('train,amp', [(True, None), (False, None), (True, torch.bfloat16), (False, torch.float16)],
                         ids=['train', 'eval', 'bf16-train', 'fp16-eval'])
def test_one_graph_without_break(build, size, options, train, amp):
    explanation = _explain(build(**options), torch.randn(2, 3, *size), train, amp)
    assert explanation.graph_break_count == 0, [str(r.reason) for r in explanation.break_reasons]
    assert explanation.graph_count == 1


def _train_step(model: torch.nn.Module, x: torch.Tensor,
                params: torch.nn.Module) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    params.zero_grad(set_to_none=True)
    outs = model(x)
    sum((o * o).mean() for o in outs).backward()
    return [o.detach() for o in outs], {n: p.grad for n, p in params.named_parameters() if p.grad is not None}


@pytest.mark.slow
@pytest.mark.parametrize('build', [_swin, _shunted, _swinv2], ids=['swin', 'shunted', 'swinv2'])
def test_fullgraph_inductor_equals_eager(build):
    """Inductor (CPU) train step and eval: outputs and every gradient as in eager mode (1e-4)."""
    torch.manual_seed(0)
    # one block per stage but a shifted pair in stage 1 (compile time grows with the number of blocks)
    arch = dict(SHUNTED_SMALL) if build is _shunted else dict(SWIN_SMALL, depths=(2, 1, 1, 1))
    extra = dict(window_size=4) if build is _swinv2 else {}
    eager = type(build())(arch=arch, drop_path_rate=0.0, **extra).train()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, fullgraph=True)
    x = torch.randn(2, 3, 61, 75)
    out_e, grads_e = _train_step(eager, x, eager)
    out_c, grads_c = _train_step(compiled, x, compiled_model)
    assert grads_e.keys() == grads_c.keys() and len(grads_e) == len(list(eager.parameters()))
    for a, b in zip(out_e, out_c):
        assert (a - b).abs().max() < 1e-4
    for name, g in grads_e.items():
        assert (g - grads_c[name]).abs().max() <= 1e-4 * max(1.0, g.abs().max().item()), name
    eager.eval()
    compiled_model.eval()
    with torch.no_grad():
        for a, b in zip(eager(x), compiled(x)):
            assert (a - b).abs().max() < 1e-4


@pytest.mark.parametrize('build,sizes', [
    (_swin, [(256, 320), (289, 353), (417, 333)]),
    (_shunted, [(64, 96), (65, 99), (97, 131)]),
], ids=['swin', 'shunted'])
def test_new_sizes_compile_at_most_twice(build, sizes):
    """Automatic dynamic shapes: the second size compiles a shape-generic graph the third one reuses; with
    ``dynamic=True`` one graph serves every size. (A Swin map that fits one window along a side is a size-1
    dimension, which torch always specialises: sizes whose last stage is <= 7 tokens compile on their own.)"""
    model = build().train()
    for dynamic, expected in ((None, 2), (True, 1)):
        torch._dynamo.reset()
        counter = CompileCounter()
        compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=dynamic)
        for size in sizes:
            x = torch.randn(2, 3, *size)
            assert [o.shape for o in compiled(x)] == [o.shape for o in model(x)]
        assert counter.frame_count == expected, (dynamic, counter.frame_count)


def test_per_block_rates_and_modes_do_not_recompile():
    model = _swin(drop_path_rate=0.3).train()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    x = torch.randn(1, 3, 64, 64)
    for _ in range(3):
        compiled(x)
    assert counter.frame_count == 1


@pytest.mark.parametrize('build', [_swin, _shunted, _swinv2], ids=['swin', 'shunted', 'swinv2'])
def test_compile_option_compiles_the_backbone_in_place(build):
    plain = build(drop_path_rate=0.0).eval()
    counter = CompileCounter()
    compiled = build(drop_path_rate=0.0, compile=dict(backend=counter, fullgraph=True)).eval()
    compiled.load_state_dict(plain.state_dict())
    assert compiled.state_dict().keys() == plain.state_dict().keys()  # no `_orig_mod.` prefix
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():  # compiled: explicit attention products; eager float32 inference: SDPA
        for a, b in zip(plain(x), compiled(x)):
            assert torch.allclose(a, b, atol=1e-5)  # Swin V2's post-norm blocks: up to 8e-6 apart
    assert counter.frame_count == 1
    copy.deepcopy(compiled)  # EMA hooks and test-time wrappers deep-copy models
    with pytest.raises(ValueError, match='compile must be'):
        build(compile='yes')
