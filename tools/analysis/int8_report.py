#!/usr/bin/env python
"""Int8 for CPU inference, measured: static post-training quantization (PT2E, torchao's ``X86InductorQuantizer``)
against float32 and bfloat16, for the Swin-T backbone and, optionally, a whole UperNet segmentor.

Variants, each timed as the per-forward CPU time (``time.process_time()`` around one call, so that other jobs on a
shared machine do not inflate it), median of ``--repeats`` runs after the first call and ``--warmup`` runs, all
variants of a part run interleaved (A, B, C, A, B, C, ...) in one process, ``torch.set_num_threads(--threads)``
(1 by default: the CPU time is then the time of the single thread; with more threads it is their sum):

* ``fp32 eager`` -- the reference of every error figure;
* ``bf16 eager`` -- ``torch.autocast('cpu', torch.bfloat16)``;
* ``bf16 inductor`` -- ``torch.compile`` (inductor, default mode, static shapes) with
  ``torch._inductor.config.freezing = True`` (weights folded as constants, oneDNN weight prepacking), called under
  bf16 autocast;
* ``fp32 inductor`` (``--fp32-compiled``) -- the same without autocast: separates the compiler's gain from int8's;
* ``int8 inductor`` -- PT2E: ``torch.export.export(model, (x,)).module()`` -> ``prepare_pt2e`` with
  ``X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())`` (uint8 per-tensor affine
  activations from histogram observers, int8 per-channel symmetric weights) -> ``--calib-batches`` calibration
  forwards on random inputs (not the timed one) -> ``convert_pt2e`` -> ``torch.compile`` with freezing (inductor
  fuses the quantize / dequantize pairs into oneDNN int8 linear / conv kernels); activations between the quantized
  ops in float32 ("int8-mixed-fp32");
* ``int8+bf16 inductor`` -- the same converted graph compiled and called under bf16 autocast ("int8-mixed-bf16",
  Intel's recipe in the PyTorch / torchao tutorials).

The default x86 recipe quantizes convolutions and linear layers (plus max / avg pooling and concatenations fed by
them), not the attention's ``q @ k^T`` and ``attn @ v`` products (``torch.matmul`` is quantizable only when opted in
with ``set_function_type_qconfig``). Swin's patch-merging reductions stay in floating point too: they call
``F.linear`` on a column-permuted weight, a computed tensor rather than a parameter, which the quantizer does not
annotate. The table's ``quantized`` line counts the conv / linear ops that got int8 weights.

Error per variant, against ``fp32 eager`` on the same input: for every output map ``max|y - y32| / max|y32|`` (the
worst map is printed) and the relative L2 error ``||y - y32|| / ||y32||`` (the mean over the maps is printed); for
the segmentor also the share of pixels whose arg-max class differs. Random weights (linear / conv weights and all
biases normal with std 0.02, Layer / Batch / Group norms 1 and 0, every other parameter normal std 0.02) have no
outlier channels, which trained transformers do have and which per-tensor activation quantization handles worst:
the int8 errors here are a lower bound of those of a trained checkpoint.

Time: the first call of a compiled variant is its compile time (wall clock; inductor's C++ builds run in worker
processes that ``process_time`` does not see); the int8 rows add export, prepare, calibration and convert. By
default inductor's on-disk cache goes to a fresh temporary folder, so that compile times are cold-cache figures;
``--warm-cache`` keeps the default cache. On 2 shared cores, one thread, batch 2 at 384x384, the backbone run took
8 minutes (compiles 1.5-3 minutes each; ``--fp32-compiled`` adds one) and the segmentor run (``--repeats 3``) 8.5.

Parts: ``--parts backbone`` (Swin-T, ``SwinTransformer(arch='tiny', drop_path_rate=0.0)``, output: its four maps) and
``segmentor`` (the mmseg ``EncoderDecoder`` of ``--config``, default ``configs/upernet_swin_t_ade20k.py``, SyncBN
reverted to BN, in ``'whole'`` predict mode on normalised images, tensor output: ``encode_decode`` -> the logits at
the input size, as ``SegmentorPredictor`` of ``mmswin.apis.export`` exports it; the auxiliary head is not run).
A part whose export or quantization fails is reported with the error's last line and the other parts still run.

Needs ``torchao`` (0.18 for torch 2.14: ``pip install 'torchao==0.18.*' -c tools/constraints.txt``)::

    .venv/bin/python tools/analysis/int8_report.py                               # backbone, batch 2 at 384x384
    .venv/bin/python tools/analysis/int8_report.py --parts segmentor --repeats 3
    .venv/bin/python tools/analysis/int8_report.py --size 512 --batch 1 --fp32-compiled --json int8.json

Measured (2 shared cores of an AMD EPYC with AVX512-BF16 / VNNI, no AMX; torch 2.14.1, torchao 0.18.0; 1 thread,
batch 2 at 384x384; CPU ms per forward, speed-up vs the best bf16 variant, mean relative L2 error vs fp32):

* Swin-T backbone: fp32 eager 1065; bf16 eager 519; bf16 inductor 398 (1.00x, 7.9e-3); int8 inductor 363
  (1.09x, 1.5e-2); int8+bf16 inductor 271 (1.47x, 1.7e-2, worst-map max error 6.0e-2 vs bf16's 1.5e-2);
* UperNet + Swin-T, logits: fp32 eager 6517; bf16 eager 3432 (1.00x, 8.2e-3, 1.7% of pixels change class); bf16
  inductor 4008 (0.86x); int8 inductor 2158 (1.59x, 2.3e-2); int8+bf16 inductor 1914 (1.79x, 2.5e-2, 4.3% of
  pixels change class).

The decision line says whether the fastest int8 variant is at least ``--min-speedup`` (1.3) times as fast as the
fastest bf16 variant with a mean relative L2 error of at most ``--max-rel-l2`` (2%).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--parts', nargs='+', choices=('backbone', 'segmentor'), default=['backbone'])
    parser.add_argument('--config', default=os.path.join(ROOT, 'configs', 'upernet_swin_t_ade20k.py'),
                        help='segmentor config (part "segmentor")')
    parser.add_argument('--size', type=int, nargs='+', default=[384], metavar='SIDE', help='H [W]; default 384')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per variant (median)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs per variant after the first call')
    parser.add_argument('--threads', type=int, default=1, help='torch.set_num_threads; also what inductor compiles for')
    parser.add_argument('--calib-batches', type=int, default=3, help='calibration forwards (random inputs)')
    parser.add_argument('--fp32-compiled', action='store_true', help='also time fp32 under inductor with freezing')
    parser.add_argument('--no-int8-bf16', action='store_true', help='skip the int8 + bf16 autocast variant')
    parser.add_argument('--warm-cache', action='store_true',
                        help="use inductor's default on-disk cache (compile times are then warm-cache figures)")
    parser.add_argument('--min-speedup', type=float, default=1.3, help='decision: int8 vs the best bf16 variant')
    parser.add_argument('--max-rel-l2', type=float, default=0.02, help='decision: mean relative L2 error of int8')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the measurements to this file')
    args = parser.parse_args(argv)
    if len(args.size) not in (1, 2):
        parser.error('--size takes one or two values (H [W])')
    args.hw = (args.size[0], args.size[-1])
    return args


ARGS: argparse.Namespace  # the command line, set by main()

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f'[int8_report {time.perf_counter() - T0:6.0f}s] {msg}', file=sys.stderr, flush=True)


def last_line(exc: BaseException) -> str:
    """The key line of an error: its type and the last non-empty line of its message."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f'{type(exc).__name__}: {lines[-1].strip() if lines else ""}'[:400]


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------
def reinit_(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial random weights, alike for every run: linear / conv weights and biases normal std 0.02, norms'
    weight 1 and bias 0, every other parameter normal std 0.02; norm running statistics 0 / 1."""
    gen = torch.Generator().manual_seed(seed)
    norms = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)
    done: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
                module.weight.normal_(0.0, 0.02, generator=gen)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.02, generator=gen)
            elif isinstance(module, norms):
                if getattr(module, 'weight', None) is not None:
                    module.weight.fill_(1.0)
                if getattr(module, 'bias', None) is not None:
                    module.bias.zero_()
                if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
                    module.reset_running_stats()
            else:
                continue
            done.update(id(p) for p in module.parameters(recurse=False))
        for p in model.parameters():
            if id(p) not in done:
                p.normal_(0.0, 0.02, generator=gen)
    return model


def build_backbone() -> nn.Module:
    from mmswin.models.backbones.swin import SwinTransformer
    return SwinTransformer(arch='tiny', drop_path_rate=0.0).eval()


class SegmentorLogits(nn.Module):
    """An mmseg ``EncoderDecoder`` in ``'whole'`` predict mode on normalised images, tensor output:
    ``(B, 3, H, W)`` -> logits ``(B, classes, H, W)`` (``encode_decode``: backbone, neck, decode head, resize)."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: Tensor) -> Tensor:
        return self.segmentor.encode_decode(inputs, [dict(img_shape=inputs.shape[2:])])


def build_segmentor(config: str) -> nn.Module:
    from mmswin.apis.export import load_config, segmentor_from_config
    return SegmentorLogits(segmentor_from_config(load_config(config))).eval()


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------
def as_tuple(out: Any) -> tuple[Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def autocast(enabled: bool) -> contextlib.AbstractContextManager:
    return torch.autocast('cpu', dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


@dataclass
class Variant:
    name: str
    module: Callable[[Tensor], Any]
    bf16: bool
    family: str  # 'fp32', 'bf16', 'int8': the decision compares the best int8 with the best bf16
    compiled: bool
    setup: dict[str, float] = field(default_factory=dict)  # wall seconds of export / prepare / ... / compile

    def __call__(self, x: Tensor) -> tuple[Tensor, ...]:
        with torch.no_grad(), autocast(self.bf16):
            return as_tuple(self.module(x))


def quantize_pt2e(model: nn.Module, example: Tensor, calib: Sequence[Tensor]) -> tuple[nn.Module, dict[str, Any]]:
    """PT2E static quantization for the x86 inductor backend; returns the converted graph module (q / dq ops around
    float ops, int8 weights folded) and the wall seconds of each step plus the quantized op counts."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)
    info: dict[str, Any] = {}
    t = time.perf_counter()
    with torch.no_grad():
        exported = torch.export.export(model, (example,)).module()
    info['export_s'] = time.perf_counter() - t
    targets = [str(n.target) for n in exported.graph.nodes if n.op == 'call_function']
    info['conv_linear_ops'] = sum(t.startswith(('aten.linear', 'aten.conv')) for t in targets)
    info['matmul_ops'] = sum(t.startswith('aten.matmul') for t in targets)  # Swin: the attention products
    t = time.perf_counter()
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    info['prepare_s'] = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        for batch in calib:
            prepared(batch)
    info['calibrate_s'] = time.perf_counter() - t
    t = time.perf_counter()
    converted = convert_pt2e(prepared)
    info['convert_s'] = time.perf_counter() - t
    targets = [str(n.target) for n in converted.graph.nodes if n.op == 'call_function']
    info['int8_weight_ops'] = sum('dequantize_per_channel' in t for t in targets)
    info['act_quantize_ops'] = sum('quantize_per_tensor' in t and 'dequantize' not in t for t in targets)
    return converted, info


def build_variants(model: nn.Module, example: Tensor, calib: Sequence[Tensor],
                   failures: list[str]) -> tuple[list[Variant], dict[str, Any]]:
    """The variants of one part (compiled ones not yet called: their first call compiles)."""
    variants = [Variant('fp32 eager', model, False, 'fp32', False),
                Variant('bf16 eager', model, True, 'bf16', False)]
    variants.append(Variant('bf16 inductor', torch.compile(model), True, 'bf16', True))
    if ARGS.fp32_compiled:
        variants.append(Variant('fp32 inductor', torch.compile(model), False, 'fp32', True))
    quant: dict[str, Any] = {}
    try:
        log('export + prepare + calibrate + convert (PT2E) ...')
        converted, quant = quantize_pt2e(model, example, calib)
        log(f'quantized: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in quant.items()})}')
        prep = {k: quant[k] for k in ('export_s', 'prepare_s', 'calibrate_s', 'convert_s')}
        variants.append(Variant('int8 inductor', torch.compile(converted), False, 'int8', True, dict(prep)))
        if not ARGS.no_int8_bf16:
            variants.append(Variant('int8+bf16 inductor', torch.compile(copy.deepcopy(converted)), True, 'int8',
                                    True, dict(prep)))
    except Exception as exc:  # noqa: BLE001 -- reported, the float variants still run
        failures.append(f'PT2E quantization: {last_line(exc)}')
        log(f'PT2E quantization failed:\n{traceback.format_exc()}')
    return variants, quant


# ---------------------------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------------------------
def errors(out: Sequence[Tensor], ref: Sequence[Tensor], segmentor: bool) -> dict[str, Any]:
    max_rel, rel_l2 = [], []
    for y, r in zip(out, ref):
        y, r = y.float(), r.float()
        max_rel.append(((y - r).abs().max() / r.abs().max().clamp_min(1e-30)).item())
        rel_l2.append(((y - r).norm() / r.norm().clamp_min(1e-30)).item())
    result = dict(max_abs_rel_per_map=max_rel, rel_l2_per_map=rel_l2, max_abs_rel=max(max_rel),
                  rel_l2=statistics.fmean(rel_l2))
    if segmentor:
        result['class_changed'] = (out[0].argmax(1) != ref[0].argmax(1)).float().mean().item()
    return result


def measure_part(part: str, model: nn.Module, failures: list[str]) -> dict[str, Any]:
    h, w = ARGS.hw
    gen = torch.Generator().manual_seed(ARGS.seed + 1)
    x = torch.randn(ARGS.batch, 3, h, w, generator=gen)
    calib = [torch.randn(ARGS.batch, 3, h, w, generator=gen) for _ in range(ARGS.calib_batches)]
    variants, quant = build_variants(model, x, calib, failures)

    ok: list[Variant] = []
    first: dict[str, float] = {}
    for v in variants:  # first calls: the compiles
        log(f'{part}: first call of {v.name} ...')
        t = time.perf_counter()
        try:
            v(x)
        except Exception as exc:  # noqa: BLE001
            failures.append(f'{part} / {v.name}: {last_line(exc)}')
            log(f'{v.name} failed:\n{traceback.format_exc()}')
            continue
        first[v.name] = time.perf_counter() - t
        if v.compiled:
            v.setup['compile_s'] = first[v.name]
        log(f'{part}: {v.name} first call {first[v.name]:.1f} s')
        ok.append(v)
    for _ in range(ARGS.warmup):
        for v in ok:
            v(x)
    cpu: dict[str, list[float]] = {v.name: [] for v in ok}
    wall: dict[str, list[float]] = {v.name: [] for v in ok}
    for r in range(ARGS.repeats):  # interleaved: A, B, C, A, B, C, ...
        for v in ok:
            t, c = time.perf_counter(), time.process_time()
            v(x)
            cpu[v.name].append(time.process_time() - c)
            wall[v.name].append(time.perf_counter() - t)
        log(f'{part}: repeat {r + 1}/{ARGS.repeats}: '
            + ', '.join(f'{n} {cpu[n][-1] * 1e3:.0f} ms' for n in cpu))

    ref = ok[0](x) if ok and ok[0].name == 'fp32 eager' else None
    rows = []
    for v in ok:
        row = dict(name=v.name, family=v.family, compiled=v.compiled, bf16_autocast=v.bf16,
                   cpu_ms=statistics.median(cpu[v.name]) * 1e3, wall_ms=statistics.median(wall[v.name]) * 1e3,
                   cpu_ms_runs=[t * 1e3 for t in cpu[v.name]], first_call_s=first[v.name], setup_s=v.setup,
                   setup_total_s=sum(v.setup.values()))
        if ref is not None:
            row.update(errors(v(x), ref, part == 'segmentor'))
        rows.append(row)
    return dict(part=part, rows=rows, quantization=quant)


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------
def best(rows: Sequence[dict[str, Any]], family: str) -> dict[str, Any] | None:
    rows = [r for r in rows if r['family'] == family]
    return min(rows, key=lambda r: r['cpu_ms']) if rows else None


def table(result: dict[str, Any]) -> str:
    rows = result['rows']
    bf16 = best(rows, 'bf16')
    seg = result['part'] == 'segmentor'
    head = ['variant', 'ms / forward (CPU, median)', 'speed-up vs best bf16', 'max|dy| / max|y32| (worst map)',
            'rel. L2 (mean of maps)'] + (['pixels changing class'] if seg else []) + ['export..convert / compile s']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for r in rows:
        speed = f'{bf16["cpu_ms"] / r["cpu_ms"]:.2f}x' if bf16 else '--'
        prep = sum(v for k, v in r['setup_s'].items() if k != 'compile_s')
        setup = (f'{prep:.0f} + ' if prep else '') + (f'{r["setup_s"]["compile_s"]:.0f}' if r['compiled'] else '--')
        cells = [r['name'], f'{r["cpu_ms"]:.0f}', speed,
                 f'{r["max_abs_rel"]:.2e}' if 'max_abs_rel' in r else '--',
                 f'{r["rel_l2"]:.2e}' if 'rel_l2' in r else '--']
        if seg:
            cells.append(f'{100 * r["class_changed"]:.2f}%' if 'class_changed' in r else '--')
        cells.append(setup)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def decision(result: dict[str, Any]) -> tuple[bool | None, str]:
    rows = result['rows']
    bf16, int8 = best(rows, 'bf16'), best(rows, 'int8')
    if bf16 is None or int8 is None:
        return None, 'no decision: a bf16 or int8 variant is missing (see the failures)'
    speedup = bf16['cpu_ms'] / int8['cpu_ms']
    err = int8.get('rel_l2', float('nan'))
    fast, small = speedup >= ARGS.min_speedup, err <= ARGS.max_rel_l2
    verdict = 'SHIP' if fast and small else 'LEAVE OUT'
    why = []
    why.append(f'fastest int8 ({int8["name"]}, {int8["cpu_ms"]:.0f} ms) is {speedup:.2f}x the fastest bf16 '
               f'({bf16["name"]}, {bf16["cpu_ms"]:.0f} ms): {"meets" if fast else "below"} the {ARGS.min_speedup}x bar')
    why.append(f'its mean relative L2 error {err:.2e} (bf16: {bf16.get("rel_l2", float("nan")):.2e}) is '
               f'{"within" if small else "above"} {ARGS.max_rel_l2:.0e}')
    return fast and small, f'{verdict}: ' + '; '.join(why)


def main(argv: Sequence[str] | None = None) -> int:
    global ARGS
    ARGS = parse_args(argv)
    if not ARGS.warm_cache:  # before torch._inductor compiles anything
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = tempfile.mkdtemp(prefix='int8_report_inductor_')
    import torchao
    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(ARGS.seed)
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True
    h, w = ARGS.hw
    env = dict(torch=torch.__version__, torchao=torchao.__version__, threads=ARGS.threads, batch=ARGS.batch,
               height=h, width=w, repeats=ARGS.repeats, warmup=ARGS.warmup, calib_batches=ARGS.calib_batches,
               mkldnn_bf16=torch.ops.mkldnn._is_mkldnn_bf16_supported(),
               cpu_capability=torch.backends.cpu.get_cpu_capability(),
               inductor_cache=os.environ.get('TORCHINDUCTOR_CACHE_DIR', 'default'))
    log(json.dumps(env))
    failures: list[str] = []
    results = []
    for part in ARGS.parts:
        log(f'building {part} ...')
        try:
            model = build_backbone() if part == 'backbone' else build_segmentor(ARGS.config)
        except Exception as exc:  # noqa: BLE001
            failures.append(f'{part}: build: {last_line(exc)}')
            log(traceback.format_exc())
            continue
        reinit_(model, ARGS.seed).eval()
        results.append(measure_part(part, model, failures))
        del model

    print(f'\n# int8 (PT2E, X86InductorQuantizer) vs bf16 / fp32 on the CPU -- torch {env["torch"]}, torchao '
          f'{env["torchao"]}, {ARGS.threads} thread(s), batch {ARGS.batch} at {h}x{w}, CPU capability '
          f'{env["cpu_capability"]}, median of {ARGS.repeats} interleaved runs\n')
    verdicts = []
    for result in results:
        title = ('Swin-T backbone (4 maps)' if result['part'] == 'backbone'
                 else f'UperNet segmentor, logits ({os.path.basename(ARGS.config)})')
        print(f'## {title}\n')
        print(table(result))
        q = result['quantization']
        if q:
            print(f'\nquantized: {q["int8_weight_ops"]} of {q["conv_linear_ops"]} conv / linear ops with int8 weights, '
                  f'{q["act_quantize_ops"]} activation quantize ops; {q["matmul_ops"]} matmul ops (the attention '
                  f'products) in floating point. export {q["export_s"]:.1f} s, prepare {q["prepare_s"]:.1f} s, '
                  f'calibrate ({ARGS.calib_batches} batches) {q["calibrate_s"]:.1f} s, convert {q["convert_s"]:.1f} s.')
        ok, text = decision(result)
        verdicts.append(ok)
        result['decision'] = text
        print(f'\n{text}\n')
    if failures:
        print('## Failures\n')
        for f in failures:
            print(f'* {f}')
        print()
    if ARGS.json:
        with open(ARGS.json, 'w') as f:
            json.dump(dict(env=env, results=results, failures=failures), f, indent=1)
    log('done')
    return 0


if __name__ == '__main__':
    sys.exit(main())
