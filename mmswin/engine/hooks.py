"""Hooks that keep a training run from losing work or training on garbage.

Registered in mmengine's root ``HOOKS`` registry, so configs of any scope (mmdet, mmseg) reach them by name once
``mmswin.engine`` is imported (``custom_imports``).

* :class:`AtomicCheckpointHook` -- mmengine's ``CheckpointHook`` with crash-safe files.
* :class:`NonFiniteLossHook` -- stops the run when a loss turns NaN / inf.
* :class:`DataCheckHook` -- checks every file a data set refers to before the first iteration.
"""
from __future__ import annotations

import math
import os.path as osp
from collections.abc import Mapping
from typing import Any

import torch
from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from .atomic_io import ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_text, remove_stale_temporaries
from .data_checks import CHECK_LEVELS, DataCheckError, check_samples

RNG_KEY = 'mmswin_rng_state'

__all__ = ['AtomicCheckpointHook', 'NonFiniteLossHook', 'NonFiniteLossError', 'DataCheckHook']


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose files survive a kill at any moment (same arguments as mmengine's).

    What mmengine 0.10.7's ``CheckpointHook`` does and what this hook changes:

    * checkpoints are written in place (``open(path, 'wb')``): a kill mid-write leaves a truncated ``iter_N.pth``.
      Here they go through :class:`~mmswin.engine.atomic_io.AtomicLocalBackend` (temporary file, fsync, rename).
    * ``work_dir/last_checkpoint`` (what ``--resume`` reads) is rewritten in place: a kill can leave it empty.
      Here it is replaced atomically, and only after the checkpoint it names is complete.
    * with ``max_keep_ckpts`` the oldest checkpoint is deleted *before* the new one is written, so a kill during
      the save can leave no complete checkpoint while ``last_checkpoint`` names a deleted file. Here old
      checkpoints (and a superseded best checkpoint) are deleted only after the new one and ``last_checkpoint``
      are in place.
    * temporary files of writes that a kill interrupted are removed at the start of training.
    * the torch random number generator state (CPU and CUDA) is saved in the checkpoint and restored when a
      single-process run resumes, right before its first iteration, so that dropout and drop-path draw the same
      numbers as an uninterrupted run would (mmengine re-seeds only; the data pipeline's numpy draws are replayed by
      mmengine's own skipping of the consumed batches). Resumed results then equal uninterrupted ones with
      ``randomness=dict(seed=..., deterministic=True)``.

    Atomic writes apply to local ``out_dir``s (no ``backend_args`` / ``file_client_args`` given); with a remote
    backend the hook behaves as mmengine's.
    """

    def __init__(self, *args: Any, backend_args: dict | None = None, file_client_args: dict | None = None,
                 out_dir: str | None = None, **kwargs: Any) -> None:
        self.atomic = backend_args is None and file_client_args is None and (out_dir is None or '://' not in out_dir)
        if self.atomic:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, file_client_args=file_client_args, out_dir=out_dir,
                         **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self.atomic and is_main_process():
            for folder in {self.out_dir, runner.work_dir}:
                if osp.isdir(folder):
                    for path in remove_stale_temporaries(folder):
                        runner.logger.info(f'removed {path}, left by a write that was interrupted')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        rng = {'torch': torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint[RNG_KEY] = rng

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        resuming = bool(getattr(runner, '_resume', False))  # not for load_from (new run from old weights)
        self._rng_to_restore = checkpoint.get(RNG_KEY) if resuming and get_world_size() == 1 else None

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        rng = getattr(self, '_rng_to_restore', None)
        if rng is None:
            return
        self._rng_to_restore = None
        torch.set_rng_state(rng['torch'])
        if 'cuda' in rng and torch.cuda.is_available() and len(rng['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng['cuda'])
        runner.logger.info('restored the random number generator state of the checkpoint')

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        # the checkpoint is complete: now point at it, then drop what it supersedes
        last_file = osp.join(runner.work_dir, 'last_checkpoint')
        if self.atomic:
            atomic_write_text(last_file, self.last_ckpt)
        else:
            with open(last_file, 'w') as f:
                f.write(self.last_ckpt)
        for old_step in outdated:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old_step))
            if path == self.last_ckpt:
                continue
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed saves folders
                self.file_backend.rmtree(path)

    def _save_best_checkpoint(self, runner, metrics: dict) -> None:
        if isinstance(self.file_backend, AtomicLocalBackend):
            with self.file_backend.deferred_removals():
                super()._save_best_checkpoint(runner, metrics)
        else:
            super()._save_best_checkpoint(runner, metrics)


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training was stopped."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training with a clear message as soon as a loss is NaN or infinite.

    mmengine applies the optimizer step before any hook sees the loss, so the model in memory is already damaged
    when this hook fires; it raises before the checkpoint hook (priority ``ABOVE_NORMAL`` < ``VERY_LOW``), so no
    checkpoint of the damaged model is written and ``--resume`` restarts from the last good one.

    Args:
        interval (int): check every ``interval`` iterations. Default 1 (the check is a handful of scalar reads).
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'interval must be a positive int, got {interval!r}')
        self.interval = interval

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if not isinstance(outputs, Mapping) or not self.every_n_train_iters(runner, self.interval):
            return
        bad = {}
        for name, value in outputs.items():
            if 'loss' not in name:
                continue
            number = float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else value
            if isinstance(number, (int, float)) and not math.isfinite(number):
                bad[name] = number
        if not bad:
            return
        last = runner.message_hub.get_info('last_ckpt')
        raise NonFiniteLossError(
            f'loss is not finite at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): '
            + ', '.join(f'{k}={v}' for k, v in bad.items())
            + '. Training stopped; the weights in memory are damaged and were not saved. '
            + (f'The last checkpoint, {last}, predates it: resume from it (--resume) after the fix. '
               if last else 'No checkpoint was saved yet. ')
            + 'Usual causes: a learning rate too high for the batch size (lower it, or set '
              'optim_wrapper.clip_grad=dict(max_norm=...)), fp16 without loss scaling, or bad labels / images '
              '(run with DataCheckHook level="decode").')


def _flatten_datasets(dataset) -> list:
    """The leaf data sets behind mmengine / mmdet wrappers (ConcatDataset, RepeatDataset, ...)."""
    if isinstance(getattr(dataset, 'datasets', None), (list, tuple)):
        return [leaf for d in dataset.datasets for leaf in _flatten_datasets(d)]
    if type(dataset).__name__ in ('RepeatDataset', 'ClassBalancedDataset', 'MultiImageMixDataset'):
        return _flatten_datasets(dataset.dataset)
    return [dataset]


def check_dataset(dataset, level: str = 'header', logger=None, split: str = '') -> int:
    """Check every sample of an mmengine data set (wrappers unwrapped); returns the number checked."""
    total = 0
    for leaf in _flatten_datasets(dataset):
        if hasattr(leaf, 'full_init'):
            leaf.full_init()
        if not hasattr(leaf, 'get_data_info'):
            continue
        meta = getattr(leaf, 'metainfo', {}) or {}
        classes = meta.get('classes')
        source = getattr(leaf, 'ann_file', '') or getattr(leaf, 'data_prefix', {}).get('img_path', '')
        source = f'{type(leaf).__name__} {split} set {source}'.strip()
        total += check_samples((leaf.get_data_info(i) for i in range(len(leaf))), level,
                               num_classes=len(classes) if classes and hasattr(leaf, 'reduce_zero_label') else None,
                               reduce_zero_label=bool(getattr(leaf, 'reduce_zero_label', False)), source=source)
    if logger is not None:
        logger.info(f'DataCheckHook: {total} {split} samples checked (level {level!r}), all files fine')
    return total


@HOOKS.register_module()
class DataCheckHook(Hook):
    """Check every file the training and validation data sets refer to, before the first iteration.

    Missing images or label maps, unreadable or truncated files, label maps whose size differs from their image,
    COCO images whose size differs from the json raise :class:`~mmswin.engine.data_checks.DataCheckError` naming
    the file, instead of failing inside a data loader worker or training on wrong labels.

    Args:
        level (str): ``'exists'``, ``'header'`` (default; a few kB read per file) or ``'decode'`` (every file decoded
            and label values checked; slow on big data sets). See :mod:`mmswin.engine.data_checks`.
        check_val (bool): also check the validation set at the start of training. Default True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, level: str = 'header', check_val: bool = True) -> None:
        if level not in CHECK_LEVELS:
            raise ValueError(f'level must be one of {CHECK_LEVELS}, got {level!r}')
        self.level = level
        self.check_val = check_val
        self._checked: set[int] = set()

    def _check(self, runner, loop_name: str, split: str) -> None:
        loop = getattr(runner, loop_name, None)
        dataloader = getattr(loop, 'dataloader', None)
        dataset = getattr(dataloader, 'dataset', None)
        if dataset is None or id(dataset) in self._checked:
            return
        try:
            check_dataset(dataset, self.level, runner.logger, split)
        except DataCheckError as err:
            raise DataCheckError(f'{split} data: {err}') from None
        self._checked.add(id(dataset))

    def before_train(self, runner) -> None:
        self._check(runner, '_train_loop', 'train')
        if self.check_val:
            self._check(runner, '_val_loop', 'val')

    def before_val(self, runner) -> None:
        self._check(runner, '_val_loop', 'val')

    def before_test(self, runner) -> None:
        self._check(runner, '_test_loop', 'test')
