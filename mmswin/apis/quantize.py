"""int8 inference of mmseg segmentors on the CPU: static post-training quantization (PT2E).

The flow, in :func:`quantize_segmentor`: the segmentor's backbone, neck and decode head (``inputs -> decode-head
logits``, :class:`DecodeHeadLogits`; auxiliary heads are not run in inference) are captured by ``torch.export``
with dynamic height and width (:func:`mmswin.apis.export.capture`), annotated by torchao's
``X86InductorQuantizer`` (int8 weights per output channel, uint8 activations per tensor; convolutions and linear
layers, not the attention's matrix products), calibrated on a few images, converted, and then compiled by
inductor with ``freezing`` (weights folded and prepacked: the quantize / dequantize pairs become oneDNN int8
convolution and linear kernels). Inductor compiles one graph per input size (compiling the dynamic graph once did
not finish in 15 minutes on 2 cores), each in 80-100 s on 2 cores for UperNet + Swin-T: int8 pays where many images
share a size (a camera, a video), not for photos of every size.

:func:`install_int8` makes ``segmentor.encode_decode`` call the quantized graph and mmseg's own
``decode_head.predict_by_feat`` (the float resize to the image), so ``inference_model`` / ``test_step`` /
``predict`` run int8 unchanged (in ``'slide'`` mode window by window: not tested). Inputs with a side below the
backbone's exportable minimum (225 px for Swin) run in float32.

On CPUs without VNNI (AVX2 only), 8-bit activations let ``vpmaddubsw``'s 16-bit sums saturate; the activations are
then quantized to 7 bits (``reduce_range``, the x86 recipe), measured: 99.85% of a trained UperNet's pixels keep
fp32's class with 7 bits against 98.95% with 8 bits on such a CPU.

Needs ``torchao`` (0.18 for torch 2.14, ``pip install 'torchao==0.18.*'``); imported only when called.
"""
from __future__ import annotations

import copy
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .errors import ToolError

__all__ = ['DecodeHeadLogits', 'Int8Graphs', 'TORCHAO_INSTALL', 'calibration_inputs', 'default_reduce_range',
           'install_int8', 'int8_weight_ops', 'quantize_segmentor', 'require_int8', 'use_int8', 'x86_quantizer']

TORCHAO_INSTALL = "pip install 'torchao==0.18.*'"


def require_int8(device: str) -> None:
    """Raise :class:`ToolError` unless int8 inference can run: a CPU device and torchao importable."""
    if device.split(':')[0] != 'cpu':
        raise ToolError(f'--int8 is CPU inference (x86 oneDNN int8 kernels); it cannot run on {device}: add '
                        '--device cpu, or drop --int8 (use --amp on a GPU)')
    if platform.machine().lower() not in ('x86_64', 'amd64'):
        raise ToolError(f'--int8 uses x86 int8 kernels (oneDNN through inductor); this CPU is '
                        f'{platform.machine()}: drop --int8')
    try:
        import torchao.quantization.pt2e  # noqa: F401
    except ImportError as exc:
        raise ToolError(f'--int8 needs torchao, which is not installed ({exc}): {TORCHAO_INSTALL}') from exc


def default_reduce_range() -> bool:
    """7-bit activations on CPUs without AVX512-VNNI (as ``torch.cpu`` reports it; no saturation of the 16-bit sums
    of ``u8 x s8`` products)."""
    return not torch.cpu._is_vnni_supported()


def x86_quantizer(reduce_range: bool, float_modules: Sequence[str] = ()) -> Any:
    """torchao's ``X86InductorQuantizer`` with its default static recipe (int8 weights per output channel, uint8
    activations per tensor; 7-bit with ``reduce_range``); the submodules named in ``float_modules`` (names in the
    captured module) stay in floating point."""
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(
        reduce_range=reduce_range))
    for name in float_modules:
        quantizer.set_module_name_qconfig(name, None)
    return quantizer


def int8_weight_ops(converted: nn.Module) -> int:
    """The convolutions / linear layers of a converted PT2E graph that have int8 weights (one per-channel
    dequantize each)."""
    return sum(node.op == 'call_function' and 'dequantize_per_channel' in str(node.target)
               for node in converted.graph.nodes)


class DecodeHeadLogits(nn.Module):
    """``(B, 3, H, W)`` normalised images -> the decode head's logits ``(B, classes, H/4, W/4)`` (before the resize
    of ``predict_by_feat``): ``decode_head(extract_feat(inputs))``. Quantized with batch 1."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: Tensor) -> Tensor:
        return self.segmentor.decode_head(self.segmentor.extract_feat(inputs))


def quantize_segmentor(segmentor: nn.Module, calib: Sequence[Tensor], reduce_range: bool | None = None,
                       log: Callable[[str], None] = print) -> tuple[nn.Module, dict[str, Any]]:
    """The converted int8 graph of ``segmentor``'s :class:`DecodeHeadLogits` (not compiled; see
    :class:`Int8Graphs`) and a summary (op counts, seconds). ``calib``: normalised ``(1, 3, H, W)`` images (the
    data preprocessor's output), any sizes of at least the backbone's exportable minimum; ``segmentor`` is not
    changed (a copy is captured).

    Raises:
        ToolError: no calibration image of at least the exportable minimum.
        ExportError: the backbone is not an mmswin family, or torch.export failed.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from .export import DEFAULT_MAX_SIDE, capture, min_export_side, replace_adaptive_pools
    if not calib:
        raise ToolError('--calib: no calibration images (give a directory of a few images like the ones to predict)')
    model = DecodeHeadLogits(copy.deepcopy(segmentor)).eval()
    replace_adaptive_pools(model)  # the pyramid pooling's adaptive pools as size-generic products (export)
    min_side = min_export_side(model.segmentor.backbone)
    small = [tuple(x.shape[2:]) for x in calib if min(x.shape[2:]) < min_side]
    calib = [x for x in calib if min(x.shape[2:]) >= min_side]
    if small:
        log(f'int8: {len(small)} calibration image(s) of {small} px (after the test pipeline) left out: below the '
            f'{min_side} px side of the int8 graph (such inputs run in float32)')
    if not calib:
        raise ToolError(f'--calib: every calibration image is below the {min_side} px side the int8 graph of this '
                        'backbone needs (after the test pipeline): use larger images')
    reduce_range = default_reduce_range() if reduce_range is None else reduce_range
    summary: dict[str, Any] = dict(calibration_images=len(calib), reduce_range=reduce_range, min_side=min_side)
    start = time.perf_counter()
    program = capture(model, calib[0], min_side, DEFAULT_MAX_SIDE, dynamic_batch=False, inference=True)
    prepared = prepare_pt2e(program.module(), x86_quantizer(reduce_range))
    with torch.no_grad():
        for x in calib:
            prepared(x)
    converted = convert_pt2e(prepared)
    summary['quantized_ops'] = int8_weight_ops(converted)
    summary['seconds'] = time.perf_counter() - start
    log(f'int8: {summary["quantized_ops"]} convolutions / linear layers with int8 weights, activations in '
        f'{7 if reduce_range else 8} bits, calibrated on {len(calib)} image(s) in {summary["seconds"]:.0f} s')
    return converted, summary


class Int8Graphs:
    """The converted graph compiled by inductor (``freezing``), one static graph per input size, compiled on first
    use of that size, for at most ``max_sizes`` sizes (dynamo's recompilation limit is raised to that for it;
    :meth:`accepts` says whether an input is served).

    ``__call__(inputs (1, 3, H, W)) -> logits (1, classes, H/4, W/4)``.
    """

    def __init__(self, converted: nn.Module, min_side: int, max_sizes: int = 64,
                 log: Callable[[str], None] = print) -> None:
        self.compiled = torch.compile(converted, dynamic=False)
        self.min_side = min_side  # smaller inputs are outside the exported graph's range
        self.max_sizes = max_sizes
        self.log = log
        self.sizes: set[tuple[int, ...]] = set()

    def accepts(self, inputs: Tensor) -> bool:
        """One image, sides of at least ``min_side``, and a size already compiled or room for another."""
        return (inputs.shape[0] == 1 and min(inputs.shape[2:]) >= self.min_side
                and (tuple(inputs.shape) in self.sizes or len(self.sizes) < self.max_sizes))

    def __call__(self, inputs: Tensor) -> Tensor:
        inputs = inputs.contiguous()  # slide windows are views: strides would be guarded on (one compile each)
        key = tuple(inputs.shape)
        new = key not in self.sizes
        if new:
            self.log(f'int8: compiling for inputs of {key[2]}x{key[3]} (once per size) ...')
            self.sizes.add(key)
        start = time.perf_counter()
        # freezing through the config: as torch.compile(options=...) it leaves oneDNN's weight prepacking to fake
        # tensors ("onednn::qconv_prepack ... Meta tensors"), torch 2.14
        with torch.no_grad(), torch._inductor.config.patch(freezing=True), torch._dynamo.config.patch(
                recompile_limit=self.max_sizes, automatic_dynamic_shapes=False):
            out = self.compiled(inputs)
        if new:
            self.log(f'int8: compiled and ran in {time.perf_counter() - start:.0f} s')
        return out


def install_int8(segmentor: nn.Module, graphs: Int8Graphs) -> None:
    """Make ``segmentor.encode_decode`` (what mmseg's ``predict`` / ``test_step`` call, per batch or per slide
    window) run ``graphs`` image by image and then mmseg's float ``decode_head.predict_by_feat`` (the resize to the
    image); a batch with an input ``graphs`` does not accept (too small, or a size beyond ``max_sizes``) keeps the
    float32 ``encode_decode``, said once per size."""
    float32_encode_decode = segmentor.encode_decode
    told: set[tuple[int, ...]] = set()

    def encode_decode(inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        images = inputs.split(1)
        if not all(graphs.accepts(x) for x in images):
            if tuple(inputs.shape) not in told:
                told.add(tuple(inputs.shape))
                graphs.log(f'int8: inputs of {inputs.shape[2]}x{inputs.shape[3]} run in float32 (below '
                           f'{graphs.min_side} px, or beyond {graphs.max_sizes} compiled sizes)')
            return float32_encode_decode(inputs, batch_img_metas)
        return segmentor.decode_head.predict_by_feat(torch.cat([graphs(x) for x in images]), batch_img_metas)

    segmentor.encode_decode = encode_decode


def calibration_inputs(segmentor: nn.Module, images: Sequence[str]) -> list[Tensor]:
    """``images`` (paths) as the segmentor sees them in inference: its test pipeline (``segmentor.cfg``, set by
    mmseg's ``init_model``) and data preprocessor -> normalised ``(1, 3, H, W)`` tensors."""
    from mmseg.apis.inference import _preprare_data  # mmseg 1.2's name: how inference_model prepares images
    inputs = []
    for path in images:
        data, _ = _preprare_data(path, segmentor)
        inputs.append(segmentor.data_preprocessor(data, False)['inputs'])
    return inputs


def use_int8(segmentor: nn.Module, calib_images: Sequence[str], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Quantize ``segmentor`` (an mmseg segmentor from ``init_model``, on the CPU) on ``calib_images`` and make its
    inference run int8 (:func:`install_int8`); returns the summary of :func:`quantize_segmentor`.

    Raises:
        ToolError: not a segmentor; see :func:`quantize_segmentor`.
    """
    from mmseg.models.segmentors import EncoderDecoder

    from .export import ExportError
    if not isinstance(segmentor, EncoderDecoder) or isinstance(segmentor.decode_head, nn.ModuleList):
        raise ToolError(f'--int8 covers mmseg EncoderDecoder segmentors with one decode head; this model is a '
                        f'{type(segmentor).__name__} (a detector or cascade config?): drop --int8')
    try:
        converted, summary = quantize_segmentor(segmentor, calibration_inputs(segmentor, calib_images), log=log)
    except ExportError as exc:
        raise ToolError(f'--int8: {exc}') from exc
    install_int8(segmentor, Int8Graphs(converted, summary['min_side'], log=log))
    return summary
