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

Needs ``torchao`` (0.18 for torch 2.14; ``tools/setup_env.sh`` installs it, as ``tools/infer.py --int8`` uses it)::

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

Trained weights (``--parts segmentor --checkpoint PATH``, loaded strictly into the segmentor of ``--config``): the
part then runs on photos instead of random inputs. The val photos and the calibration photos (``--calib-split``: the
config's train dataloader's files by default -- calibrating on the scored photos would be optimistic -- read with
the val pipeline, no augmentation; ``--data-root`` replaces the config's) go through the segmentor's data
preprocessor and are zero-padded on the right / bottom to one size (the largest, rounded up to 32: export and
inductor need one static shape), batch 1. Calibration: every calibration photo and its mirror image. Per variant,
on every val photo: logits, padding cropped off and resized to the photo by mmseg's ``postprocess_result``, arg-max;
then the share of all pixels whose class is fp32 eager's (and of the labelled ones), and mIoU by mmseg's
``IoUMetric`` formula (:func:`seg_scores`). The fp32 model is also run unpadded, as the val loop does, for its
mIoU. The decision then asks ``--min-agreement`` (97%) of all pixels instead of the L2 bound. Options for such
runs: ``--int8-eager`` (the converted graph uncompiled: quantize / dequantize around float32 ops, the error of the
quantization alone), ``--reduce-range`` (7-bit activations, the x86 recipe for CPUs without VNNI, where the
``u8 x s8`` products of ``vpmaddubsw`` can saturate 16 bits), ``--fp-modules`` (submodules left unquantized),
``--emulate-bf16`` (bf16 eager with bf16 products computed in float32, ``tools/analysis/emulate_bf16.py``; on a CPU
without bf16 units one eager bf16 forward of this model takes minutes), ``--no-bf16-inductor``. Without native
bf16 the decision gives no verdict on speed.

Measured on a trained checkpoint (2 cores of an AMD EPYC with AVX2 only -- no AVX-512, VNNI, bf16 or AMX; torch
2.14.1, torchao 0.18.0, ``torch.backends.quantized.engine`` x86, inductor's int8 kernels through oneDNN's AVX2 path;
1 thread): the 150-iteration UperNet + Swin-T demo trained from a random start (no pretrained weights can be
downloaded there; mIoU 49.70 on its 3 val photos unpadded, 47.03 padded to 256x384 -- the padding alone moves
2.8% of the pixels of this little-trained model), calibrated on its 3 training photos. Pixel agreement with fp32
eager (all pixels of the 3 val photos), mIoU, difference to fp32:

* bf16 eager (emulated): 99.93%, 47.04 (+0.02);
* int8 q/dq eager (8-bit activations): 99.91%, 47.01 (-0.02);
* int8 inductor (8-bit activations): 98.95%, 46.89 (-0.14) -- ten times the reference arithmetic's disagreement;
* int8 inductor, ``--reduce-range``: 99.85%, 47.03 (+0.00), as its own q/dq eager (99.86%): the 8-bit loss above
  is the AVX2 kernels' 16-bit saturation, which CPUs with VNNI / AMX do not have;
* int8 inductor, 8-bit, ``--fp-modules segmentor.decode_head.conv_seg segmentor.backbone.patch_embed`` (60 of 65
  conv / linear ops int8): 99.83%, 47.05 (+0.02; its q/dq eager 99.95%): the saturation hurts those two layers.

int8+bf16 inductor was not run there (its bf16 parts have no fast kernel on that CPU, and the emulation cannot reach
into compiled code); no speed figure of that machine counts. Command::

    .venv/bin/python tools/analysis/int8_report.py --parts segmentor --config CONFIG --checkpoint CKPT \
        --repeats 1 --warmup 0 --int8-eager --emulate-bf16 --no-bf16-inductor --no-int8-bf16 [--reduce-range]

The decision line says whether the fastest int8 variant is at least ``--min-speedup`` (1.3) times as fast as the
fastest bf16 variant with a mean relative L2 error of at most ``--max-rel-l2`` (2%; with ``--checkpoint``: with at
least ``--min-agreement`` of the pixels agreeing with fp32).
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
    trained = parser.add_argument_group('trained segmentor (part "segmentor" on photos instead of random inputs)')
    trained.add_argument('--checkpoint', metavar='PATH',
                         help="the segmentor's trained weights (a checkpoint the training of --config writes), "
                              'loaded strictly; the part then calibrates and evaluates on photos')
    trained.add_argument('--data-root', metavar='DIR', help="the photos' data root; default: the config's")
    trained.add_argument('--calib-split', choices=('train', 'val'), default='train',
                         help="calibrate on the photos of the config's train (default) or val dataloader")
    trained.add_argument('--min-agreement', type=float, default=0.97,
                         help='decision with --checkpoint: pixel agreement of the int8 class map with fp32')
    quant = parser.add_argument_group('quantization recipe')
    quant.add_argument('--fp-modules', nargs='+', default=[], metavar='NAME',
                       help='submodules left in floating point (quantization config None), e.g. '
                            'segmentor.decode_head.conv_seg segmentor.backbone.patch_embed')
    quant.add_argument('--reduce-range', action='store_true',
                       help='7-bit activations (0..127): no 16-bit saturation of u8*s8 products on CPUs without VNNI')
    quant.add_argument('--int8-eager', action='store_true',
                       help='also run the converted graph uncompiled (quantize / dequantize in float32): the error '
                            "of the quantization itself, without the int8 kernels'")
    parser.add_argument('--no-bf16-inductor', action='store_true', help='skip the bf16 inductor variant')
    parser.add_argument('--emulate-bf16', action='store_true',
                        help="bf16 eager's products computed in float32 from bf16 operands, rounded to bf16 "
                             '(tools/analysis/emulate_bf16.py): native-bf16 numbers on a CPU without bf16 units, '
                             'its times do not count')
    args = parser.parse_args(argv)
    if len(args.size) not in (1, 2):
        parser.error('--size takes one or two values (H [W])')
    if args.checkpoint and 'segmentor' not in args.parts:
        parser.error('--checkpoint is for the part "segmentor" (add --parts segmentor)')
    if (args.data_root or args.calib_split != 'train') and not args.checkpoint:
        parser.error('--data-root / --calib-split need --checkpoint (random weights run on random inputs)')
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


def build_segmentor(config: str, checkpoint: str | None = None) -> nn.Module:
    """The segmentor of ``config`` wrapped in :class:`SegmentorLogits`; with ``checkpoint`` every weight from it,
    strictly (missing or unexpected keys raise ``CheckpointMismatchError``, named and counted)."""
    from mmswin.apis.export import load_config, segmentor_from_config
    return SegmentorLogits(segmentor_from_config(load_config(config), checkpoint)).eval()


# ---------------------------------------------------------------------------------------------------------------
# Photos (--checkpoint): the config's val pipeline, normalised, padded to one size
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Photo:
    inputs: Tensor  # (1, 3, H, W): normalised, zero-padded on the right / bottom to the common size
    sample: Any  # its SegDataSample: metainfo (ori_shape, padding_size) and gt_sem_seg at the original size


def padded_size(shapes: Sequence[tuple[int, int]], multiple: int = 32) -> tuple[int, int]:
    """The smallest (H, W) that holds every shape, rounded up to ``multiple`` (Swin-T's coarsest stride)."""
    if not shapes:
        raise ValueError('no photos')
    return tuple(-(-max(s[i] for s in shapes) // multiple) * multiple for i in (0, 1))  # type: ignore[return-value]


def load_photos(config: str, segmentor: nn.Module, data_root: str | None) -> tuple[list[Photo], list[Photo], int]:
    """The val photos and the calibration photos (``--calib-split``), each through the val dataloader's pipeline
    (resize, annotations) and the segmentor's data preprocessor (BGR -> RGB, normalise), then zero-padded to one
    common size (a static shape for export and inductor; mmseg's ``postprocess_result`` crops the padding off).
    The calibration photos are the dataloader's files read with the val pipeline (no augmentation). Returns
    (val, calibration, number of classes)."""
    import torch.nn.functional as F
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from mmswin.apis.export import load_config
    cfg = load_config(config)
    init_default_scope('mmseg')

    def dataset(loader: str) -> Any:
        ds_cfg = copy.deepcopy(cfg[loader].dataset)
        ds_cfg.pipeline = copy.deepcopy(cfg.val_dataloader.dataset.pipeline)
        if data_root:
            ds_cfg.data_root = data_root
        return DATASETS.build(ds_cfg)

    val_set = dataset('val_dataloader')
    calib_set = val_set if ARGS.calib_split == 'val' else dataset('train_dataloader')
    num_classes = len(val_set.metainfo['classes'])
    prepared: dict[str, list[tuple[Tensor, Any]]] = {}
    for name, data in (('val', val_set), ('calib', calib_set)):
        items = []
        for i in range(len(data)):
            item = data[i]
            batch = segmentor.data_preprocessor(
                dict(inputs=[item['inputs']], data_samples=[item['data_samples']]), False)
            items.append((batch['inputs'], batch['data_samples'][0]))
        prepared[name] = items
    h, w = padded_size([tuple(x.shape[2:]) for items in prepared.values() for x, _ in items])
    photos: dict[str, list[Photo]] = {}
    for name, items in prepared.items():
        photos[name] = []
        for x, sample in items:
            pad_h, pad_w = h - x.shape[2], w - x.shape[3]
            sample.set_metainfo(dict(padding_size=[0, pad_w, 0, pad_h]))
            photos[name].append(Photo(F.pad(x, (0, pad_w, 0, pad_h), value=0.0), sample))
    log(f'photos: {len(photos["val"])} val, {len(photos["calib"])} calibration ({ARGS.calib_split}), '
        f'padded to {h}x{w}, {num_classes} classes')
    return photos['val'], photos['calib'], num_classes


def seg_scores(preds: Sequence[Tensor], refs: Sequence[Tensor], labels: Sequence[Tensor], num_classes: int,
               ignore_index: int = 255) -> dict[str, float]:
    """Class maps of one variant against the reference's (fp32 eager) and the ground truth, all images together:
    ``agreement`` (share of all pixels whose class is the reference's), ``agreement_labelled`` (the same over the
    pixels whose label is not ``ignore_index``), ``mIoU`` and ``aAcc`` in percent by mmseg's ``IoUMetric`` (areas
    summed over the images; classes with an empty union left out of the mean; not rounded)."""
    from mmseg.evaluation.metrics import IoUMetric
    same = total = same_labelled = labelled = 0
    areas = torch.zeros(4, num_classes, dtype=torch.float64)
    for pred, ref, label in zip(preds, refs, labels, strict=True):
        pred, ref, label = pred.squeeze(), ref.squeeze(), label.squeeze().to(pred)
        if not pred.shape == ref.shape == label.shape:
            raise ValueError(f'shapes differ: prediction {tuple(pred.shape)}, reference {tuple(ref.shape)}, '
                             f'label {tuple(label.shape)}')
        equal, known = pred == ref, label != ignore_index
        same, total = same + int(equal.sum()), total + equal.numel()
        same_labelled, labelled = same_labelled + int(equal[known].sum()), labelled + int(known.sum())
        areas += torch.stack(IoUMetric.intersect_and_union(pred, label, num_classes, ignore_index)).double()
    intersect, union, _, label_area = areas
    return dict(agreement=same / max(total, 1), agreement_labelled=same_labelled / max(labelled, 1),
                mIoU=100 * (intersect / union).nanmean().item(),
                aAcc=100 * (intersect.sum() / label_area.sum()).item())


def class_maps(v: Callable[[Tensor], tuple[Tensor, ...]], segmentor: nn.Module,
               photos: Sequence[Photo]) -> list[Tensor]:
    """The arg-max class map of each photo at its original size: ``v``'s logits on the padded input, the padding
    cropped off and resized by mmseg's ``postprocess_result`` (as ``predict`` does)."""
    maps = []
    for photo in photos:
        logits = v(photo.inputs)[0].float()
        maps.append(segmentor.postprocess_result(logits, [photo.sample.clone()])[0].pred_sem_seg.data)
    return maps


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
        emulate = self.bf16 and not self.compiled and ARGS.emulate_bf16
        with torch.no_grad(), autocast(self.bf16), bf16_emulation() if emulate else contextlib.nullcontext():
            return as_tuple(self.module(x))


def bf16_emulation() -> contextlib.AbstractContextManager:
    """``Bf16ProductsInFloat32`` of ``tools/analysis/emulate_bf16.py`` (eager only: a dispatch mode), the script
    loaded by path once (the tools are scripts, not a package; the name is the one tests/helpers.py gives it)."""
    name = 'mmswin_tool_analysis_emulate_bf16'
    if name not in sys.modules:
        import importlib.util
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, 'tools', 'analysis', 'emulate_bf16.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].Bf16ProductsInFloat32()


def quantize_pt2e(model: nn.Module, example: Tensor, calib: Sequence[Tensor]) -> tuple[nn.Module, dict[str, Any]]:
    """PT2E static quantization for the x86 inductor backend (``--reduce-range``: 7-bit activations;
    ``--fp-modules``: submodules without quantization config); returns the converted graph module (q / dq ops around
    float ops, int8 weights folded) and the wall seconds of each step plus the quantized op counts."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from mmswin.apis.quantize import int8_weight_ops, x86_quantizer  # the recipe tools/infer.py --int8 ships
    info: dict[str, Any] = {}
    t = time.perf_counter()
    with torch.no_grad():
        exported = torch.export.export(model, (example,)).module()
    info['export_s'] = time.perf_counter() - t
    targets = [str(n.target) for n in exported.graph.nodes if n.op == 'call_function']
    info['conv_linear_ops'] = sum(t.startswith(('aten.linear', 'aten.conv')) for t in targets)
    info['matmul_ops'] = sum(t.startswith('aten.matmul') for t in targets)  # Swin: the attention products
    t = time.perf_counter()
    for name in ARGS.fp_modules:
        if name not in dict(model.named_modules()):
            raise ValueError(f'--fp-modules: {model.__class__.__name__} has no submodule {name!r}')
    prepared = prepare_pt2e(exported, x86_quantizer(ARGS.reduce_range, ARGS.fp_modules))
    info['prepare_s'] = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        for batch in calib:
            prepared(batch)
    info['calibrate_s'] = time.perf_counter() - t
    info['calib_forwards'] = len(calib)
    t = time.perf_counter()
    converted = convert_pt2e(prepared)
    info['convert_s'] = time.perf_counter() - t
    targets = [str(n.target) for n in converted.graph.nodes if n.op == 'call_function']
    info['int8_weight_ops'] = int8_weight_ops(converted)
    info['act_quantize_ops'] = sum('quantize_per_tensor' in t and 'dequantize' not in t for t in targets)
    return converted, info


def build_variants(model: nn.Module, example: Tensor, calib: Sequence[Tensor],
                   failures: list[str]) -> tuple[list[Variant], dict[str, Any]]:
    """The variants of one part (compiled ones not yet called: their first call compiles)."""
    variants = [Variant('fp32 eager', model, False, 'fp32', False),
                Variant('bf16 eager (emulated)' if ARGS.emulate_bf16 else 'bf16 eager', model, True, 'bf16', False)]
    if not ARGS.no_bf16_inductor:
        variants.append(Variant('bf16 inductor', torch.compile(model), True, 'bf16', True))
    if ARGS.fp32_compiled:
        variants.append(Variant('fp32 inductor', torch.compile(model), False, 'fp32', True))
    quant: dict[str, Any] = {}
    try:
        log('export + prepare + calibrate + convert (PT2E) ...')
        converted, quant = quantize_pt2e(model, example, calib)
        log(f'quantized: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in quant.items()})}')
        prep = {k: quant[k] for k in ('export_s', 'prepare_s', 'calibrate_s', 'convert_s')}
        if ARGS.int8_eager:  # the reference arithmetic: quantize / dequantize around float32 ops, no int8 kernel
            variants.append(Variant('int8 q/dq eager', copy.deepcopy(converted), False, 'int8-reference', False,
                                    dict(prep)))
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


def measure_part(part: str, model: nn.Module, failures: list[str],
                 photos: tuple[list[Photo], list[Photo], int] | None = None) -> dict[str, Any]:
    """Build, time and compare the variants of one part: on random inputs, or with ``photos`` (val, calibration,
    classes) timed on the first val photo, calibrated on every calibration photo and its mirror image, and scored
    on every val photo (:func:`seg_scores`)."""
    if photos is None:
        h, w = ARGS.hw
        gen = torch.Generator().manual_seed(ARGS.seed + 1)
        x = torch.randn(ARGS.batch, 3, h, w, generator=gen)
        calib = [torch.randn(ARGS.batch, 3, h, w, generator=gen) for _ in range(ARGS.calib_batches)]
    else:
        x = photos[0][0].inputs
        calib = [t for p in photos[1] for t in (p.inputs, p.inputs.flip(3))]
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
    result: dict[str, Any] = dict(part=part, rows=rows, quantization=quant)
    if photos is not None and ref is not None:
        val, _, num_classes = photos
        segmentor = model.segmentor
        labels = [p.sample.gt_sem_seg.data for p in val]
        maps = {}
        for v, row in zip(ok, rows):
            log(f'{part}: {v.name} on {len(val)} val photos ...')
            maps[v.name] = class_maps(v, segmentor, val)
            row.update(seg_scores(maps[v.name], maps['fp32 eager'], labels, num_classes))
            row['mIoU_diff'] = row['mIoU'] - rows[0]['mIoU']
        plain = []
        with torch.no_grad():  # as the val loop: each photo at its own size, mmseg's predict
            for p in val:
                _, pad_w, _, pad_h = p.sample.padding_size
                sample = p.sample.clone()
                sample.set_metainfo(dict(padding_size=[0, 0, 0, 0]))
                inputs = p.inputs[..., :p.inputs.shape[2] - pad_h, :p.inputs.shape[3] - pad_w]
                plain.append(segmentor.predict(inputs, [sample])[0].pred_sem_seg.data)
        result['fp32_unpadded'] = seg_scores(plain, maps['fp32 eager'], labels, num_classes)
        result['photos'] = dict(val=len(val), calibration=len(photos[1]), calib_split=ARGS.calib_split,
                                padded_hw=list(x.shape[2:]))
    return result


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
    photos = 'photos' in result
    head = ['variant', 'ms / forward (CPU, median)', 'speed-up vs best bf16', 'max|dy| / max|y32| (worst map)',
            'rel. L2 (mean of maps)'] + (['pixels changing class'] if seg else [])
    if photos:
        head += ['pixel agreement with fp32 (all / labelled)', 'mIoU', 'mIoU - fp32']
    head.append('export..convert / compile s')
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
        if photos:
            cells += [f'{100 * r["agreement"]:.2f}% / {100 * r["agreement_labelled"]:.2f}%', f'{r["mIoU"]:.2f}',
                      f'{r["mIoU_diff"]:+.2f}'] if 'agreement' in r else ['--'] * 3
        cells.append(setup)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def decision(result: dict[str, Any]) -> tuple[bool | None, str]:
    rows = result['rows']
    bf16, int8 = best(rows, 'bf16'), best(rows, 'int8')
    if bf16 is None or int8 is None:
        return None, 'no decision: a bf16 or int8 variant is missing (see the failures)'
    speedup = bf16['cpu_ms'] / int8['cpu_ms']
    fast = speedup >= ARGS.min_speedup
    why = []
    why.append(f'fastest int8 ({int8["name"]}, {int8["cpu_ms"]:.0f} ms) is {speedup:.2f}x the fastest bf16 '
               f'({bf16["name"]}, {bf16["cpu_ms"]:.0f} ms): {"meets" if fast else "below"} the {ARGS.min_speedup}x bar')
    if 'agreement' in int8:  # trained weights on photos: the class maps decide
        agree = int8['agreement']
        small = agree >= ARGS.min_agreement
        why.append(f'{100 * agree:.2f}% of its pixels agree with fp32 (bf16: '
                   f'{100 * bf16.get("agreement", float("nan")):.2f}%; '
                   f'{"at least" if small else "below"} {100 * ARGS.min_agreement:g}%), mIoU {int8["mIoU_diff"]:+.2f}')
    else:
        err = int8.get('rel_l2', float('nan'))
        small = err <= ARGS.max_rel_l2
        why.append(f'its mean relative L2 error {err:.2e} (bf16: {bf16.get("rel_l2", float("nan")):.2e}) is '
                   f'{"within" if small else "above"} {ARGS.max_rel_l2:.0e}')
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():  # bf16 runs emulated: no speed figure counts here
        why.append('this CPU has no native bfloat16: the speed-up does not count, re-measure on one that has')
        verdict = 'LEAVE OUT' if not small else 'NO DECISION (speed)'
        return (False if not small else None), f'{verdict}: ' + '; '.join(why)
    verdict = 'SHIP' if fast and small else 'LEAVE OUT'
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
               quantized_engine=torch.backends.quantized.engine, reduce_range=ARGS.reduce_range,
               fp_modules=ARGS.fp_modules, checkpoint=ARGS.checkpoint,
               inductor_cache=os.environ.get('TORCHINDUCTOR_CACHE_DIR', 'default'))
    log(json.dumps(env))
    failures: list[str] = []
    results = []
    for part in ARGS.parts:
        log(f'building {part} ...')
        trained = part == 'segmentor' and ARGS.checkpoint
        try:
            model = build_backbone() if part == 'backbone' else build_segmentor(ARGS.config, ARGS.checkpoint)
            photos = load_photos(ARGS.config, model.segmentor, ARGS.data_root) if trained else None
        except Exception as exc:  # noqa: BLE001
            if trained:  # a wrong checkpoint or data root is the user's to fix: say it, do not measure random weights
                raise
            failures.append(f'{part}: build: {last_line(exc)}')
            log(traceback.format_exc())
            continue
        if not trained:
            reinit_(model, ARGS.seed)
        results.append(measure_part(part, model.eval(), failures, photos))
        del model

    recipe = ('reduce_range (7-bit activations)' if ARGS.reduce_range else '8-bit activations') + (
        f', in floating point: {" ".join(ARGS.fp_modules)}' if ARGS.fp_modules else '')
    print(f'\n# int8 (PT2E, X86InductorQuantizer, {recipe}) vs bf16 / fp32 on the CPU -- torch {env["torch"]}, '
          f'torchao {env["torchao"]}, {ARGS.threads} thread(s), batch {ARGS.batch} at {h}x{w} (random inputs), CPU '
          f'capability {env["cpu_capability"]}, native bf16 {env["mkldnn_bf16"]}, quantized engine '
          f'{env["quantized_engine"]}, median of {ARGS.repeats} interleaved runs\n')
    verdicts = []
    for result in results:
        title = ('Swin-T backbone (4 maps)' if result['part'] == 'backbone'
                 else f'UperNet segmentor, logits ({os.path.basename(ARGS.config)})')
        if 'photos' in result:
            ph = result['photos']
            title += (f', trained weights {ARGS.checkpoint}: batch 1 at {ph["padded_hw"][0]}x{ph["padded_hw"][1]} '
                      f'(the val pipeline, zero-padded), scored on {ph["val"]} val photos, calibrated on '
                      f'{ph["calibration"]} {ph["calib_split"]} photos and their mirror images')
        print(f'## {title}\n')
        print(table(result))
        if 'fp32_unpadded' in result:
            print(f'\nfp32 eager without the padding (each photo at its own size, as the val loop): mIoU '
                  f'{result["fp32_unpadded"]["mIoU"]:.2f}, {100 * result["fp32_unpadded"]["agreement"]:.2f}% of '
                  'the pixels agree with the padded fp32 eager.')
        q = result['quantization']
        if q:
            print(f'\nquantized: {q["int8_weight_ops"]} of {q["conv_linear_ops"]} conv / linear ops with int8 weights, '
                  f'{q["act_quantize_ops"]} activation quantize ops; {q["matmul_ops"]} matmul ops (the attention '
                  f'products) in floating point. export {q["export_s"]:.1f} s, prepare {q["prepare_s"]:.1f} s, '
                  f'calibrate ({q["calib_forwards"]} forwards) {q["calibrate_s"]:.1f} s, '
                  f'convert {q["convert_s"]:.1f} s.')
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
