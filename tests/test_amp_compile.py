"""``--amp`` (bfloat16 on the CPU) and ``--compile`` of the tools, on the tiny demo configs and the demo photos.

* ``tools/train.py --amp`` on a CPU with native bfloat16 trains with ``Bf16OptimWrapper``: the layers of the dense
  parts compute in bfloat16 during training steps, their outputs and validation are float32, the log says so; a
  CPU without native bfloat16 is refused with one line and exit status 1 (train, test, infer).
* ``tools/train.py --compile`` compiles the dense parts (``CompileHook``) and trains a segmentor and a detector, with
  and without ``--amp``. The tests compile with the ``aot_eager`` backend: dynamo traces the same graphs (forward
  and backward) as with inductor, without inductor's C++ code generation, which takes minutes on 2 CPU cores;
  ``tests/test_compile.py`` runs inductor on the backbones.
* ``tools/test.py --amp`` and ``tools/infer.py --amp`` predict (nearly) what float32 predicts.

The ``--amp`` tests run on any CPU: where it has no native bfloat16, its bfloat16 matrix products are emulated in
float32 (``tools/analysis/emulate_bf16.py``: the same numbers up to summation order; the generic bfloat16 kernels
would take minutes), and the mmswin check for native bfloat16 is told yes. ``--compile --amp`` still needs native
bfloat16 (dynamo does not trace under the emulating dispatch mode).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

import mmswin.datasets.demo_data as demo_data_lib  # noqa: E402
import mmswin.engine.precision as precision  # noqa: E402
from mmswin.apis.errors import run_tool  # noqa: E402
from mmswin.engine import Bf16OptimWrapper  # noqa: E402
from helpers import load_tool  # noqa: E402


REPO = Path(__file__).resolve().parents[1]
train_tool = load_tool('train.py')
test_tool = load_tool('test.py')
infer_tool = load_tool('infer.py')
emulate_bf16 = load_tool('analysis/emulate_bf16.py')

SEG = 'upernet_swin_tiny_overfit.py'
DET = 'mask_rcnn_swin_tiny_overfit.py'
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU machine: --amp would run on the GPU')


@pytest.fixture
def bf16_cpu(monkeypatch):
    """This CPU with its native bfloat16, or, where it has none, with bfloat16 products emulated (see the module
    doc); yields the emulating mode (its ``counts``) or None."""
    if precision.cpu_bf16_instructions():
        yield None
        return
    monkeypatch.setattr(precision, 'cpu_bf16_instructions', precision.cpu_bf16_instructions)  # restored after
    emulate_bf16.claim_native_bf16()
    mode = emulate_bf16.Bf16ProductsInFloat32()
    with mode:
        yield mode


@pytest.fixture(scope='module')
def demo_data() -> dict[str, Path]:
    return demo_data_lib.prepare(REPO / 'data', log=lambda *_: None)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _options(config: str, data: dict[str, Path], iters: int, val: bool = True) -> list[str]:
    root = f'{data["seg"] if config == SEG else data["coco"]}/'
    options = [f'train_cfg.max_iters={iters}', f'train_dataloader.dataset.data_root={root}',
               f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
               'default_hooks.logger.interval=1', f'default_hooks.checkpoint.interval={iters}']
    if config == DET:
        options += [f'val_evaluator.ann_file={root}annotations/instances_val2017.json',
                    f'test_evaluator.ann_file={root}annotations/instances_val2017.json']
    if not val:
        options += ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
    return options


def _train_argv(config: str, work_dir: Path, data: dict[str, Path], *flags: str, iters: int = 3,
                val: bool = True) -> list[str]:
    return [str(REPO / 'configs/demo' / config), '--work-dir', str(work_dir), *flags,
            '--cfg-options', *_options(config, data, iters, val)]


def _log_text(work_dir: Path) -> str:
    logs = sorted(work_dir.glob('*/*.log'))
    assert logs, f'no log in {work_dir}'
    return logs[-1].read_text()


# ------------------------------------------------------------------------------------------------------ --amp


@no_gpu
def test_amp_trains_the_dense_parts_in_bf16(demo_data, tmp_path, bf16_cpu):
    from mmengine.runner import Runner
    args = train_tool.parse_args(_train_argv(SEG, tmp_path, demo_data, '--amp'))
    cfg = train_tool.setup_cfg(args)
    train_tool.check_inputs(cfg, args)
    runner = Runner.from_cfg(cfg)
    seen: dict[str, set] = {'train': set(), 'eval': set(), 'backbone out': set(), 'head out': set()}

    def layer_hook(module, inputs, output):
        seen['train' if module.training else 'eval'].add(output.dtype)

    def pooled_hook(module, inputs, output):
        seen['pooled ' + ('train' if module.training else 'eval')].add(output.dtype)

    def part_hook(name):
        def hook(module, inputs, output):
            seen[name].update(o.dtype for o in (output if isinstance(output, (list, tuple)) else [output]))
        return hook

    model = runner.model
    seen.update({'pooled train': set(), 'pooled eval': set()})
    pooled = {id(layer) for branch in precision.global_context_branches(model.decode_head)
              for layer in branch.modules()}
    assert pooled, 'the UperNet head has pyramid pooling branches'
    for part in (model.backbone, model.decode_head, model.auxiliary_head):
        for layer in part.modules():
            if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
                layer.register_forward_hook(pooled_hook if id(layer) in pooled else layer_hook)
    model.backbone.register_forward_hook(part_hook('backbone out'))
    model.decode_head.conv_seg.register_forward_hook(part_hook('head out'))
    runner.train()

    assert isinstance(runner.optim_wrapper, Bf16OptimWrapper)
    assert seen['train'] == {torch.bfloat16}, seen  # every Linear / Conv2d of the dense parts, in training steps,
    assert seen['pooled train'] == {torch.float32}, seen  # but those of the pyramid pooling branches
    assert seen['eval'] == {torch.float32}, seen  # validation stays float32, as with mmengine's AmpOptimWrapper
    assert seen['backbone out'] == {torch.float32}, seen  # outputs handed on in float32
    log = _log_text(tmp_path)
    assert 'mixed precision: bfloat16 autocast on the CPU (' in log
    assert 'for the dense parts (backbone, decode_head, auxiliary_head)' in log
    assert 'Iter(train) [3/3]' in log


@pytest.mark.parametrize('tool', ['train', 'test', 'infer'])
def test_amp_refused_on_a_cpu_without_bf16(tool, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(precision, 'cpu_bf16_instructions', lambda: [])
    config = str(REPO / 'configs/demo' / SEG)
    argv = {'train': [config, '--amp'], 'test': [config, str(tmp_path / 'x.pth'), '--amp'],
            'infer': [config, str(tmp_path / 'x.pth'), str(tmp_path), '--amp']}[tool]
    main = {'train': train_tool.main, 'test': test_tool.main, 'infer': infer_tool.main}[tool]
    assert run_tool(main, argv, prog=tool) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (f'{tool}: error: --amp on the CPU needs native bfloat16 instructions (AMX-BF16 or AVX512-BF16 '
                      'on x86, BF16 on ARM), which this CPU lacks (emulated bfloat16 is slower than float32): run '
                      'without --amp'), err
    assert 'Traceback' not in '\n'.join(err)


@pytest.mark.parametrize('native_bf16', [True, False], ids=['bf16-cpu', 'cpu-without-bf16'])
def test_demo_precision_choice(native_bf16, monkeypatch):
    """run_demo.py --precision: auto = bfloat16 where the CPU has it, else float32; bf16 insists; fp32 leaves the
    config alone. Each says what it chose."""
    from mmswin.apis import apply_precision, load_config
    from mmswin.engine import UnsupportedPrecisionError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(precision, 'cpu_bf16_instructions', lambda: ['AVX512-BF16'] if native_bf16 else [])
    config = str(REPO / 'configs/demo/upernet_swin_t_demo.py')
    cfg = load_config(config)
    assert apply_precision(cfg, 'fp32') == 'precision: float32 (--precision fp32)'
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'
    note = apply_precision(cfg, 'auto')
    if native_bf16:
        assert note.startswith('mixed precision: bfloat16 autocast on the CPU (AVX512-BF16)'), note
        assert cfg.optim_wrapper.type == 'Bf16OptimWrapper'
        assert apply_precision(load_config(config), 'bf16') == note
    else:
        assert note == 'precision: float32 (this CPU has no native bfloat16 instructions; --precision auto)'
        assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'
        with pytest.raises(UnsupportedPrecisionError, match='--precision bf16 on the CPU needs native bfloat16'):
            apply_precision(cfg, 'bf16')


# -------------------------------------------------------------------------------------------------- --compile


@pytest.mark.slow
@pytest.mark.parametrize('config', [SEG, DET], ids=['upernet', 'mask-rcnn'])
@pytest.mark.parametrize('amp', [False, True], ids=['fp32', 'bf16'])
def test_compile_trains(config, amp, demo_data, tmp_path):
    if amp and (not precision.cpu_bf16_instructions() or torch.cuda.is_available()):
        pytest.skip('--compile --amp on the CPU needs native bfloat16 (under the emulation of tools/analysis/'
                    'emulate_bf16.py dynamo compiles nothing: it does not trace while a dispatch mode is active)')
    flags = ['--compile'] + (['--amp'] if amp else [])
    argv = _train_argv(config, tmp_path, demo_data, *flags, val=False)
    argv += ['compile.backend=aot_eager']  # see the module doc
    train_tool.main(argv)
    log = _log_text(tmp_path)
    parts = 'backbone, decode_head, auxiliary_head' if config == SEG else 'backbone, neck, rpn_head'
    assert f"torch.compile with {{'backend': 'aot_eager'}}: {parts};" in log
    assert ('mixed precision: bfloat16' in log) == amp
    losses = [json.loads(line)['loss'] for line in
              next(tmp_path.glob('*/vis_data/scalars.json')).read_text().splitlines() if '"loss"' in line]
    assert len(losses) == 3 and all(np.isfinite(losses)), losses
    assert (tmp_path / 'iter_3.pth').is_file()
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] >= 3  # one graph per part at least


def test_compile_option_replaces_mmengines_whole_step_compile():
    """mmengine's compile=True compiles train_step with the optimizer step, which crashes under torch 2.14
    ('UserDefinedDictVariable' object has no attribute 'items'): --compile and a config's compile both become
    CompileHook, with the config's torch.compile options."""
    config = str(REPO / 'configs/upernet_swin_t_ade20k.py')
    cfg = train_tool.setup_cfg(train_tool.parse_args([config, '--compile']))
    assert cfg.compile is False
    assert [h for h in cfg.custom_hooks if h['type'] == 'CompileHook'] == [dict(type='CompileHook', options={})]
    cfg = train_tool.setup_cfg(train_tool.parse_args([config, '--cfg-options', 'compile.mode=max-autotune']))
    assert cfg.compile is False
    assert [h['options'] for h in cfg.custom_hooks if h['type'] == 'CompileHook'] == [dict(mode='max-autotune')]
    cfg = train_tool.setup_cfg(train_tool.parse_args([config]))
    assert not cfg.get('compile') and all(h['type'] != 'CompileHook' for h in cfg.custom_hooks)


def test_compiled_and_mixed_precision_parts_keep_state_dicts_and_copy():
    """Compiling / autocasting a part replaces its forward only: same state dict keys; a deep copy (an EMA model)
    runs its own weights; eval mode runs eagerly; the parts of a wrapped model (DDP, TTA) are found."""
    import copy

    from mmswin.engine.precision import _CompiledForward, compile_dense_parts, dense_parts, mixed_precision

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = torch.nn.Linear(4, 4)
            self.decode_head = torch.nn.Linear(4, 2)
            self.loss_layer = torch.nn.Linear(2, 1)

        def forward(self, x):
            return self.loss_layer(self.decode_head(self.backbone(x)))

    from torch._dynamo.testing import CompileCounter
    counter = CompileCounter()
    net = Net()
    keys = list(net.state_dict())
    assert compile_dense_parts(net, dict(backend=counter)) == ['backbone', 'decode_head']
    assert compile_dense_parts(net, dict(backend='eager')) == []  # idempotent
    x = torch.randn(3, 4)
    with mixed_precision(net, 'cpu', torch.bfloat16) as names:
        assert names == ['backbone', 'decode_head']
        y = net(x)
        assert y.dtype == torch.float32  # the part's bfloat16 output was handed on in float32
        assert net.backbone(x).dtype == torch.float32
    assert counter.frame_count == 2  # one graph per part
    assert list(net.state_dict()) == keys
    twin = copy.deepcopy(net)
    with torch.no_grad():
        twin.backbone.weight.mul_(2)
    assert not torch.allclose(twin(x), net(x))
    assert torch.allclose(twin.backbone(x), torch.nn.functional.linear(x, twin.backbone.weight, twin.backbone.bias))
    net.eval()
    frames = counter.frame_count
    net(x)
    assert counter.frame_count == frames  # eval mode runs eagerly
    assert isinstance(net.backbone.__dict__['forward'].forward, _CompiledForward)  # autocast outside the graph
    other = Net()
    with mixed_precision(other, 'cpu', torch.bfloat16):  # autocast first, compiled later: the same nesting
        pass
    assert compile_dense_parts(other, dict(backend='eager')) == ['backbone', 'decode_head']
    assert isinstance(other.backbone.__dict__['forward'].forward, _CompiledForward)
    holder = torch.nn.Module()
    holder.module = net
    assert [name for name, _ in dense_parts(holder)] == ['backbone', 'decode_head']


# ------------------------------------------------------------------------------------ test.py / infer.py --amp


@pytest.fixture(scope='module')
def seg_checkpoint(demo_data, tmp_path_factory) -> Path:
    """A tiny UperNet trained 20 iterations in float32 (enough for confident, stable predictions)."""
    work_dir = tmp_path_factory.mktemp('seg_ckpt')
    train_tool.main(_train_argv(SEG, work_dir, demo_data, iters=20, val=False))
    return work_dir / 'iter_20.pth'


@no_gpu
def test_test_tool_amp_agrees_with_fp32(seg_checkpoint, demo_data, tmp_path, bf16_cpu):
    config = str(REPO / 'configs/demo' / SEG)
    options = ['--cfg-options', f'test_dataloader.dataset.data_root={demo_data["seg"]}/']
    maps = {}
    for name, flags in (('fp32', []), ('bf16', ['--amp'])):
        out = tmp_path / name
        test_tool.main([config, str(seg_checkpoint), '--work-dir', str(tmp_path / f'wd_{name}'), '--out', str(out),
                        *flags, *options])
        maps[name] = {p.name: np.array(Image.open(p)) for p in sorted(out.glob('*.png'))}
    assert len(maps['fp32']) == 3 and maps['fp32'].keys() == maps['bf16'].keys()
    agreement = np.mean([(maps['fp32'][k] == maps['bf16'][k]).mean() for k in maps['fp32']])
    print(f'test.py --amp: {agreement:.2%} of the pixels labelled as in float32')
    assert agreement > 0.97, agreement
    assert 'mixed precision: bfloat16 autocast on the CPU' in _log_text(tmp_path / 'wd_bf16')


@no_gpu
def test_infer_tool_amp_agrees_with_fp32(seg_checkpoint, demo_data, tmp_path, bf16_cpu):
    config = str(REPO / 'configs/demo' / SEG)
    images = str(demo_data['seg'] / 'images/validation')
    records = {name: infer_tool.main([config, str(seg_checkpoint), images, '--out-dir', str(tmp_path / name),
                                      '--device', 'cpu', *flags])
               for name, flags in (('fp32', []), ('bf16', ['--amp']))}
    agreement = []
    for fp32, bf16 in zip(records['fp32'], records['bf16']):
        a, b = np.array(Image.open(fp32['label_map'])), np.array(Image.open(bf16['label_map']))
        assert a.shape == b.shape == (fp32['height'], fp32['width'])
        agreement.append((a == b).mean())
    print(f'infer.py --amp: {np.mean(agreement):.2%} of the pixels labelled as in float32')
    assert np.mean(agreement) > 0.97, agreement


@pytest.mark.slow
@no_gpu
def test_detector_amp_predicts_float32_boxes_close_to_fp32(demo_data, tmp_path, bf16_cpu):
    """Mask R-CNN under --amp: the RoI heads, box decoding and NMS get float32 (mmcv's CPU NMS / RoIAlign take
    nothing else); boxes, scores and masks come back float32, the confident boxes where float32 puts them."""
    train_tool.main(_train_argv(DET, tmp_path, demo_data, iters=20, val=False))
    config = str(REPO / 'configs/demo' / DET)
    images = str(demo_data['coco'] / 'val2017')
    records = {name: infer_tool.main([config, str(tmp_path / 'iter_20.pth'), images, '--out-dir',
                                      str(tmp_path / name), '--device', 'cpu', *flags])
               for name, flags in (('fp32', []), ('bf16', ['--amp']))}
    from mmdet.structures.bbox import bbox_overlaps
    matched = total = 0
    for fp32, bf16 in zip(records['fp32'], records['bf16']):
        ref = [r for r in fp32['instances'] if r['score'] >= 0.3]
        if not ref or not bf16['instances']:
            total += len(ref)
            continue
        ious = bbox_overlaps(torch.tensor([r['bbox'] for r in ref]),
                             torch.tensor([r['bbox'] for r in bf16['instances']]))
        matched += int((ious.max(dim=1).values > 0.8).sum())
        total += len(ref)
    print(f'infer.py --amp: {matched} of the {total} float32 boxes scoring >= 0.3 found (IoU > 0.8)')
    assert total > 0 and matched / total > 0.8, (matched, total)


def test_bf16_gradient_report_on_a_tiny_segmentor(tmp_path, capsys):
    """tools/analysis/bf16_gradients.py: one table row per step, finite errors, the float32 control row small, and
    a bfloat16 backbone far from exact (bfloat16 keeps 8 bits of mantissa)."""
    from helpers import tiny_seg_config
    config = tiny_seg_config(str(tmp_path / 'seg.py'), str(tmp_path))
    tool = load_tool('analysis/bf16_gradients.py')
    assert tool.main([config, '--size', '64', '--variants', 'backbone', '--no-drop-path']) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
    header, control, bf16 = table[0], table[2], table[3]
    assert 'backbone.stages.0' in header and 'decode_head' in header
    control_errors = [float(v) for v in control.strip('| ').split(' | ')[1:]]
    bf16_errors = [float(v) for v in bf16.strip('| ').split(' | ')[1:]]
    assert control.startswith('| float32, images rounded') and max(control_errors) < 0.1
    assert bf16.startswith('| bfloat16: backbone') and all(np.isfinite(bf16_errors)) and max(bf16_errors) > 1e-3
    assert tool.main([config, '--variants', 'head']) == 1  # an unknown part: one line, exit 1


def _ppm_input_gradient(ppm: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor, bf16: bool) -> torch.Tensor:
    x = x.detach().requires_grad_()
    with torch.autocast('cpu', torch.bfloat16, enabled=bf16):
        out = torch.cat(ppm(x), 1)
    (out.float() * weights).sum().backward()
    return x.grad


class _UperNetHeadOnly(torch.nn.Module):
    """A segmentor's dense part as mixed precision finds it: a real mmseg UPerHead as ``decode_head``."""

    def __init__(self) -> None:
        from mmseg.models import build_head
        super().__init__()
        self.decode_head = build_head(dict(
            type='UPerHead', in_channels=[8, 16, 32, 64], in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
            channels=32, num_classes=3, norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)))


def test_global_context_branches_stay_float32_under_mixed_precision():
    """UperNet's pyramid pooling branches pool to 1x1 ... 6x6 cells; on two similar images their BatchNorm gradient
    is an almost complete cancellation that bfloat16 turns into noise (measured here: 10-50 % off float32 on the
    input gradient). mixed_precision keeps them float32 -- the gradient is then exactly float32's -- and the rest of
    the head in bfloat16. Emulated bfloat16 is fine at this size."""
    from torch._dynamo.testing import CompileCounter

    from mmswin.engine.precision import (_Float32Forward, compile_dense_parts, global_context_branches,
                                         mixed_precision)

    torch.manual_seed(0)
    net = _UperNetHeadOnly().train()
    ppm = net.decode_head.psp_modules
    assert global_context_branches(net.decode_head) == list(ppm)
    x = torch.randn(1, 64, 12, 12) + 0.02 * torch.randn(2, 64, 12, 12)  # two nearly equal images' top maps
    weights = torch.randn(2, 4 * 32, 12, 12)
    reference = _ppm_input_gradient(ppm, x, weights, bf16=False)
    plain = _ppm_input_gradient(ppm, x, weights, bf16=True)
    feats = [torch.randn(2, c, s, s) for c, s in ((8, 48), (16, 24), (32, 12))] + [x]
    with mixed_precision(net, 'cpu', torch.bfloat16):
        assert all(isinstance(b.__dict__['forward'], _Float32Forward) for b in ppm)
        islands = _ppm_input_gradient(ppm, x, weights, bf16=True)
        with torch.autocast('cpu', torch.bfloat16):
            assert ppm[0](x).dtype == torch.float32 and net.decode_head.bottleneck(
                torch.randn(2, 64 + 4 * 32, 12, 12)).dtype == torch.bfloat16
        assert net.decode_head(feats).dtype == torch.float32
    error = float((plain - reference).norm() / reference.norm())
    assert error > 0.05, error  # the failure this guards against is real at this size
    torch.testing.assert_close(islands, reference)
    counter = CompileCounter()
    compile_dense_parts(net, dict(backend=counter, fullgraph=True))
    with mixed_precision(net, 'cpu', torch.bfloat16):  # the float32 branches trace into the head's one graph
        net.decode_head(feats).sum().backward()
    assert counter.frame_count == 1
    net.eval()  # without autocast the installed wrapper passes through
    torch.testing.assert_close(ppm[0](x), torch.nn.Sequential.forward(ppm[0], x), rtol=0, atol=0)


def test_gpu_amp_wrapper_keeps_global_context_branches_float32(monkeypatch):
    """On GPUs tools/train.py --amp trains with SkipNonFiniteAmpOptimWrapper: mmengine's autocast over the whole
    step, which alone would run the pyramid pooling branches in bfloat16 / float16. The wrapper installs the float32
    branches at its first step and says so. Run on the CPU (mmengine's autocast falls back to bfloat16 on the CPU);
    only the wrapper's CUDA check is bypassed."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module

    import mmswin.engine.optim_wrappers as wrappers_module
    monkeypatch.setattr(amp_module, 'is_cuda_available', lambda: True)
    torch.manual_seed(0)
    net = _UperNetHeadOnly().train()
    head = net.decode_head
    wrapper = wrappers_module.SkipNonFiniteAmpOptimWrapper(optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
                                                           dtype='bfloat16')
    seen = []
    monkeypatch.setattr(wrappers_module, 'print_log', lambda msg, **kwargs: seen.append(msg))
    x = torch.randn(2, 64, 12, 12)
    with torch.autocast('cpu', torch.bfloat16):
        assert head.psp_modules[0](x).dtype == torch.bfloat16  # nothing installed before the first step
    for _ in range(2):
        with wrapper.optim_context(net):
            assert torch.is_autocast_enabled('cpu')
            assert head.psp_modules[0](x).dtype == torch.float32
            assert head.bottleneck(torch.randn(2, 64 + 4 * 32, 12, 12)).dtype == torch.bfloat16
    assert len(seen) == 1 and 'global pooling branches of decode_head run in float32' in seen[0]  # once
    assert head.psp_modules[0](x).dtype == torch.float32  # outside autocast: as before


# ------------------------------------------------------------------------------ tools/analysis/emulate_bf16.py


def test_emulated_bf16_products_equal_the_bf16_kernels():
    """Each emulated product is the bfloat16 kernel's result up to summation order (one bfloat16 rounding step), in
    forward and backward; float32 products are left alone."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(37, 64, generator=gen), torch.randn(64, 29, generator=gen)
    batch_a, batch_b = torch.randn(3, 37, 64, generator=gen), torch.randn(3, 64, 29, generator=gen)
    image, weight = torch.randn(2, 8, 12, 12, generator=gen), torch.randn(16, 8, 3, 3, generator=gen)
    bias = torch.randn(29, generator=gen)

    def products(dtype: torch.dtype) -> list[torch.Tensor]:
        leaf = image.to(dtype).requires_grad_()
        conv_w = weight.to(dtype).requires_grad_()
        conv = torch.nn.functional.conv2d(leaf, conv_w, padding=1)
        conv.square().sum().backward()
        cast = [t.to(dtype) for t in (a, b, batch_a, batch_b, bias)]
        return [cast[0] @ cast[1], torch.addmm(cast[4], cast[0], cast[1]), torch.bmm(cast[2], cast[3]),
                torch.baddbmm(cast[4], cast[2], cast[3]), conv, leaf.grad, conv_w.grad]

    reference = products(torch.float64)
    native = products(torch.bfloat16)
    mode = emulate_bf16.Bf16ProductsInFloat32()
    with mode:
        emulated = products(torch.bfloat16)
        products(torch.float32)
    assert {name.split('.')[1] for name in mode.counts} == {'mm', 'addmm', 'bmm', 'baddbmm', 'convolution',
                                                             'convolution_backward'}, mode.counts
    for ref, nat, emu in zip(reference, native, emulated):
        assert emu.dtype == nat.dtype == torch.bfloat16
        scale = ref.abs().max().item()
        torch.testing.assert_close(emu.double(), nat.double(), rtol=1 / 64, atol=scale / 256)
        native_error = ((nat.double() - ref).norm() / ref.norm()).item()
        assert ((emu.double() - ref).norm() / ref.norm()).item() < 1.5 * native_error + 1e-3


def test_emulate_bf16_runs_a_script_with_amp_on_any_cpu(tmp_path, capsys, monkeypatch):
    script = tmp_path / 'probe.py'
    script.write_text('import sys, torch\n'
                      'from mmswin.engine.precision import autocast_dtype, describe_precision\n'
                      'dtype = autocast_dtype("cpu")\n'
                      'print(describe_precision("cpu", dtype), sys.argv[1:])\n'
                      'with torch.autocast("cpu", dtype=dtype):\n'
                      '    y = torch.nn.Linear(8, 4)(torch.randn(2, 8))\n'
                      'assert y.dtype == torch.bfloat16\n')
    monkeypatch.setattr(precision, 'cpu_bf16_instructions', precision.cpu_bf16_instructions)  # restored after
    assert emulate_bf16.main([str(script), '--flag', 'x']) == 0
    out = capsys.readouterr().out
    assert f'bfloat16 autocast on the CPU ({emulate_bf16.EMULATION}) [\'--flag\', \'x\']' in out
    assert "emulated bfloat16 products: {'aten.addmm.default': 1}" in out
