"""Nothing lost, round two: each fault is injected and what was saved before is checked.

* the mmengine ``CheckpointHook`` behaviour ``AtomicCheckpointHook`` is built on (pinned, so that an mmengine
  release that changes it fails here);
* a disk that fills up in the middle of a checkpoint write (``ENOSPC``);
* a NaN loss at a chosen iteration with ``NonFiniteLossHook(action='skip')``: the step changes nothing, the run
  finishes; ``max_consecutive`` bad steps stop it;
* two processes (gloo, ``tools/dist_train.sh``): one rank is SIGKILLed mid-run, ``--resume`` ends with the weights
  and optimizer state of an uninterrupted run (every rank's random state restored).
"""
from __future__ import annotations

import copy
import errno
import os
import os.path as osp
import socket
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import torch
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.evaluator import BaseMetric
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmswin.engine  # noqa: F401  (hooks, optimizer wrappers, setup_runtime)
from mmswin.engine import AtomicCheckpointHook, CheckpointSaveError, NonFiniteLossError, storage
from mmswin.engine.hooks.checkpoint_hook import RNG_KEY
from mmswin.utils.checkpoint_io import safe_torch_load

REPO = Path(__file__).resolve().parents[1]


class Toy(BaseModel):
    """A tiny regression model with dropout; ``nan_at`` (1-based iterations) makes the loss NaN there."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                       torch.nn.Linear(16, 1))
        self.nan_at: set[int] = set()
        self.iteration = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        loss = ((self.net(inputs[:, :8]) - inputs[:, 8:]) ** 2).mean()
        if self.training:
            self.iteration += 1
            if self.iteration in self.nan_at:
                loss = loss * float('nan')
        return {'loss_mse': loss}


def _runner(work_dir: Path, max_iters: int = 6, checkpoint: dict | None = None, custom_hooks: list | None = None,
            optim_type: str = 'OptimWrapper', model: Toy | None = None) -> Runner:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    data = [dict(inputs=torch.randn(9, generator=g)) for _ in range(12)]
    return Runner(
        model=model or Toy(), work_dir=str(work_dir), experiment_name=f'toy_{work_dir.name}',
        train_dataloader=dict(dataset=data, sampler=dict(type='InfiniteSampler', shuffle=True), batch_size=3,
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(type=optim_type, optimizer=dict(type='AdamW', lr=1e-2)),
        default_hooks=dict(checkpoint=checkpoint or dict(type='AtomicCheckpointHook', by_epoch=False, interval=2,
                                                         max_keep_ckpts=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=custom_hooks or [], randomness=dict(seed=7), default_scope='mmengine',
        log_level='WARNING')


# ------------------------------------------------------------------------------ the mmengine behaviour we use


class RecordingBackend(LocalBackend):
    """mmengine's local backend that records what the checkpoint hook and the runner do with files."""
    events: list[str] = []

    def put(self, obj, filepath):
        RecordingBackend.events.append(f'put {osp.basename(filepath)}')
        super().put(obj, filepath)

    def remove(self, filepath):
        RecordingBackend.events.append(f'remove {osp.basename(filepath)}')
        super().remove(filepath)


register_backend('mmswin_test_recording', RecordingBackend, force=True)


def test_mmengine_checkpoint_hook_behaviour_we_rely_on(tmp_path):
    """AtomicCheckpointHook wraps CheckpointHook's public hook methods; it relies on mmengine's hook
    (a) saving through the storage backend of ``backend_args`` (``put``), (b) deleting the outdated checkpoint
    through the same backend *before* writing the new one, (c) writing ``work_dir/last_checkpoint`` itself, and
    (d) saving exactly when ``every_n_train_iters(interval)`` or the last iteration says so."""
    RecordingBackend.events = []
    hook = dict(type='CheckpointHook', by_epoch=False, interval=2, max_keep_ckpts=1,
                backend_args=dict(backend='mmswin_test_recording'))
    _runner(tmp_path / 'stock', max_iters=5, checkpoint=hook).train()
    assert RecordingBackend.events == ['put iter_2.pth', 'remove iter_2.pth', 'put iter_4.pth',
                                       'remove iter_4.pth', 'put iter_5.pth']
    assert (tmp_path / 'stock' / 'last_checkpoint').read_text() == str(tmp_path / 'stock' / 'iter_5.pth')
    assert sorted(p.name for p in (tmp_path / 'stock').glob('*.pth')) == ['iter_5.pth']
    # our hook: the same files, removals after the new file is complete, every save carries the random states
    _runner(tmp_path / 'atomic', max_iters=5, checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=2, max_keep_ckpts=1)).train()
    assert sorted(p.name for p in (tmp_path / 'atomic').glob('*.pth')) == ['iter_5.pth']
    assert len(safe_torch_load(tmp_path / 'atomic' / 'iter_5.pth')[RNG_KEY]) == 1
    assert issubclass(mmswin.engine.AtomicCheckpointHook, CheckpointHook)
    assert {'after_train_iter', 'after_train_epoch', 'after_val_epoch', 'before_train'} <= set(
        vars(CheckpointHook)), 'the public methods AtomicCheckpointHook wraps'


class RecordingAtomicBackend(storage.AtomicLocalBackend):
    """The atomic backend, recording what the hook writes (the removals are recorded where files really go)."""
    events: list[str] = []

    def put(self, obj, filepath):
        RecordingAtomicBackend.events.append(f'put {osp.basename(filepath)}')
        super().put(obj, filepath)


register_backend('mmswin_test_recording_atomic', RecordingAtomicBackend, force=True)


class EpochScore(BaseMetric):
    """A validation metric that reports ``SCORES[k]`` at its k-th evaluation (the model's outputs are ignored)."""
    SCORES = (0.5, 0.7, 0.6, 0.9, 0.8)

    def __init__(self) -> None:
        super().__init__()
        self.evaluations = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(1)

    def compute_metrics(self, results) -> dict:
        self.evaluations += 1
        return {'score': self.SCORES[self.evaluations - 1]}


class ToyPredict(Toy):
    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = super().forward(inputs, data_samples, mode)
        return [out] if mode == 'predict' else out


def _epoch_runner(work_dir: Path, checkpoint: dict, max_epochs: int = 5) -> Runner:
    """An epoch-based run (as every COCO config trains) of 4 iterations per epoch, validated after each epoch."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    data = [dict(inputs=torch.randn(9, generator=g)) for _ in range(12)]
    loader = dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=True), batch_size=3,
                  collate_fn=dict(type='default_collate'))
    return Runner(
        model=ToyPredict(), work_dir=str(work_dir), experiment_name=f'toy_epochs_{work_dir.name}',
        train_dataloader=loader, val_dataloader=dict(loader, sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1), val_cfg=dict(),
        val_evaluator=[EpochScore()], optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        default_hooks=dict(checkpoint=checkpoint, logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=7), default_scope='mmengine', log_level='WARNING')


def test_epoch_based_and_best_checkpoints_are_saved_as_mmengine_decides(tmp_path, monkeypatch):
    """The epoch-based path and ``save_best``: the hook saves what mmengine's hook saves (the same files, kept and
    removed alike), gathers the random states exactly when mmengine saves, removes the superseded files only
    after the new one is complete, and every file carries the random states."""
    settings = dict(by_epoch=True, interval=2, max_keep_ckpts=1, save_best='score', rule='greater')
    RecordingBackend.events = []
    _epoch_runner(tmp_path / 'stock', dict(type='CheckpointHook', **settings,
                                           backend_args=dict(backend='mmswin_test_recording'))).train()
    stock_files = sorted(p.name for p in (tmp_path / 'stock').glob('*.pth'))
    assert stock_files == ['best_score_epoch_4.pth', 'epoch_5.pth']
    # mmengine: epoch_2, epoch_4 (removing epoch_2 first), epoch_5 (last); best at epochs 1, 2, 4, the old best
    # removed first; a best save in an epoch that also saved the regular checkpoint writes that one again
    assert RecordingBackend.events == [
        'put best_score_epoch_1.pth', 'put epoch_2.pth', 'remove best_score_epoch_1.pth', 'put best_score_epoch_2.pth',
        'put epoch_2.pth', 'remove epoch_2.pth', 'put epoch_4.pth', 'remove best_score_epoch_2.pth',
        'put best_score_epoch_4.pth', 'put epoch_4.pth', 'remove epoch_4.pth', 'put epoch_5.pth']

    gathered = []  # (method, whether the hook predicted a save)
    transaction = AtomicCheckpointHook._transaction

    def recording_transaction(self, runner, saves):
        gathered.append(saves)
        return transaction(self, runner, saves)

    monkeypatch.setattr(AtomicCheckpointHook, '_transaction', recording_transaction)
    remove = os.remove

    def recording_remove(path, *args, **kwargs):
        if str(path).endswith('.pth'):
            RecordingAtomicBackend.events.append(f'remove {osp.basename(path)}')
        return remove(path, *args, **kwargs)

    monkeypatch.setattr(os, 'remove', recording_remove)
    RecordingAtomicBackend.events = []
    _epoch_runner(tmp_path / 'atomic', dict(type='AtomicCheckpointHook', **settings,
                                            backend_args=dict(backend='mmswin_test_recording_atomic'))).train()
    assert sorted(p.name for p in (tmp_path / 'atomic').glob('*.pth')) == stock_files
    puts = [e for e in RecordingAtomicBackend.events if e.startswith('put') and e.endswith('.pth')]
    assert puts == [e for e in RecordingBackend.events if e.startswith('put')]
    for old, new in [('best_score_epoch_1', 'best_score_epoch_2'), ('epoch_2', 'epoch_4'),
                     ('best_score_epoch_2', 'best_score_epoch_4'), ('epoch_4', 'epoch_5')]:
        events = RecordingAtomicBackend.events
        assert events.index(f'remove {old}.pth') > events.index(f'put {new}.pth'), (old, new, events)
    # after_train_epoch predicts a save at epochs 2, 4, 5; after_val_epoch whenever there are metrics (5 epochs)
    assert sum(gathered) == 3 + 5
    for name in stock_files:
        assert len(safe_torch_load(tmp_path / 'atomic' / name)[RNG_KEY]) == 1, name
    assert (tmp_path / 'atomic' / 'last_checkpoint').read_text() == str(tmp_path / 'atomic' / 'epoch_5.pth')


# ------------------------------------------------------------------------------------------------ full disk


def _fail_half_way(monkeypatch, pattern: str) -> list[str]:
    """Make atomic writes of files matching ``pattern`` fail with ENOSPC after writing half their bytes."""
    failed = []
    write = storage._write_file

    def half_then_full(f, data):
        if fnmatchcase(osp.basename(f.name).split('.tmp-')[0].lstrip('.'), pattern):
            f.write(data[:len(data) // 2])
            failed.append(f.name)
            raise OSError(errno.ENOSPC, 'No space left on device')
        write(f, data)

    monkeypatch.setattr(storage, '_write_file', half_then_full)
    return failed


def test_full_disk_during_a_save_loses_nothing(tmp_path, monkeypatch):
    work = tmp_path / 'run'
    failed = _fail_half_way(monkeypatch, 'iter_4.pth')
    runner = _runner(work, max_iters=6)
    with pytest.raises(CheckpointSaveError) as err:
        runner.train()
    assert failed and not osp.exists(failed[0]), 'the partial temporary file is removed'
    assert not (work / 'iter_4.pth').exists()
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert safe_torch_load(work / 'iter_2.pth')['meta']['iter'] == 2, 'the previous checkpoint, complete'
    assert not list(work.glob('.*.tmp-*'))
    msg = str(err.value)
    assert 'No space left on device' in msg and 'iter_2.pth' in msg and '--resume' in msg
    assert 'no older checkpoint was deleted' in msg
    assert runner.iter == 3, 'the run stopped at the failed save (iteration 4 done, counter not advanced)'


# ------------------------------------------------------------------------------------------------- NaN skip


class Snapshot(Hook):
    """Copies of the weights and the optimizer state before and after chosen iterations (1-based)."""

    def __init__(self, at: set[int]) -> None:
        self.at, self.before, self.after = at, {}, {}

    def _state(self, runner):
        return (copy.deepcopy(runner.model.state_dict()), copy.deepcopy(runner.optim_wrapper.state_dict()))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 in self.at:
            self.before[runner.iter + 1] = self._state(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 in self.at:
            self.after[runner.iter + 1] = self._state(runner)


def _assert_same_state(a, b) -> None:
    (wa, oa), (wb, ob) = a, b
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    for index, state in oa['state'].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(ob['state'][index][name])), (index, name)


def test_nan_loss_step_is_skipped_and_changes_nothing(tmp_path):
    model = Toy()
    model.nan_at = {3}
    snap = Snapshot({2, 3, 4})
    runner = _runner(tmp_path / 'run', model=model, optim_type='SkipNonFiniteOptimWrapper',
                     custom_hooks=[dict(type='NonFiniteLossHook', action='skip', max_consecutive=2), snap])
    runner.train()
    assert runner.iter == 6, 'the run finished'
    _assert_same_state(snap.before[3], snap.after[3])  # the NaN step: weights and Adam moments unchanged
    with pytest.raises(AssertionError):
        _assert_same_state(snap.before[4], snap.after[4])  # the next step trains again
    logged = Path(runner.log_dir, f'{runner.timestamp}.log').read_text()
    assert 'skipped the update of iteration 3' in logged and 'loss_mse=nan' in logged
    assert (tmp_path / 'run' / 'iter_6.pth').exists()


def test_consecutive_nan_steps_stop_the_run(tmp_path):
    model = Toy()
    model.nan_at = {3, 4}
    runner = _runner(tmp_path / 'run', model=model, optim_type='SkipNonFiniteOptimWrapper',
                     custom_hooks=[dict(type='NonFiniteLossHook', action='skip', max_consecutive=2)])
    with pytest.raises(NonFiniteLossError, match='2 consecutive steps were skipped'):
        runner.train()
    assert runner.iter == 3 and (tmp_path / 'run' / 'last_checkpoint').read_text().endswith('iter_2.pth')


def test_skip_needs_a_skipping_optimizer_wrapper(tmp_path):
    runner = _runner(tmp_path / 'run', custom_hooks=[dict(type='NonFiniteLossHook', action='skip')])
    with pytest.raises(ValueError, match="optim_wrapper.type='SkipNonFiniteOptimWrapper'"):
        runner.train()


def test_gradient_overflow_is_skipped_too(tmp_path):
    """A finite loss whose gradient is not finite (an inf weight): the plain wrapper's check catches it."""
    model = Toy()
    runner = _runner(tmp_path / 'run', max_iters=2, model=model, optim_type='SkipNonFiniteOptimWrapper',
                     custom_hooks=[dict(type='NonFiniteLossHook', action='skip', max_consecutive=5)])
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    loss = model(torch.randn(4, 9))['loss_mse']
    before = copy.deepcopy(model.state_dict())
    model.net[0].weight.register_hook(lambda g: torch.full_like(g, float('inf')))
    wrapper.update_params(loss)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


# ------------------------------------------------------------------------------- distributed kill and resume

KILL_HOOK = '''
import os, signal
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.dist import get_rank


@HOOKS.register_module()
class KillRankHook(Hook):
    """SIGKILL this process before iteration KILL_AT (1-based) on rank KILL_RANK, as an OOM killer would."""
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if str(runner.iter + 1) == os.environ.get('KILL_AT') and str(get_rank()) == os.environ.get('KILL_RANK'):
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _dist_train(cfg: str, work: Path, cwd: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, PORT=str(_free_port()), PYTHON=sys.executable, OMP_NUM_THREADS='1', **env)
    full['PYTHONPATH'] = os.pathsep.join([str(cwd), str(REPO), os.environ.get('PYTHONPATH', '')])
    return subprocess.run(['bash', str(REPO / 'tools' / 'dist_train.sh'), cfg, '2', '--work-dir', str(work),
                           *extra], cwd=cwd, env=full, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_distributed_kill_one_rank_then_resume_equals_uninterrupted(tmp_path):
    from helpers import tiny_seg_config, write_ade
    write_ade(str(tmp_path), num_images=4)
    (tmp_path / 'kill_hook.py').write_text(KILL_HOOK)
    extra = """custom_imports = dict(imports=['mmswin.models', 'mmswin.engine', 'kill_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='KillRankHook')]
# different random streams per rank: restoring rank 0's state everywhere would change the result
randomness = dict(seed=0, diff_rank_seed=True, deterministic=True)
train_cfg = dict(max_iters=6, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=2))
"""
    cfg = tiny_seg_config(str(tmp_path / 'seg_tiny.py'), str(tmp_path / 'ade' / 'ADEChallengeData2016'), extra)

    reference = tmp_path / 'uninterrupted'
    proc = _dist_train(cfg, reference, tmp_path)
    assert proc.returncode == 0, proc.stderr[-5000:]

    work = tmp_path / 'killed'
    # before iteration 6: rank 0 saved iter_4.pth before its iteration 5, which rank 1 has finished with it (DDP)
    proc = _dist_train(cfg, work, tmp_path, KILL_AT='6', KILL_RANK='1')
    assert proc.returncode != 0, 'rank 1 was killed and the launcher stopped the run'
    assert 'Signals.SIGKILL' in proc.stderr or 'exitcode  : -9' in proc.stderr, proc.stderr[-3000:]
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')
    assert not (work / 'iter_6.pth').exists()
    states = safe_torch_load(work / 'iter_4.pth')[RNG_KEY]
    assert len(states) == 2 and not torch.equal(states[0]['torch'], states[1]['torch']), 'one state per rank'

    proc = _dist_train(cfg, work, tmp_path, '--resume')
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert 'resumed epoch: 0, iter: 4' in out
    assert "restored the torch random state of the checkpoint (this rank's)" in out  # rank 0 logs; rank 1's shows
    # in the weights: with diff_rank_seed its drop-path stream differs from rank 0's
    a, b = safe_torch_load(reference / 'iter_6.pth'), safe_torch_load(work / 'iter_6.pth')
    worst = max((a['state_dict'][k].float() - v.float()).abs().max().item() for k, v in b['state_dict'].items())
    assert worst <= 1e-5, f'max weight difference {worst}'
    for index, state in a['optimizer']['state'].items():
        for name, value in state.items():
            torch.testing.assert_close(b['optimizer']['state'][index][name], value, atol=1e-5, rtol=0)
    print(f'distributed resume: max weight difference {worst:.2e}')
