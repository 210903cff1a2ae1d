#!/usr/bin/env python
"""Compare backbones on the same input: training step (forward + backward) and eval forward time, and peak memory.

All timed models live in ONE process and are run interleaved (model A, B, C, A, B, C, ...) so that machine load
drifts hit every model alike; each number is the median over ``--repeats`` runs after ``--warmup`` runs.

Memory is measured per model in a fresh subprocess:
  * CPU: the growth of the resident set size during ONE training step (peak RSS ``VmHWM`` after the step minus the
    RSS just before it, the model and input already resident): activations kept for backward, gradients, and the
    temporaries alive at the peak. glibc returns large freed blocks to the OS, so RSS follows live tensors closely;
    it also counts allocator slack, alike for every model.
  * CUDA: ``torch.cuda.max_memory_allocated`` during one training step minus the allocation before it.

Weights: every model is re-initialised alike by module type (linear / conv weights truncated normal std 0.02,
their biases normal std 0.02, LayerNorms 1 / 0, every other parameter normal std 0.02), so that no model runs on
weights that favour it. Biases are not zero, as in trained checkpoints: with all-zero qkv biases the padded tokens
of shifted windows attend to exact zeros and masked windows produce subnormal floats, which slow CPU matrix
products by large factors, differently in each implementation.

Cases are a table ``name -> builder``; a builder returns an ``nn.Module`` mapping ``(B, 3, H, W)`` to a tensor or a
sequence of tensors. Add a case with ``@case('name')``; choose cases with ``--models``.

Example (on 2 shared CPU cores this takes a few minutes)::

    python tools/analysis/benchmark_backbones.py --models mmswin_swin_t mmdet_swin_t timm_swin_t --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

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
    size = int(os.environ.get('BENCH_SIZE', '512'))
    return _TimmFeatures(timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, features_only=True,
                                           img_size=size, drop_path_rate=DROP_PATH_RATE))


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


@case('shunted_s_official')
def build_shunted_s_official() -> nn.Module:
    """tests/reference/shunted_official.py: the official computation op for op (explicit softmax attention)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'shunted_official', os.path.join(ROOT, 'tests', 'reference', 'shunted_official.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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


def train_step(model: nn.Module, x: torch.Tensor) -> None:
    """One forward + backward; the loss touches every output so every output's graph is run backward."""
    model.zero_grad(set_to_none=True)
    loss = sum(o.float().mean() for o in _outputs(model(x)))
    loss.backward()


@torch.no_grad()
def eval_step(model: nn.Module, x: torch.Tensor) -> None:
    model(x)


def time_models(names: Sequence[str], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    device = torch.device(args.device)
    models = {n: reinit_(CASES[n]()).to(device) for n in names}
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    times: dict[str, dict[str, list[float]]] = {n: {'train': [], 'eval': []} for n in names}
    for mode, step in (('train', train_step), ('eval', eval_step)):
        for m in models.values():
            m.train(mode == 'train')
        for r in range(args.warmup + args.repeats):
            for n, m in models.items():
                _sync(device)
                t0 = time.perf_counter()
                step(m, x)
                _sync(device)
                if r >= args.warmup:
                    times[n][mode].append(time.perf_counter() - t0)
    return {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}


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


def memory_worker(name: str, args: argparse.Namespace) -> None:
    """Print the peak memory growth (bytes) of one training step of ``name``, in this fresh process."""
    device = torch.device(args.device)
    model = reinit_(CASES[name]()).to(device)
    model.train()  # mmdet's train() returns None: no chaining
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        train_step(model, x)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        before = _rss_bytes()
        train_step(model, x)
        peak = _peak_rss_bytes() - before
    print(json.dumps({'name': name, 'peak_bytes': peak}))


def measure_memory(names: Sequence[str], args: argparse.Namespace) -> dict[str, float]:
    peaks = {}
    for name in names:
        cmd = [sys.executable, os.path.abspath(__file__), '--memory-worker', name, '--batch', str(args.batch),
               '--size', str(args.size), '--device', args.device, '--threads', str(args.threads)]
        env = dict(os.environ, BENCH_SIZE=str(args.size))
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        peaks[name] = json.loads(out.strip().splitlines()[-1])['peak_bytes']
    return peaks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=['mmswin_swin_t', 'mmdet_swin_t', 'timm_swin_t'],
                        choices=sorted(CASES), help='cases to compare; the first is compared with the others')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, default=512, help='square input side')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per model and mode (median reported)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    parser.add_argument('--no-memory', action='store_true', help='skip the per-model memory subprocesses')
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--memory-worker', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ['BENCH_SIZE'] = str(args.size)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        memory_worker(args.memory_worker, args)
        return 0
    torch.manual_seed(0)
    times = time_models(args.models, args)
    peaks = {} if args.no_memory else measure_memory(args.models, args)
    first, peers = args.models[0], args.models[1:]
    print(f'# batch {args.batch} x 3 x {args.size} x {args.size}, device {args.device}, '
          f'{torch.get_num_threads()} threads, median of {args.repeats} interleaved runs')
    print('| model | train fwd+bwd (s) | eval fwd (s) | peak train memory (MiB) |')
    print('| --- | --- | --- | --- |')
    for n in args.models:
        mem = f'{peaks[n] / 2 ** 20:.0f}' if n in peaks else '-'
        print(f'| {n} | {times[n]["train"]:.3f} | {times[n]["eval"]:.3f} | {mem} |')
    if peers:
        for mode in ('train', 'eval'):
            best = min(peers, key=lambda n: times[n][mode])
            print(f'{first} {mode}: {times[first][mode] / times[best][mode]:.2f}x the faster peer ({best})')
        for n in peers:
            if n in peaks and first in peaks:
                print(f'{first} peak train memory: {peaks[first] / peaks[n]:.2f}x {n}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), times=times, peak_bytes=peaks), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
