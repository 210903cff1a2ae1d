"""Mixed precision and compilation of a model's *dense parts*: the backbone, the neck and the dense heads.

The dense parts (:data:`DENSE_PARTS`: ``backbone``, ``neck``, mmseg's ``decode_head`` / ``auxiliary_head``, mmdet's
``rpn_head`` and a one-stage detector's ``bbox_head``) hold nearly all the convolutions and matrix products of a
detector or segmentor, and their shapes depend on the image size only. What follows them -- losses, box decoding,
NMS, the RoI heads of two-stage detectors, post-processing -- is data-dependent and, on the CPU, partly float32-only
(mmcv's CPU kernels of NMS and RoIAlign take float32 alone). So:

* :func:`mixed_precision` runs each dense part under ``torch.autocast`` and hands float32 outputs on: the rest of the
  model runs in float32 as usual (``Bf16OptimWrapper`` in training, ``tools/test.py --amp`` and
  ``tools/infer.py --amp`` in inference);
* :func:`compile_dense_parts` compiles the ``forward`` of each dense part in place for training (``CompileHook``,
  ``tools/train.py --compile``), leaving the data-dependent rest eager.

Both replace the part's ``forward`` by an instance attribute (mmseg's heads call ``self.forward`` directly, so
``nn.Module.compile``, which compiles ``__call__``, would miss them): parameter names, state dicts and checkpoints are
unchanged. Imports torch and mmengine only.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Callable

import torch
from torch import nn

__all__ = ['DENSE_PARTS', 'UnsupportedPrecisionError', 'autocast_dtype', 'compile_dense_parts',
           'cpu_bf16_instructions', 'dense_parts', 'describe_precision', 'global_context_branches',
           'keep_global_context_float32', 'mixed_precision']

# top-level attributes of mmdet detectors and mmseg segmentors that hold dense, image-size-shaped computation
DENSE_PARTS = ('backbone', 'neck', 'decode_head', 'auxiliary_head', 'rpn_head', 'bbox_head')


class UnsupportedPrecisionError(RuntimeError):
    """The requested precision cannot run (well) on this machine; the message says why and what to do."""


def cpu_bf16_instructions() -> list[str]:
    """The CPU's native bfloat16 instruction sets (``AMX-BF16``, ``AVX512-BF16``; on ARM ``BF16``, ``SVE-BF16``)
    that oneDNN can use; empty when there are none (bfloat16 would then be emulated, slower than float32)."""
    if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return []
    caps = torch.cpu.get_capabilities()
    names = (('amx_bf16', 'AMX-BF16'), ('avx512_bf16', 'AVX512-BF16'), ('bf16', 'BF16'), ('sve_bf16', 'SVE-BF16'))
    return [name for key, name in names if caps.get(key)]


def autocast_dtype(device_type: str, option: str = '--amp') -> torch.dtype:
    """The mixed precision dtype for ``device_type``: bfloat16 on a CPU with native bfloat16 instructions and on GPUs
    that support it (no loss scaling needed), float16 on older GPUs.

    Raises:
        UnsupportedPrecisionError: a CPU without native bfloat16 (``option`` names what asked for it).
    """
    if device_type == 'cuda':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device_type != 'cpu':
        raise UnsupportedPrecisionError(f'{option}: mixed precision runs on CUDA GPUs and CPUs, not on {device_type!r}')
    if not cpu_bf16_instructions():
        raise UnsupportedPrecisionError(
            f'{option} on the CPU needs native bfloat16 instructions (AMX-BF16 or AVX512-BF16 on x86, BF16 on ARM), '
            'which this CPU lacks (emulated bfloat16 is slower than float32): run without ' + option)
    return torch.bfloat16


def describe_precision(device_type: str, dtype: torch.dtype) -> str:
    """``'bfloat16 autocast on the CPU (AMX-BF16, AVX512-BF16)'``, ``'float16 autocast on the GPU'``, ..."""
    name = str(dtype).removeprefix('torch.')
    if device_type == 'cpu':
        found = cpu_bf16_instructions()
        return f'{name} autocast on the CPU ({", ".join(found) if found else "emulated: no native bfloat16"})'
    return f'{name} autocast on the {"GPU" if device_type == "cuda" else device_type}'


def _unwrap(model: nn.Module) -> nn.Module:
    """The detector / segmentor inside wrappers that hold it as ``.module`` (DDP, test-time augmentation)."""
    while not any(isinstance(getattr(model, name, None), nn.Module) for name in DENSE_PARTS) \
            and isinstance(getattr(model, 'module', None), nn.Module):
        model = model.module
    return model


def dense_parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the model's dense parts (:data:`DENSE_PARTS`) present, in that order; the members of a
    ``ModuleList`` (several auxiliary heads) one by one, as ``name.i``. Wrappers holding the model as ``.module``
    (DDP, test-time augmentation) are looked through."""
    model = _unwrap(model)
    found = []
    for name in DENSE_PARTS:
        part = getattr(model, name, None)
        if isinstance(part, nn.ModuleList):
            found += [(f'{name}.{i}', member) for i, member in enumerate(part)]
        elif isinstance(part, nn.Module):
            found.append((name, part))
    return found


def _to_float32(value: Any) -> Any:
    """Floating tensors of lower precision in (nested) tuples, lists and dicts as float32; the rest unchanged."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() and value.dtype != torch.float32 else value
    if isinstance(value, (list, tuple)):
        items = [_to_float32(v) for v in value]
        return type(value)(*items) if hasattr(value, '_fields') else type(value)(items)
    if isinstance(value, Mapping):
        return type(value)({k: _to_float32(v) for k, v in value.items()})
    return value


class _MixedPrecisionForward:
    """A dense part's ``forward``: under ``torch.autocast(device_type, dtype)`` with float32 outputs while ``dtype``
    is set (by :func:`mixed_precision`), the wrapped ``forward`` as is otherwise."""

    def __init__(self, forward: Callable, device_type: str) -> None:
        self.forward = forward
        self.device_type = device_type
        self.dtype: torch.dtype | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.dtype is None:
            return self.forward(*args, **kwargs)
        with torch.autocast(self.device_type, dtype=self.dtype, cache_enabled=False):
            out = self.forward(*args, **kwargs)
        return _to_float32(out)


GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def global_context_branches(part: nn.Module) -> list[nn.Module]:
    """The branches of ``part`` that start by pooling the map to a few cells: ``nn.Sequential`` modules whose first
    layer is an adaptive pooling (UperNet's / PSPNet's pyramid pooling branches, ASPP's image pool)."""
    return [m for m in part.modules()
            if isinstance(m, nn.Sequential) and len(m) and isinstance(m[0], GLOBAL_POOLS)]


class _Float32Forward:
    """A module's ``forward`` run in float32 (autocast off, inputs cast up) while autocast is on for the device.

    Meant for the global-context branches (:func:`global_context_branches`): pooled to 1x1 ... 6x6 cells, their
    BatchNorm normalises over batch x cells values -- 2 for the 1x1 branch at batch 2 on one device -- and its
    gradient is then an almost complete cancellation that bfloat16-rounded convolution outputs turn into noise
    (measured by ``tools/analysis/bf16_gradients.py``). They cost well under 1 % of a head's products."""

    def __init__(self, forward: Callable, device_type: str) -> None:
        self.forward = forward
        self.device_type = device_type

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not torch.is_autocast_enabled(self.device_type):
            return self.forward(*args, **kwargs)
        with torch.autocast(self.device_type, enabled=False):
            return self.forward(*_to_float32(args), **_to_float32(kwargs))


def _keep_branches_float32(part: nn.Module, device_type: str) -> int:
    """Install :class:`_Float32Forward` on the part's global-context branches that lack one; returns how many
    branches the part has."""
    branches = global_context_branches(part)
    for branch in branches:
        current = branch.__dict__.get('forward')
        if not (isinstance(current, _Float32Forward) and current.device_type == device_type):
            branch.forward = _Float32Forward(branch.forward, device_type)
    return len(branches)


def keep_global_context_float32(model: nn.Module, device_type: str) -> list[str]:
    """Make the global-context branches of the model's dense parts (:func:`global_context_branches`) run in float32
    whenever ``torch.autocast(device_type)`` is on around them -- for autocast over a whole training step, as
    mmengine's ``AmpOptimWrapper`` does on GPUs; :func:`mixed_precision` does it by itself. Idempotent; a no-op
    without autocast. Returns the names of the parts that have such branches."""
    return [name for name, part in dense_parts(model) if _keep_branches_float32(part, device_type)]


def _mixed_precision_forward(part: nn.Module, device_type: str) -> _MixedPrecisionForward:
    """The part's autocast wrapper; installed at the first use, with float32 wrappers on its global-context
    branches (so later steps do not walk the part's modules again)."""
    current = part.__dict__.get('forward')
    if isinstance(current, _MixedPrecisionForward) and current.device_type == device_type:
        return current
    _keep_branches_float32(part, device_type)
    wrapper = _MixedPrecisionForward(part.forward, device_type)
    part.forward = wrapper
    return wrapper


@contextmanager
def mixed_precision(model: nn.Module, device_type: str, dtype: torch.dtype | None = torch.bfloat16,
                    log: bool = False) -> Iterator[list[str]]:
    """Within the block, run the model's dense parts under ``torch.autocast(device_type, dtype)`` with float32
    outputs (``dtype=None``: full precision); yields the names of the parts. The rest of the model -- losses, box
    decoding, NMS, RoI heads, post-processing -- runs in float32, and the backward pass of a training step (outside
    the block, as torch recommends) follows the forward's dtypes. Global-context branches (pooled to a few cells,
    :func:`global_context_branches`) stay in float32 inside the parts: bfloat16 makes their BatchNorm gradients
    noise (see :class:`_Float32Forward`). No loss scaling: meant for bfloat16, which has
    float32's exponent range (float16 inference is fine too). Nests and re-enters: the first use installs a wrapper
    on each part's ``forward`` that stays (inactive outside the block), so compiled parts keep their graphs.

    Args:
        log: log one line with the precision and the parts (mmengine's current logger).
    """
    wrappers = [(name, _mixed_precision_forward(part, device_type)) for name, part in dense_parts(model)]
    names = [name for name, _ in wrappers]
    if log and dtype is not None:
        from mmengine.logging import print_log
        print_log(f'mixed precision: {describe_precision(device_type, dtype)} for the dense parts '
                  f'({", ".join(names) or "none found"}); their global pooling branches, losses, box decoding, NMS, '
                  'RoI heads and post-processing in float32; no loss scaling', logger='current')
    previous = [w.dtype for _, w in wrappers]
    for _, wrapper in wrappers:
        wrapper.dtype = dtype
    try:
        yield names
    finally:
        for (_, wrapper), dtype_before in zip(wrappers, previous):
            wrapper.dtype = dtype_before


class _CompiledForward:
    """A dense part's ``forward``, compiled while the part is in training mode, eager in eval mode (as mmengine's
    ``compile=True``, which compiles ``train_step`` only). Compiles the class's ``forward`` with the part as its
    first argument, so that a deep copy of the model (an EMA model) runs its own weights."""

    def __init__(self, part: nn.Module, options: Mapping[str, Any]) -> None:
        self.part = part
        self.compiled = torch.compile(type(part).forward, **dict(options))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.part.training:
            return self.compiled(self.part, *args, **kwargs)
        return type(self.part).forward(self.part, *args, **kwargs)


def compile_dense_parts(model: nn.Module, options: Mapping[str, Any] | None = None) -> list[str]:
    """``torch.compile`` the ``forward`` of each dense part in place, for training (eval mode runs eagerly);
    ``options``: ``torch.compile`` keyword arguments. Parts already compiled (a backbone built with
    ``compile=True``) are left as they are. Returns the names of the parts compiled now. Compilation happens at the
    first training step (and once more when the input size first changes: the graph then becomes shape-generic;
    bfloat16 autocast gets graphs of its own)."""
    compiled = []
    for name, part in dense_parts(model):
        current = part.__dict__.get('forward')
        inner = current.forward if isinstance(current, _MixedPrecisionForward) else current
        if getattr(part, '_compiled_call_impl', None) is not None or isinstance(inner, _CompiledForward):
            continue
        plain = inner is None or (getattr(inner, '__self__', None) is part
                                  and getattr(inner, '__func__', None) is type(part).forward)
        if not plain:
            raise TypeError(f'{name}.forward is replaced by {inner!r}: cannot compile it')
        if isinstance(current, _MixedPrecisionForward):  # autocast stays outside the graph
            current.forward = _CompiledForward(part, options or {})
        else:
            part.forward = _CompiledForward(part, options or {})
        compiled.append(name)
    return compiled
