#!/usr/bin/env python
"""Compare backbones on the same input: training step (forward + backward) and eval forward time, and peak memory.

All timed models live in ONE process and are run interleaved (model A, B, C, A, B, C, ...) so that machine load
drifts hit every model alike; each number is the median over ``--repeats`` runs after ``--warmup`` runs.

What users run is measured: ``--device cuda``, ``--amp bf16`` / ``fp16`` (``torch.autocast`` around the forward, as
mmengine's ``AmpOptimWrapper`` does) and ``--compile`` (every model through ``torch.compile``, first call timed
separately as the compile time; the warm-up then runs the compiled code). The first model is compared with the
faster peer of each mode, and the ratios are printed. Several precisions in one run (``--amp fp32 bf16``) time every
model x precision pair interleaved (one model instance per case, shared by its precisions), with a table row and
ratios per precision, plus each model's time in every precision relative to the first; bf16 where the device lacks
it (CPU: oneDNN without bf16 support; CUDA: ``torch.cuda.is_bf16_supported()`` false) is skipped, the reason printed.

Memory is measured per model in a fresh subprocess, on its first training step (with ``--compile``: on the
second, the first compiles):
  * CPU: the growth of the resident set size during the step (peak RSS ``VmHWM``, reset through
    ``/proc/self/clear_refs``, minus the RSS just before the step, the model and input already resident):
    activations kept for backward, gradients, and the temporaries alive at the peak. glibc returns large freed
    blocks to the OS, so RSS follows live tensors closely; it also counts allocator slack, alike for every model.
    After a compiling step, memory freed by it is reused without showing as growth: compiled CPU figures are
    lower bounds, comparable between compiled models only.
  * CUDA: ``torch.cuda.max_memory_allocated`` during one training step minus the allocation before it.

Weights: every model is re-initialised alike by module type (linear / conv weights truncated normal std 0.02,
their biases normal std 0.02, LayerNorms 1 / 0, every other parameter normal std 0.02), so that no model runs on
weights that favour it. Biases are not zero, as in trained checkpoints: with all-zero qkv biases the padded tokens
of shifted windows attend to exact zeros and masked windows produce subnormal floats, which slow CPU matrix
products by large factors, differently in each implementation.

Cases are a table ``name -> builder``; a builder returns an ``nn.Module`` mapping ``(B, 3, H, W)`` to a tensor or a
sequence of tensors. Add a case with ``@case('name')``; choose cases with ``--models``.

Examples::

    # CPU eager, batch 2 at 512 (a few minutes on 2 cores)
    python tools/analysis/benchmark_backbones.py --models mmswin_swin_t mmdet_swin_t timm_swin_t --repeats 5
    # Swin V2: SwinV2-T (window 8) against timm's swinv2_tiny_window8_256, batch 2 at 512
    python tools/analysis/benchmark_backbones.py --models mmswin_swinv2_t timm_swinv2_t --repeats 5
    # CPU eager, float32 and bfloat16 autocast side by side, batch 2 at 384
    python tools/analysis/benchmark_backbones.py --models mmswin_swin_t timm_swin_t --size 384 --amp fp32 bf16
    # CPU inductor, batch 2 at 384
    python tools/analysis/benchmark_backbones.py --models mmswin_swin_t timm_swin_t --size 384 --compile
    # GPU, bf16 autocast, compiled, batch 16 at 512 and batch 2 at 896x1344
    python tools/analysis/benchmark_backbones.py --device cuda --amp bf16 --compile --batch 16 --size 512
    python tools/analysis/benchmark_backbones.py --device cuda --amp bf16 --compile --batch 2 --size 896 1344

The README's whole GPU table (Swin-T and Shunted-S, both workloads, eager and compiled, after parity checks on the
GPU) is one command over these helpers: ``tools/analysis/gpu_report.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import TypeVar

import torch
from torch import nn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
AMP_DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}

CASES: dict[str, Callable[[], nn.Module]] = {}
DROP_PATH_RATE = 0.1  # mmdet's default for Swin; the same for every Swin case


def case(name: str) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Register a benchmark case: ``@case('name')`` over a function building the model."""
    def register(builder: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        CASES[name] = builder
        return builder
    return register


@case('mmswin_swin_t')
def build_mmswin_swin_t() -> nn.Module:
    from mmswin.models.backbones.swin import SwinTransformer
    return SwinTransformer('tiny', drop_path_rate=DROP_PATH_RATE)


@case('mmswin_swin_t_cp')
def build_mmswin_swin_t_cp() -> nn.Module:
    """with_cp=True: gradient checkpointing of every block (compare its peak memory with mmswin_swin_t)."""
    from mmswin.models.backbones.swin import SwinTransformer
    return SwinTransformer('tiny', drop_path_rate=DROP_PATH_RATE, with_cp=True)


@case('mmdet_swin_t')
def build_mmdet_swin_t() -> nn.Module:
    from mmdet.models.backbones import SwinTransformer
    return SwinTransformer(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7,
                           drop_path_rate=DROP_PATH_RATE)


class _TimmFeatures(nn.Module):
    """timm's features_only Swin returns NHWC maps; the NCHW permute (a view) keeps the outputs comparable."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [f.permute(0, 3, 1, 2) for f in self.model(x)]


@case('timm_swin_t')
def build_timm_swin_t() -> nn.Module:
    import timm
    height, width = (int(v) for v in os.environ.get('BENCH_SIZE', '512x512').split('x'))
    return _TimmFeatures(timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, features_only=True,
                                           img_size=(height, width), drop_path_rate=DROP_PATH_RATE))


@case('mmswin_swinv2_t')
def build_mmswin_swinv2_t() -> nn.Module:
    """SwinV2-T at window 8 (the swinv2_tiny_window8_256 ImageNet model)."""
    from mmswin.models.backbones.swin_v2 import SwinTransformerV2
    return SwinTransformerV2('tiny', window_size=8, drop_path_rate=DROP_PATH_RATE)


@case('timm_swinv2_t')
def build_timm_swinv2_t() -> nn.Module:
    """timm's swinv2_tiny_window8_256, features_only at the benchmark size (timm builds V2 for one input size)."""
    import timm
    height, width = (int(v) for v in os.environ.get('BENCH_SIZE', '512x512').split('x'))
    return _TimmFeatures(timm.create_model('swinv2_tiny_window8_256', pretrained=False, features_only=True,
                                           img_size=(height, width), drop_path_rate=DROP_PATH_RATE))


class _Pyramid(nn.Module):
    """The official Shunted port's ``forward_pyramid`` (outputs of norm1..norm4, NCHW) as ``forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_pyramid(x)


@case('shunted_s')
def build_shunted_s() -> nn.Module:
    from mmswin.models.backbones.shunted import ShuntedTransformer
    return ShuntedTransformer('small', drop_path_rate=DROP_PATH_RATE)


def load_shunted_reference() -> ModuleType:
    """tools/analysis/peers/shunted_official.py as a module (``build_reference``, ``randomize_``): not a package."""
    import importlib.util
    if 'shunted_official' not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'peers', 'shunted_official.py')
        spec = importlib.util.spec_from_file_location('shunted_official', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules['shunted_official'] = module
    return sys.modules['shunted_official']


@case('shunted_s_official')
def build_shunted_s_official() -> nn.Module:
    """tools/analysis/peers/shunted_official.py: the official computation op for op (explicit softmax attention)."""
    module = load_shunted_reference()
    return _Pyramid(module.build_reference('small', num_classes=0, drop_path_rate=DROP_PATH_RATE))


@torch.no_grad()
def reinit_(model: nn.Module, seed: int = 0) -> nn.Module:
    """The same kind of weights for every case (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)

    def normal_(t: torch.Tensor) -> None:
        t.copy_(torch.randn(t.shape, generator=gen).clamp_(-2, 2) * 0.02)

    done = set()
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            if module.weight is not None:
                module.weight.fill_(1.0)
                module.bias.zero_()
            done.update(id(p) for p in module.parameters(recurse=False))
    for p in model.parameters():
        if id(p) not in done:
            normal_(p)
    return model


def _outputs(out: torch.Tensor | Sequence[torch.Tensor] | dict) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    return list(out)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def autocast(device: torch.device, amp: str) -> Iterator[None]:
    """``torch.autocast`` to the ``--amp`` dtype (nothing for fp32)."""
    dtype = AMP_DTYPES[amp]
    with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
        yield


def train_step(model: nn.Module, x: torch.Tensor, amp: str = 'fp32') -> None:
    """One forward + backward; the loss touches every output so every output's graph is run backward."""
    model.zero_grad(set_to_none=True)
    with autocast(x.device, amp):
        loss = sum(o.float().mean() for o in _outputs(model(x)))
    loss.backward()


@torch.no_grad()
def eval_step(model: nn.Module, x: torch.Tensor, amp: str = 'fp32') -> None:
    with autocast(x.device, amp):
        model(x)


STEPS = {'train': train_step, 'eval': eval_step}
K = TypeVar('K', bound=Hashable)


def amp_unsupported_reason(device: torch.device | str, amp: str) -> str | None:
    """Why bf16 autocast cannot run usefully on ``device`` (None: it can, or ``amp`` is not bf16). CPU: oneDNN's own
    bf16 check (AVX512 BW/VL/DQ, AVX512-BF16 or AMX), what its bf16 kernels need; without it bf16 runs through slow
    reference kernels. fp16 is left to the run, as before."""
    device = torch.device(device)
    if amp != 'bf16':
        return None
    if device.type == 'cuda':
        return None if torch.cuda.is_bf16_supported() else f'{torch.cuda.get_device_name(device)} has no bfloat16'
    if device.type != 'cpu':
        return None
    if not torch.backends.mkldnn.is_available():
        return 'this torch build has no oneDNN (mkldnn), which the CPU bf16 kernels need'
    supported = getattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', None)
    if supported is not None and not supported():
        return 'oneDNN reports no bf16 support on this CPU (torch.ops.mkldnn._is_mkldnn_bf16_supported() is False)'
    return None


def cpu_bf16_features() -> str:
    """The CPU's native bf16 instructions, for the table's header (emulated through float32 without them)."""
    flags = []
    for label, fn in (('AVX512-BF16', '_is_avx512_bf16_supported'), ('AMX', '_is_amx_tile_supported')):
        check = getattr(torch.cpu, fn, None)
        if check is not None:
            flags.append(f'{label} {"yes" if check() else "no"}')
    return ', '.join(flags) or 'unknown'


_clock: Callable[[], float] = time.perf_counter  # --cpu-time: time.process_time


def build(name: str, args: argparse.Namespace) -> nn.Module:
    """The case, re-initialised, on the device; compiled (lazily: on its first call) with ``--compile``."""
    model = reinit_(CASES[name]()).to(args.device)
    return torch.compile(model) if args.compile else model


def _input(args: argparse.Namespace) -> torch.Tensor:
    return torch.randn(args.batch, 3, *args.size, device=args.device)


def time_built(entries: Mapping[K, tuple[nn.Module, str]], x: torch.Tensor, modes: Sequence[str], warmup: int,
               repeats: int) -> tuple[dict[K, dict[str, float]], dict[K, dict[str, float]]]:
    """Interleaved timing of built models: ``entries`` maps a key to ``(model, amp)``; every repeat runs every entry
    once, in order, so load drifts hit all alike. ``x``: the ``(B, 3, H, W)`` input, on the models' device.

    Returns:
        The median seconds per key and mode over ``repeats`` runs after the first call and ``warmup`` runs, and
        the seconds of each first call (the compile time of a compiled model).
    """
    times: dict = {k: {mode: [] for mode in modes} for k in entries}
    first_call: dict = {k: {} for k in entries}
    for mode in modes:
        step = STEPS[mode]
        for model, _ in entries.values():
            model.train(mode == 'train')  # mmdet's train() returns None: no chaining
        for r in range(1 + warmup + repeats):
            for k, (model, amp) in entries.items():
                _sync(x.device)
                t0 = _clock()
                step(model, x, amp)
                _sync(x.device)
                elapsed = _clock() - t0
                if r == 0:
                    first_call[k][mode] = elapsed
                elif r > warmup:
                    times[k][mode].append(elapsed)
    medians = {k: {mode: statistics.median(v) for mode, v in t.items()} for k, t in times.items()}
    return medians, first_call


def time_models(names: Sequence[str], args: argparse.Namespace) -> tuple[dict, dict]:
    """Median step times and first-call times, as ``result[amp][name][mode]``: every name x ``args.amp`` pair
    interleaved, one model instance per name shared by its precisions."""
    models = {n: build(n, args) for n in names}
    entries = {(n, amp): (models[n], amp) for n in names for amp in args.amp}
    medians, first_call = time_built(entries, _input(args), args.modes, args.warmup, args.repeats)

    def nest(flat: dict) -> dict:
        return {amp: {n: flat[n, amp] for n in names} for amp in args.amp}
    return nest(medians), nest(first_call)


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _peak_rss_bytes() -> int:
    """This process image's peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries that across ``exec`` from the
    forked parent, so a worker started by a large parent would report the parent's size."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0), so that a compiling warm-up step does not count."""
    with contextlib.suppress(OSError), open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def train_peak_bytes(model: nn.Module, x: torch.Tensor, amp: str = 'fp32') -> int:
    """The peak memory growth (bytes) of one training step of ``model`` on ``x`` (see the module docstring), the
    model's gradients freed first so that they count as in a first step. CUDA: allocator statistics, exact in a
    process holding other models too; CPU: RSS growth, meaningful only in a fresh process (``--memory-worker``)."""
    model.train()
    model.zero_grad(set_to_none=True)
    if x.device.type == 'cuda':
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        before = torch.cuda.memory_allocated(x.device)
        train_step(model, x, amp)
        torch.cuda.synchronize(x.device)
        return torch.cuda.max_memory_allocated(x.device) - before
    before = _rss_bytes()
    _reset_peak_rss()
    train_step(model, x, amp)
    return _peak_rss_bytes() - before


def memory_worker(name: str, args: argparse.Namespace) -> None:
    """Print the peak memory growth (bytes) of one training step of ``name``, in this fresh process."""
    amp = args.amp[0]
    model = build(name, args)
    model.train()  # mmdet's train() returns None: no chaining
    x = _input(args)
    if args.compile:
        train_step(model, x, amp)  # warm-up: compiles (memory the step itself does not need)
    print(json.dumps({'name': name, 'amp': amp, 'peak_bytes': train_peak_bytes(model, x, amp)}))


def measure_memory(names: Sequence[str], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Peak training memory per precision and model, ``peaks[amp][name]``, each in a fresh subprocess."""
    peaks: dict[str, dict[str, float]] = {}
    for amp in args.amp:
        for name in names:
            cmd = [sys.executable, os.path.abspath(__file__), '--memory-worker', name, '--batch', str(args.batch),
                   '--size', *map(str, args.size), '--device', args.device, '--threads', str(args.threads),
                   '--amp', amp] + (['--compile'] if args.compile else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            peaks.setdefault(amp, {})[name] = json.loads(out.strip().splitlines()[-1])['peak_bytes']
    return peaks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=['mmswin_swin_t', 'mmdet_swin_t', 'timm_swin_t'],
                        choices=sorted(CASES), help='cases to compare; the first is compared with the others')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, nargs='+', default=[512], metavar='SIDE',
                        help='input side (square) or height and width')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--amp', nargs='+', choices=sorted(AMP_DTYPES), default=['fp32'],
                        help='autocast dtype(s) of the forward (backward follows), as AmpOptimWrapper does; several '
                             '(e.g. fp32 bf16) are timed interleaved in one run, a row per model and precision')
    parser.add_argument('--compile', action='store_true', help='torch.compile every model (default options)')
    parser.add_argument('--freezing', action='store_true',
                        help="with --compile: inductor's freezing (weights folded as constants and prepacked; "
                             "Intel's CPU inference recipe); applies to eval only")
    parser.add_argument('--cpu-time', action='store_true',
                        help='time with the process CPU clock instead of the wall clock: on a shared machine with '
                             '--threads 1 this measures the work, not the waiting')
    parser.add_argument('--modes', nargs='+', choices=sorted(STEPS), default=['train', 'eval'])
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per model and mode (median reported)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs after the first call')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    parser.add_argument('--no-memory', action='store_true', help='skip the per-model memory subprocesses')
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--memory-worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if len(args.size) not in (1, 2):
        parser.error('--size takes one side or a height and a width')
    args.size = (args.size[0], args.size[-1])
    args.amp = list(dict.fromkeys(args.amp))  # in order, once each
    if args.freezing and not args.compile:
        parser.error('--freezing needs --compile')
    return args


def report(args: argparse.Namespace, times: dict, first_call: dict, peaks: dict,
           skipped: Mapping[str, str] | None = None) -> str:
    """The markdown table (a row per model and precision) and, per precision, the ratios of the first model against
    the faster peer of each mode; with several precisions also each model's time in each precision relative to the
    first. ``times[amp][name][mode]`` seconds, ``peaks[amp][name]`` bytes, ``skipped[amp]``: why it was not run."""
    first, peers = args.models[0], args.models[1:]
    amps = list(times)
    h, w = args.size
    lines = [f'# batch {args.batch} x 3 x {h} x {w}, {args.device}, {" + ".join(amps)}, '
             f'{("compiled + freezing" if args.freezing else "compiled") if args.compile else "eager"}, '
             f'{torch.get_num_threads()} threads, {"CPU" if args.cpu_time else "wall"} time, median of '
             f'{args.repeats} interleaved runs (torch {torch.__version__})']
    if torch.device(args.device).type == 'cpu' and 'bf16' in amps:
        lines.append(f'# CPU bf16 instructions: {cpu_bf16_features()}')
    lines += [f'# {amp} skipped: {why}' for amp, why in (skipped or {}).items()]
    lines += ['| model | precision | ' + ' | '.join(f'{m} (ms)' for m in args.modes)
              + (' | first call (s)' if args.compile else '') + ' | peak train memory (MiB) |',
              '| --- ' * (len(args.modes) + 3 + bool(args.compile)) + '|']
    for n in args.models:
        for amp in amps:
            peak = peaks.get(amp, {}).get(n)
            cells = [f'{times[amp][n][m] * 1e3:.1f}' for m in args.modes]
            if args.compile:
                cells.append(' / '.join(f'{first_call[amp][n][m]:.1f}' for m in args.modes))
            cells.append(f'{peak / 2 ** 20:.0f}' if peak is not None else '-')
            lines.append(f'| {n} | {amp} | ' + ' | '.join(cells) + ' |')
    for amp in amps:
        tag = f', {amp}' if len(amps) > 1 else ''
        for mode in args.modes if peers else ():
            best = min(peers, key=lambda n: times[amp][n][mode])
            lines.append(f'{first} {mode}{tag}: {times[amp][first][mode] / times[amp][best][mode]:.2f}x the faster '
                         f'peer ({best})')
        mem = peaks.get(amp, {})
        for n in peers:
            if n in mem and first in mem and mem[n] > 0:
                lines.append(f'{first} peak train memory{tag}: {mem[first] / mem[n]:.2f}x {n}')
    for amp in amps[1:]:
        for n in args.models:
            ratios = ', '.join(f'{mode} {times[amp][n][mode] / times[amps[0]][n][mode]:.2f}x' for mode in args.modes)
            lines.append(f'{n} {amp} / {amps[0]} time: {ratios}')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ['BENCH_SIZE'] = f'{args.size[0]}x{args.size[1]}'
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.freezing:
        torch._inductor.config.freezing = True
    if args.cpu_time:
        global _clock
        _clock = time.process_time
    if args.memory_worker:
        memory_worker(args.memory_worker, args)
        return 0
    skipped = {amp: why for amp in args.amp if (why := amp_unsupported_reason(args.device, amp))}
    for amp, why in skipped.items():
        print(f'skipping {amp}: {why}', file=sys.stderr)
    args.amp = [amp for amp in args.amp if amp not in skipped]
    if not args.amp:
        print('no precision left to measure', file=sys.stderr)
        return 1
    torch.manual_seed(0)
    times, first_call = time_models(args.models, args)
    peaks = {} if args.no_memory or 'train' not in args.modes else measure_memory(args.models, args)
    print(report(args, times, first_call, peaks, skipped))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), skipped=skipped, times=times, first_call=first_call, peak_bytes=peaks),
                      f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
