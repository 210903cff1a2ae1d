"""Optimizer wrappers: bfloat16 mixed precision without loss scaling (on the CPU too), and skipping a step whose
loss or gradients are not finite (NaN / inf).

:class:`Bf16OptimWrapper` trains in bfloat16 mixed precision where mmengine's ``AmpOptimWrapper`` refuses to start
(the CPU: it asserts a CUDA / NPU / MLU device); ``tools/train.py --amp`` uses it on CPUs with native bfloat16.

mmengine applies the optimizer step inside ``model.train_step``, before any hook sees the loss, so skipping a bad
step has to happen in the optimizer wrapper. :class:`NonFiniteLossHook` with ``action='skip'`` needs one of these
(``enable_safeguards`` and ``tools/train.py`` set it): it reads what the wrapper did and stops the run only after
``max_consecutive`` skipped steps.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from mmswin.engine import precision
from mmswin.engine.precision import keep_global_context_float32, mixed_precision

__all__ = ['Bf16OptimWrapper', 'SkipNonFiniteOptimWrapper', 'SkipNonFiniteAmpOptimWrapper',
           'SkipNonFiniteBf16OptimWrapper', 'SKIPPED_KEY', 'SKIP_VARIANTS']

SKIPPED_KEY = 'mmswin_skipped_step'  # MessageHub runtime info: None, or what made the last update skip


@OPTIM_WRAPPERS.register_module()
class Bf16OptimWrapper(OptimWrapper):
    """bfloat16 mixed precision training without a loss scaler, on the CPU or a GPU.

    Each training step's forward pass runs the model's dense parts (backbone, neck, dense heads) under
    ``torch.autocast(device_type, torch.bfloat16)`` and hands their outputs on in float32, so losses, box decoding,
    NMS and RoI heads run in float32 (mmcv's CPU NMS and RoIAlign take float32 only); see
    :func:`~mmswin.engine.precision.mixed_precision`. bfloat16 has float32's exponent range: gradients do not
    underflow, so there is no loss scaling, and the weights and optimizer state stay float32. Validation during
    training runs in float32, as with mmengine's ``AmpOptimWrapper``. The first step logs one line with the
    precision and the parts. On a CPU without native bfloat16 instructions it still runs (emulated, slower than
    float32) and warns; ``tools/train.py --amp`` refuses such a CPU instead.

    Args:
        device_type: ``'cpu'`` or ``'cuda'``; default: where the model's parameters are.
        **kwargs: mmengine ``OptimWrapper`` arguments (``optimizer``, ``clip_grad``, ``accumulative_counts``).
    """

    def __init__(self, device_type: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if device_type not in (None, 'cpu', 'cuda'):
            raise ValueError(f"device_type must be 'cpu', 'cuda' or None, got {device_type!r}")
        self.device_type = device_type
        self.cast_dtype = torch.bfloat16  # the attribute mmengine's AmpOptimWrapper has
        self._logged = False

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """mmengine's context (no gradient sync while accumulating) plus the dense parts in bfloat16."""
        if self.device_type is None:
            param = next(model.parameters(), None)
            self.device_type = 'cuda' if param is not None and param.is_cuda else 'cpu'
        log = not self._logged
        if log:
            self._logged = True
            if self.device_type == 'cpu' and not precision.cpu_bf16_instructions():
                print_log('Bf16OptimWrapper: this CPU has no native bfloat16 instructions; bfloat16 is emulated and '
                          'slower than float32', logger='current', level=logging.WARNING)
        with super().optim_context(model), mixed_precision(model, self.device_type, torch.bfloat16, log=log):
            yield


class _SkipNonFinite:
    """``update_params`` that applies no step when the loss (or, without AMP, a gradient) is not finite.

    The backward pass always runs, so that DDP's gradient all-reduce stays in step on every rank; the decision is
    then reduced over the ranks (one flag), so all ranks skip together. A skipped update leaves the weights, the
    optimizer state and the AMP loss scale unchanged and clears the gradients. With AMP, overflowing gradients of a
    finite loss are the loss scaler's business (it skips the step and lowers the scale, as usual).
    """

    def update_params(self, loss: torch.Tensor, step_kwargs: dict | None = None,
                      zero_kwargs: dict | None = None) -> None:
        bad_loss = not bool(torch.isfinite(loss.detach()).all())
        self.backward(self.scale_loss(loss))
        self._bad_loss = getattr(self, '_bad_loss', False) or bad_loss  # across accumulated micro-batches
        if not self.should_update():
            return
        reason = 'loss' if self._bad_loss else None
        self._bad_loss = False
        if reason is None and not isinstance(self, AmpOptimWrapper):
            grads = [p.grad for group in self.optimizer.param_groups for p in group['params'] if p.grad is not None]
            if grads and not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)).all()):
                reason = 'gradient'
        if get_world_size() > 1:
            flag = torch.tensor([0.0 if reason is None else 1.0], device=loss.device)
            all_reduce(flag, op='max')
            if reason is None and flag.item() > 0:
                reason = 'loss or gradient on another rank'
        MessageHub.get_current_instance().update_info(SKIPPED_KEY, reason)
        if reason is None:
            self.step(**(step_kwargs or {}))
        self.zero_grad(**(zero_kwargs or {}))


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(_SkipNonFinite, OptimWrapper):
    """mmengine's ``OptimWrapper`` that skips non-finite steps (see :class:`_SkipNonFinite`)."""


class _Float32GlobalContext:
    """``optim_context`` of an ``AmpOptimWrapper`` (autocast over the whole training step) that keeps the global
    pooling branches of the model's dense parts -- UperNet's / PSPNet's pyramid pooling, ASPP's image pool -- in
    float32, as :class:`Bf16OptimWrapper` does: in bfloat16 or float16 the gradient of their BatchNorm over a few
    values (2 for UperNet's 1x1 branch at batch 2 per GPU) is noise, and it is the largest gradient the head sends
    into the backbone (see :func:`~mmswin.engine.precision.keep_global_context_float32`). Installed at the first
    step, logged once."""

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        if not getattr(self, '_float32_branches', False):
            self._float32_branches = True
            param = next(model.parameters(), None)
            device_type = param.device.type if param is not None else 'cuda'
            parts = keep_global_context_float32(model, device_type)
            if parts:
                print_log(f'mixed precision: the global pooling branches of {", ".join(parts)} run in float32 '
                          '(BatchNorm over a few pooled cells)', logger='current')
        with super().optim_context(model):
            yield


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteAmpOptimWrapper(_SkipNonFinite, _Float32GlobalContext, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` that skips steps whose loss is not finite (see :class:`_SkipNonFinite`) and
    keeps the global pooling branches of the dense parts in float32 (see :class:`_Float32GlobalContext`); what
    ``tools/train.py --amp`` uses on GPUs."""


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteBf16OptimWrapper(_SkipNonFinite, Bf16OptimWrapper):
    """:class:`Bf16OptimWrapper` that skips non-finite steps (loss or gradient; see :class:`_SkipNonFinite`)."""


# optim_wrapper.type -> its skipping variant
SKIP_VARIANTS = {'OptimWrapper': 'SkipNonFiniteOptimWrapper', 'AmpOptimWrapper': 'SkipNonFiniteAmpOptimWrapper',
                 'Bf16OptimWrapper': 'SkipNonFiniteBf16OptimWrapper'}
