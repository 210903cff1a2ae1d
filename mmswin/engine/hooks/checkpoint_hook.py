"""``AtomicCheckpointHook``: mmengine's ``CheckpointHook`` whose files survive a kill, a full disk and a resume."""
from __future__ import annotations

import contextlib
import os.path as osp
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop

from mmswin.engine.storage import ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_text, remove_stale_temporaries

__all__ = ['AtomicCheckpointHook', 'CheckpointSaveError', 'RNG_KEY']

RNG_KEY = 'mmswin_rng_states'


class CheckpointSaveError(OSError):
    """A checkpoint could not be written (a full disk, a lost mount); nothing saved before was touched."""


def _rng_state() -> dict[str, Any]:
    state = {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(), 'python': random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()  # this rank's device
    return state


def _set_rng_state(state: dict[str, Any], data_rngs: bool) -> None:
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])
    if data_rngs:
        np.random.set_state(state['numpy'])
        random.setstate(state['python'])


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose files survive a kill at any moment, a full disk and a resume.

    Built on mmengine's public hook API: each hook method of ``CheckpointHook`` that can save runs inside
    :meth:`_transaction`, and the atomic writes are a storage backend
    (:class:`~mmswin.engine.storage.AtomicLocalBackend`). What changes against mmengine 0.10.7's hook:

    * checkpoints are written to a temporary file, fsynced and renamed (mmengine writes in place: a kill mid-write
      leaves a truncated ``iter_N.pth``);
    * ``work_dir/last_checkpoint`` (what ``--resume`` reads) is rewritten atomically after the checkpoint it names
      is complete (mmengine rewrites it in place; tools/train.py also falls back to the newest complete checkpoint
      when the file is empty);
    * nothing is deleted before the new file is complete: with ``max_keep_ckpts`` mmengine deletes the oldest
      checkpoint (and a superseded best one) *before* writing the new one; here those removals wait until the
      save succeeded;
    * a save that fails with ``OSError`` (``ENOSPC``: disk full) removes its partial file, keeps
      ``last_checkpoint`` and every older checkpoint, and stops the run with :class:`CheckpointSaveError` saying
      what happened and how to resume;
    * temporary files of writes that a kill interrupted are removed at the start of training;
    * every rank's random state (torch CPU and CUDA, numpy, python) is saved in the checkpoint and each rank gets
      its own back on resume: torch's right before the first resumed iteration (dropout and drop-path then draw
      what an uninterrupted run draws); numpy's and python's too for epoch-based loops (iteration-based loops
      replay the skipped batches through the data pipeline, which re-draws them). Limits: a resume at an
      iteration that starts a new pass over the data set loses the data loader's one base-seed draw, and
      persistent data loader workers restart with fresh random states.

    Atomic writes apply to local ``out_dir``\\ s (no ``backend_args`` / ``file_client_args`` given, or a backend
    derived from ``AtomicLocalBackend``); with a remote backend the hook saves as mmengine's does.
    """

    def __init__(self, *args: Any, backend_args: dict | None = None, file_client_args: dict | None = None,
                 out_dir: str | None = None, **kwargs: Any) -> None:
        if backend_args is None and file_client_args is None and (out_dir is None or '://' not in out_dir):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, file_client_args=file_client_args, out_dir=out_dir,
                         **kwargs)
        self._rng_states: list[dict[str, Any]] | None = None
        self._rng_to_restore: dict[str, Any] | None = None

    @property
    def atomic(self) -> bool:
        return isinstance(getattr(self, 'file_backend', None), AtomicLocalBackend)

    # -- the transaction around every save --------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, runner, saves: bool) -> Iterator[None]:
        """Run one ``CheckpointHook`` method so that what it saves is all-or-nothing (see the class docstring).

        ``saves``: whether this call may save (then every rank's random state is gathered first: a collective,
        so all ranks call it alike).
        """
        if saves:
            states = [_rng_state()]
            self._rng_states = all_gather_object(states[0]) if get_world_size() > 1 else states
        if not self.atomic:
            yield
            return
        last_file = osp.join(runner.work_dir, 'last_checkpoint')
        before = open(last_file).read() if is_main_process() and osp.isfile(last_file) else None
        try:
            with self.file_backend.deferred_removals():
                yield
        except OSError as err:
            if is_main_process() and before is not None:
                atomic_write_text(last_file, before)
            raise CheckpointSaveError(
                f'could not write a checkpoint into {self.out_dir}: {err}. Nothing saved before was touched: '
                f'last_checkpoint still names {before.strip() if before else "no checkpoint"} and no older '
                'checkpoint was deleted. Free disk space (or set default_hooks.checkpoint.max_keep_ckpts / '
                'out_dir), then continue with: python tools/train.py CONFIG --resume') from err
        finally:
            self._rng_states = None
        if is_main_process() and self.last_ckpt is not None and osp.isfile(last_file):
            atomic_write_text(last_file, self.last_ckpt)  # mmengine rewrote it in place

    def _saves_after_iter(self, runner) -> bool:
        return not self.by_epoch and (self.every_n_train_iters(runner, self.interval, self.save_begin)
                                      or (self.save_last and self.is_last_train_iter(runner)))

    def _saves_after_epoch(self, runner) -> bool:
        return self.by_epoch and (self.every_n_epochs(runner, self.interval, self.save_begin)
                                  or (self.save_last and self.is_last_train_epoch(runner)))

    # -- CheckpointHook's methods, wrapped ------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._take_loaded_rng_state(runner)  # the Runner has loaded or resumed by now
        if self.atomic and is_main_process():
            for folder in {self.out_dir, runner.work_dir}:
                if osp.isdir(folder):
                    for path in remove_stale_temporaries(folder):
                        runner.logger.info(f'removed {path}, left by a write that was interrupted')

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        with self._transaction(runner, self._saves_after_iter(runner)):
            super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def after_train_epoch(self, runner) -> None:
        with self._transaction(runner, self._saves_after_epoch(runner)):
            super().after_train_epoch(runner)

    def after_val_epoch(self, runner, metrics: dict) -> None:
        with self._transaction(runner, self.save_best is not None and bool(metrics)):
            super().after_val_epoch(runner, metrics)

    # -- random states -------------------------------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """(Main process only, as mmengine saves there.) Store every rank's random state."""
        checkpoint[RNG_KEY] = self._rng_states or [_rng_state()]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep this rank's saved random state; :meth:`before_train` decides whether the load was a resume."""
        states = checkpoint.get(RNG_KEY)
        self._loaded = (states, (checkpoint.get('meta') or {}).get('iter'))

    def _take_loaded_rng_state(self, runner) -> None:
        states, saved_iter = getattr(self, '_loaded', (None, None))
        self._loaded = (None, None)
        if not states or not runner.iter or runner.iter != saved_iter:  # no states, or load_from: a new run
            return
        if len(states) != get_world_size():
            runner.logger.warning(f'the checkpoint holds the random states of {len(states)} processes, this run has '
                                  f'{get_world_size()}: random states are not restored')
            return
        self._rng_to_restore = states[get_rank()]

    def before_train_epoch(self, runner) -> None:
        if self._rng_to_restore is not None and isinstance(runner.train_loop, EpochBasedTrainLoop):
            _set_rng_state(self._rng_to_restore, data_rngs=True)
            self._rng_to_restore = None
            runner.logger.info('restored the random states of the checkpoint (this rank\'s)')

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        if self._rng_to_restore is not None:
            _set_rng_state(self._rng_to_restore, data_rngs=False)
            self._rng_to_restore = None
            runner.logger.info('restored the torch random state of the checkpoint (this rank\'s)')
