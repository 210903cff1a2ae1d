#!/usr/bin/env python
"""The README's GPU table in one command: parity checks on the GPU, then Swin-T and Shunted-S timed against their
peers on two workloads; exit status 1 when a parity check fails (after printing everything it could measure).

Measured (the harness of ``benchmark_backbones.py``: every model re-initialised alike, the models of a row timed
interleaved, median of ``--repeats`` runs after the first call and ``--warmup`` runs, TF32 allowed):

* Swin-T under bf16 autocast: mmswin against timm (``features_only``) and mmdet 3.3's Swin where mmdet imports
  (else its column says why not); eager, and ``torch.compile``d (inductor, default mode, static shapes, compiled
  afresh for each workload; "first call" is the compile time);
* Shunted-S in float32 with TF32 matrix products and convolutions: mmswin against the op-for-op port of the official
  code (``tools/analysis/peers/shunted_official.py``), eager;
* workloads batch 16 at 512x512 and batch 2 at 896x1344; the training step (forward + backward of the sum of the
  output maps' means) and the eval forward; the peak CUDA memory of one training step per model (growth of
  ``torch.cuda.max_memory_allocated``, in this process); each row's ratio is mmswin / the faster (smaller) peer.

Parity, first, on the device: random non-trivial weights of the peer loaded into mmswin through its checkpoint
conversion (timm's Swin-T state dict; the official Shunted-S state dict), eval mode, no drop path:

* float32, TF32 off: max |mmswin - peer| / max |peer| <= 1e-3 on every output map (Swin-T: batch 2 at 448x448, where
  every map spans at least two windows, so that timm's numerics are mmdet's; Shunted-S: batch 2 at 224x320);
* the reduced precision that is timed (Swin-T: bf16 autocast; Shunted-S: TF32): mmswin's deviation from the float32
  peer at most 3x the peer's own deviation in that precision + 1e-3 (rounding passes, a wrong kernel path fails).

Time: within 8 minutes on one GPU. A measurement starts only when its estimate fits in ``--budget`` seconds since
start (compile estimates are learnt from the first compiles; ``--compile-estimate`` sets the first guess), and a
hard limit (``--hard-limit``) prints the table measured so far and exits if a compile overruns. Whatever was not
measured is listed with the reason; ``--parts`` / ``--workloads`` measure it in a second run. Order of priority:
parity, Swin-T eager, Shunted-S, Swin-T compiled training steps, Swin-T compiled eval forwards. A second run on the
same machine finds inductor's on-disk caches (``TORCHINDUCTOR_CACHE_DIR``) and compiles much faster; its "first
call" is then a warm-cache figure.

It needs torch, timm, numpy, mmengine and mmcv-lite only (no mmdet, mmseg or mmcv ops), run from the repository
root with ``PYTHONPATH=.`` unless mmswin is installed (``pip install --no-deps -e .``)::

    PYTHONPATH=. python tools/analysis/gpu_report.py --json gpu_report.json
    PYTHONPATH=. python tools/analysis/gpu_report.py --skip-compile              # eager rows only
    PYTHONPATH=. python tools/analysis/gpu_report.py --parts swin-compiled --workloads 2x896x1344
    PYTHONPATH=. python tools/analysis/gpu_report.py --dry-run                   # CPU, tiny models, < 1 minute

``--dry-run`` runs the same logic on the CPU with tiny models and inputs, one timed run, compiling with dynamo's
``eager`` backend (tracing without inductor) for the first workload only; the test suite runs it. Its numbers mean
nothing (CPU memory is the RSS growth in a process holding every model: mostly 0).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HERE = os.path.dirname(os.path.abspath(__file__))
FP32_TOL = 1e-3  # max |mmswin - peer| / max |peer| per map, float32 with TF32 off
LOW_PRECISION_FACTOR, LOW_PRECISION_SLACK = 3.0, 1e-3  # mmswin's deviation <= 3x the peer's own + 1e-3
MiB = 2 ** 20


def process_age() -> float:
    """Seconds since this process started (Linux; 0 elsewhere): the time guard counts the imports too."""
    try:
        with open('/proc/self/stat') as f:
            start_ticks = int(f.read().rsplit(')', 1)[1].split()[19])  # field 22, starttime
        return max(time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf('SC_CLK_TCK'), 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def load_benchmark() -> ModuleType:
    """``benchmark_backbones.py`` beside this file (cases, re-initialisation, timing and memory helpers), loaded by
    path: the tools are scripts, not a package."""
    name = 'mmswin_tool_analysis_benchmark_backbones'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, 'benchmark_backbones.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


bench = load_benchmark()


# ---------------------------------------------------------------------------------------------------------------
# What is compared
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    batch: int
    height: int
    width: int

    @property
    def name(self) -> str:
        return f'{self.batch}x{self.height}x{self.width}'

    @property
    def label(self) -> str:
        return f'{self.batch} x {self.height} x {self.width}'


WORKLOADS = (Workload(16, 512, 512), Workload(2, 896, 1344))
DRY_WORKLOADS = (Workload(2, 64, 64), Workload(1, 64, 96))
COLUMNS = {'mmswin': 'mmswin', 'timm': 'timm', 'mmdet': 'mmdet 3.3', 'official': 'official port'}
PARTS = ('swin', 'shunted', 'swin-compiled')  # in order of priority
TINY_SWIN = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))  # --dry-run


@dataclass(frozen=True)
class Family:
    """A backbone and its peers: ``builders[column](workload)`` returns the ``(B, 3, H, W) -> maps`` module."""
    title: str
    precision: str  # the table's label
    amp: str  # benchmark_backbones.AMP_DTYPES key
    builders: dict[str, Callable[[Workload], nn.Module]]


def swin_builders(dry: bool) -> dict[str, Callable[[Workload], nn.Module]]:
    """mmswin, timm and mmdet Swin-T (``--dry-run``: 32 channels, depths 2, 2, 2, 2), as benchmark_backbones builds
    them; timm's model is made for the workload's size (its patch embedding checks the input size)."""
    def mmswin(wl: Workload) -> nn.Module:
        if not dry:
            return bench.CASES['mmswin_swin_t']()
        from mmswin.models.backbones.swin import SwinTransformer
        return SwinTransformer(arch=dict(TINY_SWIN), drop_path_rate=bench.DROP_PATH_RATE)

    def timm_swin(wl: Workload) -> nn.Module:
        os.environ['BENCH_SIZE'] = f'{wl.height}x{wl.width}'
        if not dry:
            return bench.CASES['timm_swin_t']()
        import timm
        return bench._TimmFeatures(timm.create_model(
            'swin_tiny_patch4_window7_224', pretrained=False, features_only=True, img_size=(wl.height, wl.width),
            drop_path_rate=bench.DROP_PATH_RATE, embed_dim=TINY_SWIN['embed_dims'], depths=TINY_SWIN['depths'],
            num_heads=TINY_SWIN['num_heads']))

    def mmdet(wl: Workload) -> nn.Module:
        if not dry:
            return bench.CASES['mmdet_swin_t']()
        from mmdet.models.backbones import SwinTransformer
        return SwinTransformer(**TINY_SWIN, window_size=7, drop_path_rate=bench.DROP_PATH_RATE)

    return {'mmswin': mmswin, 'timm': timm_swin, 'mmdet': mmdet}


def shunted_builders(dry: bool) -> dict[str, Callable[[Workload], nn.Module]]:
    """mmswin's Shunted-S and the official port's pyramid (``--dry-run``: Shunted-T)."""
    def mmswin(wl: Workload) -> nn.Module:
        if not dry:
            return bench.CASES['shunted_s']()
        from mmswin.models.backbones.shunted import ShuntedTransformer
        return ShuntedTransformer('tiny', drop_path_rate=bench.DROP_PATH_RATE)

    def official(wl: Workload) -> nn.Module:
        if not dry:
            return bench.CASES['shunted_s_official']()
        ref = bench.load_shunted_reference()
        return bench._Pyramid(ref.build_reference('tiny', num_classes=0, drop_path_rate=bench.DROP_PATH_RATE))

    return {'mmswin': mmswin, 'official': official}


def mmdet_unavailable() -> str | None:
    """Why mmdet's Swin cannot be built here (None: it can)."""
    try:
        import mmdet.models.backbones  # noqa: F401
    except Exception as err:  # not installed, or installed against another mmcv
        return f'mmdet not importable ({type(err).__name__}: {err})'.replace('|', '/')
    return None


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 matrix products and cuDNN convolutions on / off (restored after)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# ---------------------------------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Check:
    """One parity check: ``relative`` = max |mmswin - peer| / max |peer| over the output maps."""
    name: str
    max_abs: float
    relative: float
    tolerance: float
    detail: str = ''

    @property
    def passed(self) -> bool:
        return self.relative <= self.tolerance  # NaN fails


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights everywhere (norm scales around 1, bias tables and biases non-zero) with activations of
    order 1 through deep stacks, so that every converted key matters."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen)
        module_name = name.rsplit('.', 1)[0] if '.' in name else ''
        if 'norm' in module_name.rsplit('.', 1)[-1] and name.endswith('.weight'):
            p.copy_(1 + 0.2 * noise)
        else:
            p.copy_(noise / p[0].numel() ** 0.5 if p.dim() > 1 else 0.1 * noise)
    return model


@torch.no_grad()
def perturb_(model: nn.Module) -> None:
    """``--inject-parity-error``: change the first weight matrix / kernel after loading (the check must fail)."""
    p = next(p for p in model.parameters() if p.dim() > 1)
    p.add_(p.std() * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)).to(p))


def _compare(got: Sequence[Tensor], expected: Sequence[Tensor]) -> tuple[float, float]:
    """(max abs difference, that / max |expected|) over all maps; shapes must agree."""
    assert [tuple(g.shape) for g in got] == [tuple(e.shape) for e in expected], 'output shapes differ'
    diff = max((g.float() - e.float()).abs().max().item() for g, e in zip(got, expected))
    scale = max(e.float().abs().max().item() for e in expected)
    return diff, diff / max(scale, 1e-12)


def _timm_pyramid(model: nn.Module, x: Tensor) -> list[Tensor]:
    """timm's Swin as mmswin's output contract: stages 1-3 through parameter-free LayerNorms (mmswin's norm0..2,
    absent from ImageNet checkpoints, load as identity-affine), stage 4 through timm's final norm."""
    feats = model.forward_intermediates(x, intermediates_only=True)  # NCHW, no norm
    outs = [F.layer_norm(f.permute(0, 2, 3, 1).float(), (f.shape[1],)).permute(0, 3, 1, 2) for f in feats[:3]]
    return outs + [model.forward_features(x).permute(0, 3, 1, 2)]


def swin_parity(device: torch.device, dry: bool, inject: bool) -> list[Check]:
    """mmswin's Swin-T loaded from a random timm Swin-T state dict, against timm, float32 and bf16 autocast."""
    import timm

    from mmswin.models.backbones.swin import SwinTransformer
    size = 448  # every map at least two windows per side
    extra = dict(embed_dim=TINY_SWIN['embed_dims'], depths=TINY_SWIN['depths'],
                 num_heads=TINY_SWIN['num_heads']) if dry else {}
    ref = randomize_(timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, img_size=size,
                                       drop_path_rate=0.0, **extra)).eval()
    ours = SwinTransformer(arch=dict(TINY_SWIN) if dry else 'tiny', drop_path_rate=0.0)
    ours.load_pretrained(ref.state_dict(), prefix='')  # timm layout, classifier head included
    ours.eval()
    if inject:
        perturb_(ours)
    ref, ours = ref.to(device), ours.to(device)
    x = torch.randn(1 if dry else 2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad(), tf32(False):
        expected = _timm_pyramid(ref, x)
        fp32 = _compare(ours(x), expected)
        with bench.autocast(device, 'bf16'):
            ours_bf16 = _compare(ours(x), expected)
            peer_bf16 = _compare(_timm_pyramid(ref, x), expected)
    return [Check(f'Swin-T, mmswin vs timm, fp32 (TF32 off), batch {x.shape[0]} at {size}x{size}', *fp32, FP32_TOL),
            Check('Swin-T, mmswin bf16 autocast vs timm fp32', *ours_bf16,
                  LOW_PRECISION_FACTOR * peer_bf16[1] + LOW_PRECISION_SLACK,
                  f'timm bf16 vs fp32: {peer_bf16[1]:.2e}')]


def shunted_parity(device: torch.device, dry: bool, inject: bool) -> list[Check]:
    """mmswin's Shunted-S loaded from a random official state dict, against the op-for-op port, fp32 and TF32."""
    from mmswin.models.backbones.shunted import ShuntedTransformer
    arch = 'tiny' if dry else 'small'
    reference = bench.load_shunted_reference()
    ref = reference.randomize_(reference.build_reference(arch), 0).eval()
    ours = ShuntedTransformer(arch, drop_path_rate=0.0)
    ours.load_pretrained(ref.state_dict())  # official layout, classifier head included
    ours.eval()
    if inject:
        perturb_(ours)
    ref, ours = ref.to(device), ours.to(device)
    shape = (1, 3, 64, 96) if dry else (2, 3, 224, 320)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        with tf32(False):
            expected = ref.forward_pyramid(x)
            fp32 = _compare(ours(x), expected)
        with tf32(True):
            ours_tf32 = _compare(ours(x), expected)
            peer_tf32 = _compare(ref.forward_pyramid(x), expected)
    where = f'batch {shape[0]} at {shape[2]}x{shape[3]}'
    return [Check(f'Shunted-{arch[0].upper()}, mmswin vs official port, fp32 (TF32 off), {where}', *fp32, FP32_TOL),
            Check(f'Shunted-{arch[0].upper()}, mmswin TF32 vs official port fp32', *ours_tf32,
                  LOW_PRECISION_FACTOR * peer_tf32[1] + LOW_PRECISION_SLACK,
                  f'official port TF32 vs fp32: {peer_tf32[1]:.2e}')]


# ---------------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------------
METRICS = {'train': 'train (ms)', 'eval': 'eval (ms)', 'peak': 'train peak (MiB)',
           'first_train': 'first call, train (s)', 'first_eval': 'first call, eval (s)'}


@dataclass
class Row:
    """One line of the table: ``values[column]`` in the metric's unit."""
    backbone: str
    workload: Workload
    precision: str
    compile: str
    metric: str
    values: dict[str, float] = field(default_factory=dict)
    note: str = ''  # why it was not measured, in short

    def ratio(self) -> tuple[float, str] | None:
        """mmswin / the best (smallest) peer, and that peer."""
        peers = {c: v for c, v in self.values.items() if c != 'mmswin'}
        if 'mmswin' not in self.values or not peers:
            return None
        best = min(peers, key=peers.get)
        return (self.values['mmswin'] / peers[best], best) if peers[best] > 0 else None


@dataclass
class Job:
    """One measurement: ``modes`` of every model of ``family`` on ``workload``, eager or compiled."""
    part: str
    family: Family
    workload: Workload
    compiled: bool
    modes: tuple[str, ...]

    @property
    def label(self) -> str:
        return (f'{self.family.title} {self.workload.label} {"compiled" if self.compiled else "eager"} '
                f'{" + ".join(self.modes)}')

    def metrics(self) -> list[str]:
        keys = list(self.modes) + (['peak'] if 'train' in self.modes else [])
        keys += [f'first_{m}' for m in self.modes] if self.compiled else []
        return keys


class Report:
    """Runs the checks and the jobs within the time limits, and renders the results."""

    def __init__(self, args: argparse.Namespace, started: float) -> None:
        self.args = args
        self.started = started  # time.monotonic() at the start of the run
        self.device = torch.device(args.device)
        self.checks: list[Check] = []
        self.check_errors: list[str] = []
        self.rows: dict[tuple, Row] = {}
        self.not_measured: list[str] = []
        self.skipped_columns: dict[str, str] = {}
        self.compile_seconds: dict[str, list[float]] = {'train': [], 'eval': []}
        self.parity_done = False
        self.lock = threading.Lock()
        self.finished = False
        self.current = 'the start'
        self._built_key: tuple | None = None
        self._built: dict[str, nn.Module] = {}
        families = {'swin': Family('Swin-T', 'bf16 autocast', 'bf16', swin_builders(args.dry_run)),
                    'shunted': Family('Shunted-T' if args.dry_run else 'Shunted-S', 'fp32 + TF32', 'fp32',
                                      shunted_builders(args.dry_run))}
        reason = mmdet_unavailable() if not args.no_mmdet else 'mmdet left out (--no-mmdet)'
        if reason:
            self.skipped_columns['mmdet'] = reason
            del families['swin'].builders['mmdet']
        self.jobs: list[Job] = []
        for part in PARTS:
            if part not in args.parts:
                continue
            family = families['shunted' if part == 'shunted' else 'swin']
            if part != 'swin-compiled':
                self.jobs += [Job(part, family, wl, False, ('train', 'eval')) for wl in args.workload_list]
                continue
            first_only = (args.quick or args.dry_run) and not args.workloads
            compiled = args.workload_list[:1] if first_only else args.workload_list
            self.not_measured += [f'Swin-T {wl.label} compiled: left out by {"--quick" if args.quick else "--dry-run"}'
                                  for wl in args.workload_list if wl not in compiled]
            # one compile per job: every training step first (what the project is for), then the eval forwards
            self.jobs += [Job(part, family, wl, True, (mode,)) for mode in ('train', 'eval') for wl in compiled]
        for job in self.jobs:  # every planned row, so that what is not measured shows in the table
            for key in job.metrics():
                self._row(job, key)
        self.pending: list[Job] = list(self.jobs)  # not yet measured nor skipped

    # -- time --------------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def estimate(self, job: Job) -> float:
        """Seconds the job should take: compile time per model and mode (learnt, else ``--compile-estimate``) plus
        the timed runs."""
        seconds = self.args.eager_estimate
        if job.compiled:
            for mode in job.modes:
                seen = self.compile_seconds[mode]
                guess = self.args.compile_estimate[0 if mode == 'train' else 1]
                seconds += len(job.family.builders) * (1.2 * max(seen) if seen else guess)
        return seconds

    # -- rows --------------------------------------------------------------------------------------------------
    def _row(self, job: Job, key: str) -> Row:
        k = (job.part, job.workload.name, key)
        if k not in self.rows:
            backend = self.args.compile_backend
            compiled = 'compiled' if backend == 'inductor' else f'compiled ({backend} backend)'
            self.rows[k] = Row(job.family.title, job.workload, job.family.precision,
                               compiled if job.compiled else 'eager', METRICS[key])
        return self.rows[k]

    def _models(self, job: Job) -> dict[str, nn.Module]:
        """The job's models, shared by the train and eval jobs of a compiled workload; a new workload frees the
        previous models and (compiled) resets dynamo, so each workload compiles static graphs afresh."""
        key = (job.part, job.workload.name)
        if key != self._built_key:
            self._built, self._built_key = {}, None
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()
            if job.compiled:
                torch._dynamo.reset()
            torch.manual_seed(0)
            built = {}
            for column, builder in job.family.builders.items():
                model = bench.reinit_(builder(job.workload)).to(self.device)
                built[column] = torch.compile(model, backend=self.args.compile_backend,
                                              dynamic=False) if job.compiled else model
            self._built, self._built_key = built, key
        return self._built

    def run_job(self, job: Job) -> None:
        """Time the job's modes (models interleaved), then the peak memory of one training step per model."""
        models = self._models(job)
        wl, amp = job.workload, job.family.amp
        x = torch.randn(wl.batch, 3, wl.height, wl.width, device=self.device)
        entries = {column: (model, amp) for column, model in models.items()}
        with tf32(True):
            medians, first_call = bench.time_built(entries, x, job.modes, self.args.warmup, self.args.repeats)
            peaks = ({c: bench.train_peak_bytes(m, x, amp) for c, m in models.items()}
                     if 'train' in job.modes else {})
        for mode in job.modes:
            self._row(job, mode).values = {c: medians[c][mode] * 1e3 for c in models}
            if job.compiled:
                self._row(job, f'first_{mode}').values = {c: first_call[c][mode] for c in models}
                self.compile_seconds[mode] += [first_call[c][mode] for c in models]
        if peaks:
            self._row(job, 'peak').values = {c: v / MiB for c, v in peaks.items()}

    def skip(self, job: Job, why: str, short: str) -> None:
        """Record that ``job`` was not measured: ``why`` in the list under the table, ``short`` in its rows."""
        if job in self.pending:
            self.pending.remove(job)
        self.not_measured.append(f'{job.label}: {why}')
        for key in job.metrics():
            self._row(job, key).note = short

    # -- the run -----------------------------------------------------------------------------------------------
    def run(self) -> None:
        for name, check in (('Swin-T', swin_parity), ('Shunted', shunted_parity)):
            self.current = f'{name} parity'
            try:
                self.checks += check(self.device, self.args.dry_run, self.args.inject_parity_error)
            except Exception as err:  # a check that cannot run is a failed check
                self.check_errors.append(f'{name} parity could not run: {type(err).__name__}: {err}'[:300])
        self.parity_done = True
        while self.pending:
            job = self.pending[0]
            needed, left = self.estimate(job), self.args.budget - self.elapsed()
            if needed > left:
                self.skip(job, f'time guard (about {needed:.0f} s needed, {max(left, 0):.0f} s of --budget left)',
                          'time guard')
                continue
            self.current = job.label
            try:
                self.run_job(job)
                self.pending.remove(job)
            except Exception as err:  # e.g. out of memory: the other rows still get measured
                message = str(err).strip().splitlines()[0][:200] if str(err).strip() else ''
                self.skip(job, f'{type(err).__name__}: {message}'.replace('|', '/'), type(err).__name__)
        self._built, self._built_key = {}, None

    @property
    def failed(self) -> bool:
        """A parity check failed, could not run, or was cut short by the hard limit."""
        return not self.parity_done or bool(self.check_errors) or not all(c.passed for c in self.checks)

    # -- output ------------------------------------------------------------------------------------------------
    def render(self) -> str:
        args = self.args
        if self.device.type == 'cuda':
            where = f'{torch.cuda.get_device_name(self.device)}, CUDA {torch.version.cuda}'
        else:
            where = f'CPU ({torch.get_num_threads()} torch threads)'
            where += ' (dry run: tiny models, numbers mean nothing)' if args.dry_run else ''
        versions = f'torch {torch.__version__}, timm {_version("timm")}'
        lines = [f'## Backbones on {where}', '',
                 f'{datetime.date.today().isoformat()}, {versions}. Median of {args.repeats} interleaved runs after '
                 f'the first call and {args.warmup} warm-up runs; train = forward + backward of the sum of the output '
                 f"maps' means; peak = growth of {'max_memory_allocated' if self.device.type == 'cuda' else 'RSS'} "
                 'during one training step; compiled = torch.compile (default mode, static shapes), first call = '
                 'compile time; ratio = mmswin / the faster (smaller) peer.', '',
                 f'| parity check ({self.device.type}) | max abs diff | relative | tolerance | result |',
                 '| --- | --- | --- | --- | --- |']
        for c in self.checks:
            detail = f' ({c.detail})' if c.detail else ''
            lines.append(f'| {c.name}{detail} | {c.max_abs:.2e} | {c.relative:.2e} | {c.tolerance:.2e} | '
                         f'{"pass" if c.passed else "**FAIL**"} |')
        lines += [f'| {e} | - | - | - | **FAIL** |' for e in self.check_errors]
        columns = [c for c in COLUMNS if any(c in job.family.builders for job in self.jobs)
                   or c in self.skipped_columns]
        lines += ['', '| backbone | input | precision | compile | metric | '
                  + ' | '.join(COLUMNS[c] for c in columns) + ' | mmswin / best peer |',
                  '| --- ' * (6 + len(columns)) + '|']
        family_columns = {job.family.title: set(job.family.builders) for job in self.jobs}
        for row in self.ordered_rows():
            cells = []
            for c in columns:
                if c in row.values:
                    cells.append(_fmt(row.values[c], row.metric))
                elif c in self.skipped_columns and row.backbone == 'Swin-T':
                    cells.append('n/a')
                elif row.note and c in family_columns[row.backbone]:
                    cells.append('not measured')
                else:
                    cells.append('-')
            ratio = row.ratio()
            if ratio:
                last = f'{ratio[0]:.2f}x ({COLUMNS[ratio[1]]})'
            else:
                last = f'not measured: {row.note}' if row.note else '-'
            lines.append(f'| {row.backbone} | {row.workload.label} | {row.precision} | {row.compile} | {row.metric} '
                         f'| ' + ' | '.join(cells) + f' | {last} |')
        lines.append('')
        lines += [f'n/a: {COLUMNS[c]}: {why}' for c, why in self.skipped_columns.items()]
        lines += [f'not measured: {what}' for what in self.not_measured]
        if not self.parity_done:
            verdict = 'PARITY NOT CHECKED (stopped before the checks ended): exit status 1'
        elif self.failed:
            verdict = 'PARITY FAILED: exit status 1'
        else:
            verdict = f'all {len(self.checks)} parity checks passed'

        lines.append(f'{verdict}; {self.elapsed():.0f} s in all')
        return '\n'.join(lines)

    def ordered_rows(self) -> list[Row]:
        """Swin-T then Shunted; per workload, eager then compiled; metrics in ``METRICS`` order."""
        workloads = [w.name for w in self.args.workload_list]

        def rank(key: tuple[str, str, str]) -> tuple[int, int, int, int]:
            part, workload, metric = key
            return (part == 'shunted', workloads.index(workload), part == 'swin-compiled', list(METRICS).index(metric))
        return [self.rows[k] for k in sorted(self.rows, key=rank)]

    def to_json(self) -> dict:
        rows = []
        for row in self.ordered_rows():
            ratio = row.ratio()
            rows.append(dict(backbone=row.backbone, workload=row.workload.name, batch=row.workload.batch,
                             height=row.workload.height, width=row.workload.width, precision=row.precision,
                             compile=row.compile, metric=row.metric, values=row.values, note=row.note,
                             ratio=ratio[0] if ratio else None, best_peer=ratio[1] if ratio else None))
        return dict(device=str(self.device), dry_run=self.args.dry_run, torch=torch.__version__,
                    timm=_version('timm'), elapsed_s=self.elapsed(), failed=self.failed,
                    parity=[dict(asdict(c), passed=c.passed) for c in self.checks], parity_errors=self.check_errors,
                    rows=rows, not_measured=self.not_measured, skipped_columns=self.skipped_columns,
                    args={k: v for k, v in vars(self.args).items() if k != 'workload_list'})

    def finish(self, stopped: str = '') -> int:
        """Print the table (and write ``--json``) once, from the main thread or the hard-limit timer."""
        with self.lock:
            if self.finished:
                return int(self.failed)
            self.finished = True
            for job in list(self.pending) if stopped else ():
                self.skip(job, stopped, 'hard limit')
            print(self.render(), flush=True)
            if self.args.json:
                with open(self.args.json, 'w') as f:
                    json.dump(self.to_json(), f, indent=2)
            return int(self.failed)


def _fmt(value: float, metric: str) -> str:
    return f'{value:.0f}' if 'MiB' in metric else f'{value:.1f}'


def _version(package: str) -> str:
    try:
        return __import__(package).__version__
    except Exception:
        return 'not installed'


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dry-run', action='store_true',
                        help='CPU, tiny models and inputs, 1 timed run, eager-backend compile: checks the logic')
    parser.add_argument('--device', help='default: cuda (cpu with --dry-run)')
    parser.add_argument('--parts', nargs='+', choices=PARTS, default=list(PARTS),
                        help='what to time after the parity checks (default: all, in this order of priority)')
    parser.add_argument('--workloads', nargs='+', metavar='BxHxW',
                        help=f'subset of {" ".join(w.name for w in WORKLOADS)} (dry run: '
                             f'{" ".join(w.name for w in DRY_WORKLOADS)})')
    parser.add_argument('--skip-compile', action='store_true', help='leave out the compiled Swin-T rows')
    parser.add_argument('--quick', action='store_true',
                        help='2 warm-up and 5 timed runs, compiled rows for the first workload only')
    parser.add_argument('--repeats', type=int, help='timed runs (default 20; --quick 5; dry run 1)')
    parser.add_argument('--warmup', type=int, help='untimed runs after the first call (default 5; --quick 2; dry 0)')
    parser.add_argument('--budget', type=float, default=430.0,
                        help='seconds since start within which a measurement must be expected to end to start')
    parser.add_argument('--hard-limit', type=float, default=470.0,
                        help='seconds since start after which the table so far is printed and the run ends')
    parser.add_argument('--compile-estimate', type=float, nargs=2, metavar=('TRAIN', 'EVAL'),
                        help='first guess of one model\'s compile seconds (default 120 45; dry run 20 10)')
    parser.add_argument('--eager-estimate', type=float, help='seconds of one job\'s timed runs (default 30; dry 5)')
    parser.add_argument('--compile-backend', help='torch.compile backend (default inductor; dry run eager)')
    parser.add_argument('--no-mmdet', action='store_true', help='leave mmdet\'s Swin out even where it imports')
    parser.add_argument('--inject-parity-error', action='store_true',
                        help='perturb a weight of mmswin after loading: the parity checks must fail (exit 1)')
    parser.add_argument('--threads', type=int, help='torch threads (dry run default: 1)')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    dry = args.dry_run
    args.device = args.device or ('cpu' if dry else 'cuda')
    if args.repeats is None:
        args.repeats = 1 if dry else 5 if args.quick else 20
    if args.warmup is None:
        args.warmup = 0 if dry else 2 if args.quick else 5
    args.compile_estimate = args.compile_estimate or ([20.0, 10.0] if dry else [120.0, 45.0])
    args.eager_estimate = args.eager_estimate if args.eager_estimate is not None else 5.0 if dry else 30.0
    args.compile_backend = args.compile_backend or ('eager' if dry else 'inductor')
    if args.threads is None and dry:
        args.threads = 1
    if args.skip_compile:
        args.parts = [p for p in args.parts if p != 'swin-compiled']
    known = {w.name: w for w in (DRY_WORKLOADS if dry else WORKLOADS)}
    unknown = [w for w in args.workloads or () if w not in known]
    if unknown:
        parser.error(f'unknown workload(s) {" ".join(unknown)}; choose from {" ".join(known)}')
    args.workload_list = [known[w] for w in args.workloads] if args.workloads else list(known.values())
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')
    return args


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    """Run the report; ``started``: the ``time.monotonic()`` the time limits count from (default: now)."""
    started = time.monotonic() if started is None else started
    args = parse_args(argv)
    if torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        print('gpu_report: no CUDA device here; --dry-run checks the logic on the CPU', file=sys.stderr)
        return 2
    try:
        import mmswin.models.backbones  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name != 'mmswin':
            raise
        print('gpu_report: mmswin is not importable: run from the repository root with PYTHONPATH=. '
              '(or pip install --no-deps -e .)', file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    report = Report(args, started)

    def stop() -> None:  # the hard limit: what was measured, then exit now (a compile cannot be interrupted)
        code = report.finish(f'--hard-limit of {args.hard_limit:.0f} s reached during {report.current}')
        os._exit(code)

    timer = threading.Timer(max(args.hard_limit - report.elapsed(), 0.0), stop)
    timer.daemon = True
    timer.start()
    try:
        report.run()
    finally:
        timer.cancel()
    return report.finish()


if __name__ == '__main__':
    sys.exit(main(started=time.monotonic() - process_age()))
