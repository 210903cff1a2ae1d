"""Optimizer wrappers that skip a step whose loss or gradients are not finite (NaN / inf).

mmengine applies the optimizer step inside ``model.train_step``, before any hook sees the loss, so skipping a bad
step has to happen in the optimizer wrapper. :class:`NonFiniteLossHook` with ``action='skip'`` needs one of these
(``enable_safeguards`` and ``tools/train.py`` set it): it reads what the wrapper did and stops the run only after
``max_consecutive`` skipped steps.
"""
from __future__ import annotations

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import MessageHub
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

__all__ = ['SkipNonFiniteOptimWrapper', 'SkipNonFiniteAmpOptimWrapper', 'SKIPPED_KEY', 'SKIP_VARIANTS']

SKIPPED_KEY = 'mmswin_skipped_step'  # MessageHub runtime info: None, or what made the last update skip


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


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteAmpOptimWrapper(_SkipNonFinite, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` that skips steps whose loss is not finite (see :class:`_SkipNonFinite`)."""


# optim_wrapper.type -> its skipping variant
SKIP_VARIANTS = {'OptimWrapper': 'SkipNonFiniteOptimWrapper', 'AmpOptimWrapper': 'SkipNonFiniteAmpOptimWrapper'}
