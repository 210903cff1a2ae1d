"""``NonFiniteLossHook``: a NaN / inf loss stops the run, or its step is skipped."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmswin.engine.optim_wrappers import SKIP_VARIANTS, SKIPPED_KEY, _SkipNonFinite

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError']


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite (``action='stop'``), or too many steps in a row were skipped; the run stops."""


def _non_finite_terms(outputs: Any) -> dict[str, float]:
    bad = {}
    for name, value in (outputs.items() if isinstance(outputs, Mapping) else ()):
        if 'loss' not in name:
            continue
        number = float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else value
        if isinstance(number, (int, float)) and not math.isfinite(number):
            bad[name] = number
    return bad


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """What to do when a training step's loss or gradient is NaN or infinite.

    ``action='stop'`` (default): stop with a clear message at the first non-finite loss. mmengine applies the
    optimizer step before any hook sees the loss, so the model in memory is already damaged; the hook raises
    before the checkpoint hook runs (priority ``ABOVE_NORMAL``), so no checkpoint of it is written and
    ``--resume`` restarts from the last good one.

    ``action='skip'``: the bad step is not applied -- weights, optimizer state and AMP loss scale stay as they
    were -- it is logged with the iteration and the loss terms, and only ``max_consecutive`` skipped steps in a
    row stop the run. Needs a skipping optimizer wrapper (``optim_wrapper.type`` ``SkipNonFiniteOptimWrapper`` /
    ``SkipNonFiniteAmpOptimWrapper`` / ``SkipNonFiniteBf16OptimWrapper``, see :mod:`mmswin.engine.optim_wrappers`),
    which :func:`~mmswin.engine.enable_safeguards` and ``tools/train.py`` set.

    Args:
        action: ``'stop'`` or ``'skip'``. Default: ``'stop'``.
        max_consecutive: (``skip``) consecutive skipped steps that stop the run. Default: 3.
        interval: (``stop``) check every ``interval`` iterations. Default: 1.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, action: str = 'stop', max_consecutive: int = 3, interval: int = 1) -> None:
        if action not in ('stop', 'skip'):
            raise ValueError(f"action must be 'stop' or 'skip', got {action!r}")
        for name, value in (('max_consecutive', max_consecutive), ('interval', interval)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        self.action = action
        self.max_consecutive = max_consecutive
        self.interval = interval
        self._consecutive = 0

    def before_train(self, runner) -> None:
        if self.action == 'skip' and not isinstance(runner.optim_wrapper, _SkipNonFinite):
            kind = type(runner.optim_wrapper).__name__
            raise ValueError(
                f"NonFiniteLossHook(action='skip') needs an optimizer wrapper that can skip a step; this run uses "
                f"{kind}. Set optim_wrapper.type='{SKIP_VARIANTS.get(kind, 'SkipNonFiniteOptimWrapper')}' "
                "(tools/train.py does it for you), or use action='stop'.")

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.action == 'skip':
            self._after_skip_step(runner, outputs)
        elif self.every_n_train_iters(runner, self.interval):
            bad = _non_finite_terms(outputs)
            if bad:
                raise NonFiniteLossError(self._stop_message(runner, bad, 'Training stopped; the weights in memory '
                                                            'are damaged and were not saved.'))

    def _after_skip_step(self, runner, outputs: Any) -> None:
        reason = runner.message_hub.get_info(SKIPPED_KEY)
        runner.message_hub.update_info(SKIPPED_KEY, None)
        if reason is None:
            self._consecutive = 0
            return
        self._consecutive += 1
        terms = ', '.join(f'{k}={float(torch.as_tensor(v).detach()):.4g}' for k, v in (outputs or {}).items()
                          if 'loss' in k) or 'none logged'
        runner.logger.warning(f'NonFiniteLossHook: skipped the update of iteration {runner.iter + 1} (non-finite '
                              f'{reason}; loss terms: {terms}); {self._consecutive} in a row, the run stops at '
                              f'{self.max_consecutive}')
        if self._consecutive >= self.max_consecutive:
            raise NonFiniteLossError(self._stop_message(
                runner, _non_finite_terms(outputs),
                f'{self._consecutive} consecutive steps were skipped (non-finite {reason}); training stopped. The '
                'weights in memory are those of the last good step.'))

    @staticmethod
    def _stop_message(runner, bad: dict, what: str) -> str:
        last = runner.message_hub.get_info('last_ckpt')
        return (f'loss is not finite at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): '
                + (', '.join(f'{k}={v}' for k, v in bad.items()) or 'gradient') + f'. {what} '
                + (f'The last checkpoint, {last}, predates it: resume from it (--resume) after the fix. '
                   if last else 'No checkpoint was saved yet. ')
                + 'Usual causes: a learning rate too high for the batch size (lower it, or set '
                  'optim_wrapper.clip_grad=dict(max_norm=...)), fp16 without loss scaling, or bad labels / images '
                  '(run with DataCheckHook level="decode").')
