"""Nothing is lost: a training killed with SIGKILL at any moment, even in the middle of writing a checkpoint,
continues with ``--resume`` from its last complete checkpoint and ends exactly where an uninterrupted run ends.

The kill inside a save is made deterministic with ``MMSWIN_ATOMIC_WRITE_PAUSE=SECONDS:PATTERN``: the atomic writer
announces on stderr that the temporary file is complete and sleeps before the rename; the test kills it there.

* toy model (mmengine only, dropout on, ``max_keep_ckpts=1``: the setting in which mmengine's stock hook deletes the
  old checkpoint before writing the new one): kill during a save, kill in mid-iteration; about 25 s.
* the tiny UperNet + Swin demo model through ``tools/train.py --resume`` (marked slow, about 60 s).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from mmswin.engine.storage import PAUSE_ENV, atomic_write_text, remove_stale_temporaries
from mmswin.utils.checkpoint_io import safe_torch_load

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), env.get('PYTHONPATH', '')])
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **extra)
    return env


def _run_until(cmd: list[str], marker: str, env: dict, cwd: Path) -> subprocess.Popen:
    """Start ``cmd``; return once a line of its stderr+stdout contains ``marker`` (the process is still running)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    seen = []
    deadline = time.time() + TIMEOUT
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return proc
        if time.time() > deadline:
            break
    proc.kill()
    raise AssertionError(f'{marker!r} never appeared; output:\n{"".join(seen[-40:])}')


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _run(cmd: list[str], env: dict, cwd: Path) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _last(work_dir: Path) -> Path:
    return Path((work_dir / 'last_checkpoint').read_text().strip())


def _assert_same_checkpoint(a: Path, b: Path, atol: float = 1e-6) -> None:
    ca, cb = safe_torch_load(a), safe_torch_load(b)
    assert ca['meta']['iter'] == cb['meta']['iter']
    assert ca['state_dict'].keys() == cb['state_dict'].keys()
    for key, value in ca['state_dict'].items():
        torch.testing.assert_close(cb['state_dict'][key], value, atol=atol, rtol=0, msg=f'weights differ: {key}')
    sa, sb = ca['optimizer']['state'], cb['optimizer']['state']
    assert sa.keys() == sb.keys()
    for index in sa:
        for name, value in sa[index].items():
            torch.testing.assert_close(sb[index][name], value, atol=atol, rtol=0,
                                       msg=f'optimizer state differs: {index}.{name}')
    assert ca['param_schedulers'] == cb['param_schedulers']


# ------------------------------------------------------------------------------------------- atomic writes


def test_atomic_write_killed_before_rename_keeps_old_file(tmp_path):
    target = tmp_path / 'last_checkpoint'
    atomic_write_text(target, 'old complete content')
    code = f'from mmswin.engine.storage import atomic_write_text; atomic_write_text({str(target)!r}, "new")'
    proc = _run_until([sys.executable, '-c', code], 'mmswin-atomic-write: paused', _env(**{PAUSE_ENV: '60'}),
                      tmp_path)
    _kill(proc)
    assert target.read_text() == 'old complete content'
    stale = list(tmp_path.glob('.last_checkpoint.tmp-*'))
    assert len(stale) == 1 and stale[0].read_text() == 'new'
    assert remove_stale_temporaries(tmp_path) == [str(stale[0])]
    assert not list(tmp_path.glob('.*.tmp-*'))


def test_deferred_removals_keep_old_files_until_the_new_one_is_written(tmp_path):
    """How AtomicCheckpointHook replaces the best checkpoint: mmengine deletes the old one first."""
    from mmswin.engine.storage import AtomicLocalBackend
    backend = AtomicLocalBackend()
    old_best, same_name = tmp_path / 'best_iter_2.pth', tmp_path / 'best_iter_4.pth'
    old_best.write_bytes(b'old')
    same_name.write_bytes(b'stale')
    with pytest.raises(RuntimeError):
        with backend.deferred_removals():
            backend.remove(old_best)
            raise RuntimeError('the save failed')
    assert old_best.read_bytes() == b'old', 'kept: the new best was never written'
    with backend.deferred_removals():
        backend.remove(old_best)
        assert old_best.exists(), 'still there while the new file is being written'
        backend.remove(same_name)
        backend.put(b'new', same_name)  # rewritten after the removal was asked for
    assert not old_best.exists()
    assert same_name.read_bytes() == b'new'


# --------------------------------------------------------------------------------------------- toy training

TOY = textwrap.dedent('''
    import os, sys, time
    import torch
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    import mmswin.engine  # noqa: F401

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                           torch.nn.Linear(16, 1))
        def forward(self, inputs, data_samples=None, mode='tensor'):
            x = inputs
            return {'loss_mse': ((self.net(x[:, :8]) - x[:, 8:]) ** 2).mean()}

    from mmengine.hooks import Hook
    class StepMarker(Hook):  # prints STEP k before iteration k (1-based), sleeps there when asked
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            step = runner.iter + 1
            print(f'STEP {step}', flush=True)
            if os.environ.get('TOY_SLEEP_AT') == str(step):
                time.sleep(60)

    torch.manual_seed(0)  # the model is built before the Runner seeds: same initial weights in every run
    g = torch.Generator().manual_seed(123)
    data = [dict(inputs=torch.randn(9, generator=g)) for _ in range(10)]
    runner = Runner(
        model=Toy(), work_dir=sys.argv[1], experiment_name='toy',
        train_dataloader=dict(dataset=data, sampler=dict(type='InfiniteSampler', shuffle=True), batch_size=3,
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=8),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)],
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=2,
                                           max_keep_ckpts=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='NonFiniteLossHook'), StepMarker()],
        randomness=dict(seed=7, deterministic=True), resume='--resume' in sys.argv, default_scope='mmengine')
    runner.train()
''')


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp('toy')
    script = folder / 'toy_train.py'
    script.write_text(TOY)
    reference = folder / 'uninterrupted'
    _run([sys.executable, str(script), str(reference)], _env(), folder)
    assert _last(reference).name == 'iter_8.pth'
    return script, reference


def test_toy_killed_while_saving_resumes_from_last_complete(toy, tmp_path):
    script, reference = toy
    work = tmp_path / 'run'
    proc = _run_until([sys.executable, str(script), str(work)], 'mmswin-atomic-write: paused',
                      _env(**{PAUSE_ENV: '60:iter_4.pth'}), tmp_path)
    _kill(proc)
    # the half-done save neither replaced nor hid the last good checkpoint (max_keep_ckpts=1 would have deleted
    # iter_2.pth before writing iter_4.pth with mmengine's CheckpointHook)
    assert _last(work).name == 'iter_2.pth'
    assert safe_torch_load(_last(work))['meta']['iter'] == 2
    assert not (work / 'iter_4.pth').exists()
    assert list(work.glob('.iter_4.pth.tmp-*')), 'the complete temporary file is where the kill left it'

    out = _run([sys.executable, str(script), str(work), '--resume'], _env(), tmp_path)
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'STEP 3' in out and 'STEP 2\n' not in out
    assert not list(work.glob('.*.tmp-*')), 'stale temporary files are cleaned up'
    assert sorted(p.name for p in work.glob('iter_*.pth')) == ['iter_8.pth']
    _assert_same_checkpoint(reference / 'iter_8.pth', work / 'iter_8.pth')


def test_toy_killed_mid_iteration_resumes_and_matches(toy, tmp_path):
    script, reference = toy
    work = tmp_path / 'run'
    proc = _run_until([sys.executable, str(script), str(work)], 'STEP 7', _env(TOY_SLEEP_AT='7'), tmp_path)
    _kill(proc)
    assert _last(work).name == 'iter_6.pth'
    out = _run([sys.executable, str(script), str(work), '--resume'], _env(), tmp_path)
    assert 'resumed epoch: 0, iter: 6' in out
    assert 'restored the torch random state of the checkpoint' in out
    _assert_same_checkpoint(reference / 'iter_8.pth', work / 'iter_8.pth')


# ------------------------------------------------------------------------------ real model, tools/train.py

TINY_SEG = REPO / 'configs' / 'demo' / 'upernet_swin_tiny_overfit.py'
TRAIN_OPTS = ['--cfg-options', 'train_cfg.max_iters=6', 'train_cfg.val_interval=100',
              'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=1',
              'randomness.deterministic=True']


@pytest.mark.slow
def test_tiny_segmenter_killed_while_saving_resumes_equal(tmp_path):
    from mmswin.datasets import demo_data
    demo_data.prepare(REPO / 'data', log=lambda *_: None)  # <repo>/data/demo_ade, the config's data_root (cached)
    opts = TRAIN_OPTS
    train = [sys.executable, str(REPO / 'tools' / 'train.py'), str(TINY_SEG)]
    reference, work = tmp_path / 'uninterrupted', tmp_path / 'killed'
    _run(train + ['--work-dir', str(reference)] + opts, _env(), REPO)

    proc = _run_until(train + ['--work-dir', str(work)] + opts, 'mmswin-atomic-write: paused',
                      _env(**{PAUSE_ENV: '120:iter_4.pth'}), REPO)
    _kill(proc)
    assert _last(work).name == 'iter_2.pth' and (work / 'iter_2.pth').is_file()
    assert not (work / 'iter_4.pth').exists()

    out = _run(train + ['--work-dir', str(work), '--resume'] + opts, _env(), REPO)
    assert 'resumed epoch: 0, iter: 2' in out, out[-3000:]
    _assert_same_checkpoint(reference / 'iter_6.pth', work / 'iter_6.pth', atol=1e-5)


# ------------------------------------------------------------------------------------- safeguards in configs


@pytest.mark.parametrize('config', ['mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
                                    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'])
def test_enable_safeguards_on_stock_configs(config, tmp_path):
    """A user's config without any of the safeguards gets all of them, its own settings kept."""
    from mmengine.config import Config

    from mmswin.engine import enable_safeguards
    (tmp_path / 'user.py').write_text(f'_base_ = {config!r}\n')
    cfg = Config.fromfile(str(tmp_path / 'user.py'))
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook' and not cfg.get('custom_hooks')
    assert 'custom_imports' not in cfg
    interval = cfg.default_hooks.checkpoint.interval
    enable_safeguards(enable_safeguards(cfg, data_check_level='exists'))  # idempotent
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.interval == interval
    assert [h['type'] for h in cfg.custom_hooks] == ['NonFiniteLossHook', 'DataCheckHook']
    assert cfg.custom_hooks[1] == dict(type='DataCheckHook', level='exists')
    assert cfg.custom_imports.imports == ['mmswin.engine']
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    cfg.custom_hooks[0]['action'] = 'skip'  # skipping non-finite steps needs the skipping optimizer wrapper
    enable_safeguards(cfg)
    assert cfg.optim_wrapper.type == 'SkipNonFiniteOptimWrapper'


@pytest.mark.parametrize('config', sorted(p.name for p in (REPO / 'configs' / 'demo').glob('*.py')))
def test_demo_configs_carry_safeguards(config):
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / config))
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert {h['type'] for h in cfg.custom_hooks} >= {'NonFiniteLossHook', 'DataCheckHook'}
    assert 'mmswin.engine' in cfg.custom_imports.imports
    assert cfg.model.backbone.type == 'mmswin.SwinTransformer' and cfg.model.backbone.init_cfg is None
