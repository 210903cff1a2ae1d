"""Export of mmswin backbones and of mmseg segmentors built on them: ONNX (dynamic batch, height and width) and
``torch.export`` programs, the exportable minimum size, and verification against PyTorch. The command line is
``tools/deployment/export_onnx.py``.

Exporter: the dynamo-based ``torch.onnx.export(..., dynamo=True)`` (needs ``onnxscript``), fed with an
``ExportedProgram`` this tool captures itself (``torch.export.export(strict=False)`` under
``backed_size_oblivious``, as the ONNX exporter does internally). The TorchScript exporter (``dynamo=False``) cannot
export these backbones with dynamic sizes: its tracer records the sizes computed from ``x.shape`` as graph values,
and the patch merging's ``F.layer_norm(x, (4 * C,), ...)`` then fails with "Failed to export a node ... because it
is not constant" (torch 2.14.1). Capturing the program here instead of letting ``torch.onnx.export`` do it has one
purpose: on a constraint violation the ONNX exporter silently *narrows* the dynamic dimensions to what the
violation suggests (a fixed batch, a larger minimum, or a size fixed to the sample's), whereas this tool stops with
the reason. The sizes of the written file are checked to be symbolic as well.

Dynamic sizes and the exportable minimum: torch specialises every size-1 dimension of the sample it traces. A
Swin stage whose map fits in one window along a side, or a Shunted attention whose aggregated map is one token
along a side, has such a dimension, so the sample input -- and the lower end of the exported range -- must keep
every stage above that:

* Swin (patch 4, window 7, four stages): every stage at least two windows per side, i.e. a last-stage map of at
  least 8 tokens: sides >= 225 px (``7 * 32 + 1``); with ``out_indices`` ending at stage 2: 113 px.
* Shunted (paper sr ratios 8, 4, 2, 1): the stage-1 aggregation (stride 8 on the stride-4 map) at least two
  tokens: sides >= 63 px (the model itself accepts >= 32 px).

:func:`min_export_side` computes the minimum from the model's modules; a smaller ``--shape`` or ``--min-size`` is
refused. The batch is dynamic (1 and up) in the ONNX file. The ``.pt2`` program keeps the batch of ``--batch``
fixed: with a dynamic batch, the Swin graph carries the runtime assertion ``batch != 1`` (its expanded shift mask
is reshaped as a view for one image and copied for more), so it would refuse the most common batch; Shunted has no
such assertion but is treated the same. The ONNX graph carries no runtime assertion at all (the exporter drops
them); it accepts any size, and on the sizes tried (down to 1x1 for Swin, 32x40 for Shunted) it computes the same
numbers as PyTorch -- but only the range ``[minimum, --max-size]`` is what this tool exports and checks.

Segmentor (mmseg ``EncoderDecoder``, e.g. UperNet): the exported module is :class:`SegmentorPredictor`, the
``'whole'`` test mode of ``model.predict`` after the data pre-processor: ``encode_decode`` (backbone, neck, decode
head, bilinear resize to the input size), then the arg-max over classes (sigmoid and the head's threshold for a
one-class head; ``logits`` is then the probability, as ``seg_logits`` of ``predict``). Inputs are normalised images
(the data pre-processor's mean / std / BGR->RGB are not included); no padding is applied or removed, so outputs are
the input's size. The auxiliary head is not used (as in ``predict``). For the ONNX file, ``nn.AdaptiveAvgPool2d``
(UperNet's pyramid pooling) is replaced by :class:`ExportableAdaptiveAvgPool2d`, the same average as two pooling
matrices: the ONNX translation of ``adaptive_avg_pool2d`` bakes the sample's kernel sizes and gather indices into
the graph, so for any other input size whose map is not a multiple of the output size its results are wrong
(max abs error 0.2-0.4 on random maps) or ONNX Runtime fails with "indices element out of data bounds".

Not exported: detectors (Mask R-CNN, Cascade R-CNN: RPN proposals, RoIAlign, NMS and per-image post-processing have
no dynamic-shape ONNX form here): use mmdeploy (https://github.com/open-mmlab/mmdeploy); this tool exports their
backbone (``--part backbone``). Slide-window test mode is not exported (the graph does ``'whole'`` inference).

``--verify`` runs the ONNX file in ONNX Runtime (CPU) and, with ``--torch-export``, the loaded ``.pt2`` program, at
three input sizes (odd ones included) and prints the largest absolute difference to eager PyTorch (for a
segmentor: to ``model.predict``, plus the class-map pixels that differ); it fails above ``--atol`` (1e-4), or
when a class differs where the two best reference logits are not within twice the logit difference (a float tie).
Measured with random weights on 2 CPU cores (export seconds; largest difference over 256x320, 257x321, 2x417x333):
Swin-T backbone 55 s, 5.3e-6; Shunted-T backbone 45 s, 1.1e-5; UperNet Swin-T (150 classes) 52 s, 3.9e-5 with
identical class maps; every ``.pt2`` program 12-15 s, exactly equal. The segmentor's larger difference is ONNX
Runtime's bilinear ``Resize`` at non-integer scales (odd sizes): it maps output to input coordinates through the
float32 scale ``out / in`` where PyTorch uses ``in / out``, which moves the sample points by ~1e-5 px (alone:
5e-4 on maps of magnitude 40 with random neighbours); if a trained model fails ``--verify`` by a small margin at
odd sizes only, that is why, and ``--atol`` can be relaxed knowingly.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    'ExportError', 'backbone_families', 'build_backbone', 'load_config', 'resolve_part', 'backbone_from_config',
    'segmentor_from_config', 'min_export_side', 'SegmentorPredictor', 'ExportableAdaptiveAvgPool2d',
    'replace_adaptive_pools', 'capture', 'export_onnx', 'export_pt2', 'default_verify_sizes', 'verify_onnx',
    'verify_pt2', 'segmentor_reference', 'format_table', 'check_side', 'backbone_family', 'reference_outputs',
    'load_backbone_weights', 'DEFAULT_MAX_SIDE', 'ONNX_SAMPLE_BATCH',
]

DEFAULT_MAX_SIDE = 8192
ONNX_SAMPLE_BATCH = 2  # > 1, so that the batch stays a symbol (a size-1 sample dimension is specialised)
TWO_STAGE_KEYS = ('rpn_head', 'roi_head')


class ExportError(Exception):
    """A user-facing reason why the export cannot be done as asked, with what to do instead."""


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------
def _backbone_classes() -> dict[str, type]:
    """Every registered mmswin backbone family: ``{family: class}`` (see ``mmswin.models.backbones.base``)."""
    import mmswin.models  # noqa: F401  (registers the backbones)
    from mmswin.models.backbones.base import FAMILIES
    return dict(FAMILIES)


def backbone_families() -> tuple[str, ...]:
    """The family names ``--backbone`` takes: ``('swin', 'shunted', ...)``."""
    return tuple(_backbone_classes())


def backbone_family(backbone: nn.Module) -> str:
    """The family name of an mmswin backbone (``'swin'``, ``'shunted'``)."""
    from mmswin.models.backbones.base import PyramidBackbone
    if isinstance(backbone, PyramidBackbone) and backbone.family:
        return backbone.family
    raise ExportError(f'{type(backbone).__name__} is not an mmswin backbone: this tool exports the mmswin backbones '
                      f'({", ".join(f"mmswin.{c.__name__}" for c in _backbone_classes().values())}) and '
                      'segmentors built on them')


def build_backbone(name: str, arch: str | Mapping[str, Any] = 'tiny', **kwargs: Any) -> nn.Module:
    """An mmswin backbone by family name, in eval mode, random weights (drop-path 0).

    Raises:
        ExportError: ``name`` is not a family (:func:`backbone_families`), or the arch / options are invalid.
    """
    classes = _backbone_classes()
    if name not in classes:
        raise ExportError(f'unknown backbone {name!r}: this tool exports the families '
                          f'{", ".join(f"{f!r} (mmswin.{c.__name__})" for f, c in classes.items())}; pass one of '
                          'them to --backbone, or a config whose model.backbone is one of them')
    kwargs.setdefault('drop_path_rate', 0.0)
    try:
        return classes[name](arch=arch, **kwargs).eval()
    except (TypeError, ValueError) as exc:
        raise ExportError(f'cannot build the {name} backbone with arch={arch!r}, options {kwargs}: {exc}') from exc


def load_config(path: str, cfg_options: Mapping[str, Any] | None = None) -> Any:
    """The config as every tool loads it (:func:`mmswin.apis.load_config`: ``--cfg-options`` typos refused, the
    task checked); a missing file or a refused option is an :class:`ExportError`."""
    from mmswin.apis.config import load_config as load_tool_config
    from mmswin.apis.errors import ConfigError
    if not osp.isfile(path):
        raise ExportError(f'config not found: {path}')
    try:
        return load_tool_config(path, cfg_options)
    except ConfigError as exc:
        raise ExportError(str(exc)) from exc


def resolve_part(cfg: Any, part: str = 'auto') -> str:
    """``'backbone'`` or ``'segmentor'``: what of ``cfg.model`` gets exported.

    Raises:
        ExportError: a detector asked for whole (two-stage detectors need mmdeploy), a model that is neither a
            detector nor an mmseg ``EncoderDecoder``, or a model without a backbone.
    """
    model = cfg.model
    model_type = str(model.get('type', '?'))
    if 'backbone' not in model:
        raise ExportError(f'the config\'s model ({model_type}) has no backbone: nothing this tool can export')
    if part == 'backbone':
        return 'backbone'
    two_stage = [k for k in TWO_STAGE_KEYS if model.get(k) is not None]
    if two_stage:
        raise ExportError(
            f'the config\'s model is a two-stage detector ({model_type}: {" + ".join(two_stage)}). Its heads '
            '(region proposals, RoIAlign, NMS, per-image box and mask post-processing) are not exported by this '
            'tool: export the whole detector with mmdeploy (https://github.com/open-mmlab/mmdeploy, e.g. its '
            'detection ONNX Runtime deploy config). This tool can export only the backbone: add --part backbone.')
    if cfg.get('default_scope') == 'mmdet' or 'bbox_head' in model:
        raise ExportError(
            f'the config\'s model is a detector ({model_type}). Its box decoding and NMS are not exported by this '
            'tool: export the whole detector with mmdeploy (https://github.com/open-mmlab/mmdeploy). This tool can '
            'export only the backbone: add --part backbone.')
    if 'decode_head' not in model or 'EncoderDecoder' not in model_type:
        raise ExportError(f'the config\'s model ({model_type}) is not an mmseg EncoderDecoder segmentor: this '
                          'tool exports mmseg segmentors whole; for other models add --part backbone')
    return 'segmentor'


def backbone_from_config(cfg: Any, checkpoint: str | None = None) -> nn.Module:
    """``cfg.model.backbone`` built with its ``init_cfg`` dropped and drop-path 0; weights from ``checkpoint``
    (any layout the backbone's ``load_pretrained`` converts, ``backbone.`` prefix stripped) or random.

    Raises:
        ExportError: the backbone is not an mmswin backbone, or the checkpoint does not fit.
    """
    from mmengine.registry import MODELS, init_default_scope
    _backbone_classes()
    bcfg = copy.deepcopy(cfg.model.backbone)
    bcfg['init_cfg'] = None
    bcfg['drop_path_rate'] = 0.0
    btype = str(bcfg.get('type', '?'))
    ours = {f'mmswin.{cls.__name__}' for cls in _backbone_classes().values()}
    if btype not in ours:
        raise ExportError(f'unknown backbone type {btype!r} in the config: this tool exports '
                          f'{", ".join(repr(t) for t in sorted(ours))} (an unscoped '
                          "'SwinTransformer' is mmdet's / mmseg's own class)")
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    try:
        backbone = MODELS.build(bcfg)
    except (TypeError, ValueError, KeyError) as exc:
        raise ExportError(f'cannot build the config\'s backbone {btype}: {exc}') from exc
    if checkpoint:
        load_backbone_weights(backbone, checkpoint, "the config's backbone")
    return backbone.eval()


def load_backbone_weights(backbone: nn.Module, checkpoint: str, what: str) -> None:
    """``backbone.load_pretrained(checkpoint)`` (any layout its family converts), failures as :class:`ExportError`
    naming ``what`` the weights were meant for."""
    try:
        backbone.load_pretrained(checkpoint)
    except FileNotFoundError as exc:
        raise ExportError(f'checkpoint not found: {checkpoint}') from exc
    except Exception as exc:  # CheckpointMismatchError, ValueError: the checkpoint is of another model
        raise ExportError(f'{checkpoint} does not fit {what}: {exc}') from exc


def segmentor_from_config(cfg: Any, checkpoint: str | None = None) -> nn.Module:
    """The mmseg segmentor of ``cfg`` in eval mode, SyncBN reverted to BN, the backbone's ``init_cfg`` dropped;
    every weight from ``checkpoint`` (strict) or random.

    Raises:
        CheckpointFileError / CheckpointMismatchError: see :func:`mmswin.apis.models.load_model_checkpoint`.
    """
    from mmswin.apis.models import build_model
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone['init_cfg'] = None
    model = build_model(cfg)  # eval mode, SyncBN reverted, no train_cfg
    backbone_family(model.backbone)
    if checkpoint:
        from mmswin.apis.models import load_model_checkpoint
        load_model_checkpoint(model, checkpoint)  # strict, with the project's report (a user error: exit 1)
    test_cfg = model.test_cfg if model.test_cfg is not None else {}
    if test_cfg.get('mode', 'whole') != 'whole':
        print(f'[export] note: the config tests in {test_cfg.get("mode")!r} mode; the exported graph does '
              "'whole'-image inference (and --verify compares with 'whole' mode)")
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# The exportable minimum
# ----------------------------------------------------------------------------------------------------------------
def min_export_side(backbone: nn.Module) -> int:
    """The smallest input side for which no map of ``backbone`` has a size-1 side (which torch would specialise):
    the backbone's own ``min_export_side()`` (225 for Swin-T, 63 for Shunted with the paper's sr ratios)."""
    backbone_family(backbone)
    try:
        return backbone.min_export_side()
    except ValueError as exc:
        raise ExportError(str(exc)) from exc


def check_side(side: int, minimum: int, backbone: nn.Module, what: str) -> None:
    """Raise :class:`ExportError` if ``side`` is below the exportable ``minimum``."""
    if side < minimum:
        raise ExportError(
            f'{what} {side} is below the exportable minimum {minimum} px of this backbone: {backbone.export_rule}. '
            'A side of one window / token is a size-1 dimension, which torch specialises, so the exported graph '
            f'would accept only that size. Use sides >= {minimum} (e.g. --shape {max(minimum, 256)} '
            f'{max(minimum, 256) + 64}).')


# ----------------------------------------------------------------------------------------------------------------
# Segmentor in predict mode
# ----------------------------------------------------------------------------------------------------------------
def _pool_matrix(size: Tensor | int, out: int, like: Tensor) -> Tensor:
    """``(out, size)``: row ``i`` averages ``[floor(i*size/out), ceil((i+1)*size/out))``, PyTorch's adaptive bins."""
    i = torch.arange(out, device=like.device)
    start = torch.div(i * size, out, rounding_mode='floor')
    end = torch.div((i + 1) * size + out - 1, out, rounding_mode='floor')
    idx = torch.arange(size, device=like.device)
    inside = ((idx[None, :] >= start[:, None]) & (idx[None, :] < end[:, None])).to(like.dtype)  # out, size
    return inside / inside.sum(dim=1, keepdim=True)


class ExportableAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as ``P_h @ x @ P_w^T`` with pooling matrices built from the (symbolic) input
    size, so that one ONNX graph serves every input size (see the module docstring)."""

    def __init__(self, output_size: int | Sequence[int | None]) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        oh = h if self.output_size[0] is None else self.output_size[0]
        ow = w if self.output_size[1] is None else self.output_size[1]
        ph, pw = _pool_matrix(h, oh, x), _pool_matrix(w, ow, x)  # oh, H and ow, W
        return torch.matmul(torch.matmul(ph, x), pw.transpose(0, 1))  # B, C, oh, ow


def replace_adaptive_pools(module: nn.Module) -> int:
    """Replace every ``nn.AdaptiveAvgPool2d`` inside ``module`` (in place); returns how many."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.AdaptiveAvgPool2d):
            setattr(module, name, ExportableAdaptiveAvgPool2d(child.output_size))
            count += 1
        else:
            count += replace_adaptive_pools(child)
    return count


class SegmentorPredictor(nn.Module):
    """An mmseg ``EncoderDecoder`` in ``'whole'`` predict mode on normalised images.

    ``(B, 3, H, W)`` -> ``seg`` ``(B, H, W)`` int64 class map and ``logits`` ``(B, C, H, W)`` float, equal to
    ``pred_sem_seg`` / ``seg_logits`` of ``model.predict`` on the same (unpadded) input.
    """

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        size = inputs.shape[2:]  # a torch.Size: decode_head.predict_by_feat resizes the logits to it
        logits = self.segmentor.encode_decode(inputs, [dict(img_shape=size)])  # B, C, H, W
        if logits.shape[1] > 1:
            return logits.argmax(dim=1), logits
        probs = logits.sigmoid()
        return (probs > self.segmentor.decode_head.threshold).long().squeeze(1), probs


def segmentor_reference(segmentor: nn.Module, inputs: Tensor) -> tuple[Tensor, Tensor]:
    """``model.predict`` in ``'whole'`` mode on ``inputs`` (normalised, unpadded): ``(seg, logits)`` stacked."""
    from mmseg.structures import SegDataSample
    h, w = inputs.shape[-2:]
    meta = dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])
    saved = segmentor.test_cfg
    segmentor.test_cfg = copy.deepcopy(saved) if saved is not None else None
    if segmentor.test_cfg is not None:
        segmentor.test_cfg['mode'] = 'whole'
    try:
        with torch.no_grad():
            samples = segmentor.predict(inputs, [SegDataSample(metainfo=dict(meta)) for _ in range(inputs.shape[0])])
    finally:
        segmentor.test_cfg = saved
    seg = torch.stack([s.pred_sem_seg.data[0].long() for s in samples])
    logits = torch.stack([s.seg_logits.data for s in samples])
    return seg, logits


# ----------------------------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------------------------
def _dims(min_side: int, max_side: int, batch: bool) -> tuple[dict[int, Any]]:
    from torch.export import Dim
    spec: dict[int, Any] = {2: Dim('height', min=min_side, max=max_side), 3: Dim('width', min=min_side, max=max_side)}
    if batch:
        spec[0] = Dim('batch', min=1, max=4096)
    return (spec,)


def capture(module: nn.Module, sample: Tensor, min_side: int, max_side: int = DEFAULT_MAX_SIDE,
            dynamic_batch: bool = True, inference: bool = False) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``module`` (eval) with dynamic height / width in ``[min_side, max_side]`` (and
    batch), non-strict, with ``backed_size_oblivious`` and deferred runtime asserts (as ``torch.onnx`` does).

    ``inference``: trace under ``torch.no_grad()``, as eager inference runs. Swin's attention then takes its
    ``F.scaled_dot_product_attention`` branch (kept as one op in the program), which the ONNX exporter cannot
    decompose with a dynamic batch ("Cannot view a tensor with shape ... and strides ..."), so the ONNX export
    traces with gradients enabled (Swin's explicit-product branch on the CPU, the same function).

    Raises:
        ExportError: torch could not keep a size dynamic over the range (the violated guard is quoted).
    """
    module.eval()
    try:
        with torch.fx.experimental._config.patch(backed_size_oblivious=True), torch.set_grad_enabled(not inference):
            return torch.export.export(module, (sample,), dynamic_shapes=_dims(min_side, max_side, dynamic_batch),
                                       strict=False, prefer_deferred_runtime_asserts_over_guards=True)
    except torch._dynamo.exc.UserError as exc:
        raise ExportError(f'torch.export cannot keep the input sizes dynamic over height / width '
                          f'[{min_side}, {max_side}]{" and batch >= 1" if dynamic_batch else ""} with the sample '
                          f'{tuple(sample.shape)}: {exc}') from exc


def _symbol_names(program: torch.export.ExportedProgram, dynamic_batch: bool) -> dict[str, str]:
    placeholder = next(n for n in program.graph.nodes if n.op == 'placeholder'
                       and n.name not in program.graph_signature.inputs_to_parameters
                       and n.name not in program.graph_signature.inputs_to_buffers)
    shape = placeholder.meta['val'].shape
    names = {str(shape[2]): 'height', str(shape[3]): 'width'}
    if dynamic_batch:
        names[str(shape[0])] = 'batch'
    return names


def _rename_dims(proto: Any, names: Mapping[str, str]) -> None:
    pattern = re.compile(r'\b(' + '|'.join(re.escape(k) for k in names) + r')\b')
    graph = proto.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField('dim_param'):
                dim.dim_param = pattern.sub(lambda m: names[m.group(1)], dim.dim_param)


def export_onnx(module: nn.Module, path: str, sample: Tensor, min_side: int, max_side: int = DEFAULT_MAX_SIDE,
                output_names: Sequence[str] | None = None, opset: int | None = None) -> dict[str, Any]:
    """Export ``module`` to ``path`` (ONNX, dynamo exporter) with dynamic batch, height and width.

    ``sample`` must have a batch > 1 and sides >= ``min_side``. Returns ``dict(path, seconds, opset, inputs,
    outputs)`` (shapes with the symbolic dimension names).

    Raises:
        ExportError: a dimension could not be kept dynamic, or the written graph has a fixed batch / size.
    """
    import onnx
    start = time.perf_counter()
    program = capture(module, sample, min_side, max_side, dynamic_batch=True)
    with torch.fx.experimental._config.patch(backed_size_oblivious=True):
        onnx_program = torch.onnx.export(program, (sample,), dynamo=True, opset_version=opset, verbose=False,
                                         input_names=['input'], output_names=list(output_names or []) or None)
    proto = onnx_program.model_proto
    _rename_dims(proto, _symbol_names(program, dynamic_batch=True))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    large = proto.ByteSize() > 1_900_000_000
    onnx.save_model(proto, path, save_as_external_data=large, location=osp.basename(path) + '.data' if large else None)
    seconds = time.perf_counter() - start

    def shape(value: Any) -> list[int | str]:
        return [d.dim_param if d.HasField('dim_param') else d.dim_value for d in value.type.tensor_type.shape.dim]

    inputs = {v.name: shape(v) for v in proto.graph.input}
    outputs = {v.name: shape(v) for v in proto.graph.output}
    fixed = [(i, d) for i, d in enumerate(inputs['input']) if i != 1 and not isinstance(d, str)]
    if fixed:
        raise ExportError(f'the exported ONNX graph fixed input dimensions {fixed} (expected batch, height, width '
                          f'symbolic): {inputs}')
    opset_used = next((o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')), None)
    return dict(path=path, seconds=seconds, opset=opset_used, inputs=inputs, outputs=outputs)


def export_pt2(module: nn.Module, path: str, sample: Tensor, min_side: int,
               max_side: int = DEFAULT_MAX_SIDE) -> dict[str, Any]:
    """``torch.export`` ``module`` with dynamic height / width (batch fixed to the sample's) and save it to
    ``path``; returns ``dict(path, seconds, range_constraints)``."""
    start = time.perf_counter()
    program = capture(module, sample, min_side, max_side, dynamic_batch=False, inference=True)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.export.save(program, path)
    names = _symbol_names(program, dynamic_batch=False)
    ranges = {names.get(str(k), str(k)): (int(v.lower), None if str(v.upper) in ('oo', 'int_oo') else int(v.upper))
              for k, v in program.range_constraints.items()}
    return dict(path=path, seconds=time.perf_counter() - start, range_constraints=ranges)


# ----------------------------------------------------------------------------------------------------------------
# Verification
# ----------------------------------------------------------------------------------------------------------------
def default_verify_sizes(min_side: int) -> list[tuple[int, int, int]]:
    """Three ``(batch, H, W)``: a multiple of 32, odd sides, and taller than wide with batch 2 -- for a minimum
    of at most 256: ``(1, 256, 320), (1, 257, 321), (2, 417, 333)``."""
    base = max(256, -(-min_side // 32) * 32)
    return [(1, base, base + 64), (1, base + 1, base + 65), (2, base + 161, base + 77)]


def _as_tuple(outputs: Any) -> tuple[Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def _compare(got: Sequence[Any], ref: Sequence[Tensor], segmentor: bool) -> dict[str, Any]:
    got = [torch.as_tensor(g) for g in got]
    if not segmentor:
        diff = max(float((g.float() - r.float()).abs().max()) for g, r in zip(got, ref))
        return dict(max_abs_diff=diff, max_abs_ref=max(float(r.abs().max()) for r in ref))
    seg, logits = got
    ref_seg, ref_logits = ref
    diff = float((logits - ref_logits).abs().max())
    wrong = seg != ref_seg
    top2 = ref_logits.topk(2, dim=1).values if ref_logits.shape[1] > 1 else None
    margin = (top2[:, 0] - top2[:, 1]) if top2 is not None else (ref_logits[:, 0] - 0.5).abs()
    return dict(max_abs_diff=diff, max_abs_ref=float(ref_logits.abs().max()), seg_mismatch=int(wrong.sum()),
                seg_mismatch_not_tie=int((wrong & (margin > 2 * diff)).sum()), pixels=int(ref_seg.numel()))


def reference_outputs(module: nn.Module, segmentor: nn.Module | None) -> Callable[[Tensor], tuple[Tensor, ...]]:
    if segmentor is not None:
        return lambda x: segmentor_reference(segmentor, x)

    def run(x: Tensor) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return _as_tuple(module(x))
    return run


def _row(kind: str, size: tuple[int, int, int], result: dict[str, Any], atol: float) -> dict[str, Any]:
    ok = result['max_abs_diff'] <= atol and result.get('seg_mismatch_not_tie', 0) == 0
    return dict(kind=kind, batch=size[0], height=size[1], width=size[2], ok=ok, **result)


def verify_onnx(path: str, reference: Callable[[Tensor], tuple[Tensor, ...]],
                sizes: Sequence[tuple[int, int, int]], atol: float = 1e-4, segmentor: bool = False,
                seed: int = 0) -> list[dict[str, Any]]:
    """Run ``path`` in ONNX Runtime (CPU) at each ``(batch, H, W)`` on random inputs; compare with
    ``reference(x)``. Rows: ``max_abs_diff`` (and for a segmentor the class-map pixels that differ, and those of
    them that are not near-ties of the reference logits), ``ok``, ``seconds``."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    rows = []
    gen = torch.Generator().manual_seed(seed)
    for size in sizes:
        x = torch.randn(size[0], 3, size[1], size[2], generator=gen)
        start = time.perf_counter()
        got = session.run(None, {'input': x.numpy()})
        seconds = time.perf_counter() - start
        rows.append(_row('onnxruntime', size, dict(_compare(got, reference(x), segmentor), seconds=seconds), atol))
    return rows


def verify_pt2(path: str, reference: Callable[[Tensor], tuple[Tensor, ...]], sizes: Sequence[tuple[int, int, int]],
               atol: float = 1e-4, segmentor: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    """Load the ``.pt2`` program at ``path`` and compare it with ``reference`` as :func:`verify_onnx` does."""
    program = torch.export.load(path).module()
    rows = []
    gen = torch.Generator().manual_seed(seed)
    for size in sizes:
        x = torch.randn(size[0], 3, size[1], size[2], generator=gen)
        start = time.perf_counter()
        with torch.no_grad():
            got = _as_tuple(program(x))
        seconds = time.perf_counter() - start
        rows.append(_row('torch.export', size, dict(_compare(got, reference(x), segmentor), seconds=seconds), atol))
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The verification rows as a fixed-width text table."""
    seg = any('seg_mismatch' in r for r in rows)
    head = f'{"runtime":<13}{"batch":>6}{"H x W":>12}{"max abs diff":>15}{"max |ref|":>11}' \
        + (f'{"seg mismatch":>15}' if seg else '') + f'{"seconds":>9}  ok'
    lines = [head, '-' * len(head)]
    for r in rows:
        size = f'{r["height"]}x{r["width"]}'
        line = f'{r["kind"]:<13}{r["batch"]:>6}{size:>12}{r["max_abs_diff"]:>15.3e}{r["max_abs_ref"]:>11.3g}'
        if seg:
            line += f'{str(r.get("seg_mismatch", "")) + "/" + str(r.get("pixels", "")):>15}'
        line += f'{r["seconds"]:>9.2f}  {"yes" if r["ok"] else "NO"}'
        lines.append(line)
    return '\n'.join(lines)
