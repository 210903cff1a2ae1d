"""The foundation: registry scope, light package import, compiled mmcv ops, safe checkpoint loading."""
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import mmswin.models  # noqa: F401  (installs safe loading)
from mmswin.models.pretrained import (CheckpointMismatchError, load_state_dict_strict, read_state_dict)
from mmswin.registry import MODELS
from mmswin.utils.checkpoint_io import UnsafeCheckpointError, safe_torch_load


def test_registry_is_child_of_mmengine_root():
    from mmengine.registry import MODELS as ROOT
    assert MODELS.scope == 'mmswin'
    assert MODELS.parent is ROOT
    assert ROOT.children['mmswin'] is MODELS


def test_import_mmswin_is_light():
    code = 'import sys, mmswin; bad = [m for m in ("mmdet", "mmseg", "torch") if m in sys.modules]; print(bad)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'


def test_mmcv_compiled_ops_run():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feat = torch.arange(16.).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 4., 4.]])
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feat, rois)
    # aligned: samples at pixel centres, so each bin averages one 2x2 quadrant of the ramp 4y + x
    assert out.shape == (1, 1, 2, 2)
    assert torch.allclose(out.flatten(), torch.tensor([2.5, 4.5, 10.5, 12.5]), atol=1e-5)


class _ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)


def _toy_runner(work_dir, max_iters, resume=False):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class ToyModel(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1)

        def forward(self, inputs, targets=None, mode='tensor'):
            out = self.linear(inputs)  # default_collate already stacked the batch
            if mode == 'loss':
                return dict(loss=((out.squeeze(1) - targets) ** 2).mean())
            return out

    data = [dict(inputs=torch.randn(4), targets=torch.tensor(1.0)) for _ in range(8)]
    return Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2,
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        resume=resume, randomness=dict(seed=0), default_scope='mmengine')


def test_runner_checkpoint_resumes_with_weights_only(tmp_path):
    runner = _toy_runner(tmp_path, max_iters=2)
    runner.train()
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.exists()
    # Plain torch.load (weights_only by default) refuses mmengine's own file without mmswin's allow-list.
    plain = subprocess.run([sys.executable, '-c', f'import torch; torch.load({str(ckpt)!r})'],
                           capture_output=True, text=True)
    assert plain.returncode != 0 and 'HistoryBuffer' in plain.stderr
    resumed = _toy_runner(tmp_path, max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    state = safe_torch_load(tmp_path / 'iter_4.pth')
    assert state['meta']['iter'] == 4
    assert 'momentum_buffer' in str(state['optimizer']['state'])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    from mmengine.runner import load_checkpoint
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'linear.weight': torch.zeros(2, 4)}, 'payload': _Evil(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match='refused to load.*system'):
        safe_torch_load(path)
    with pytest.raises(UnsafeCheckpointError):  # mmengine's own loading goes through the same gate
        load_checkpoint(_ToyModel(), str(path))
    with pytest.raises(UnsafeCheckpointError):
        read_state_dict(str(path))
    assert not marker.exists()


class _SneakyGetattr:
    """Pickles as ``getattr(HistoryBuffer, '__init__')``: the first step of reaching a module's globals."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_is_allowed_only_for_history_buffer_statistics(tmp_path):
    path = tmp_path / 'sneaky.pth'
    torch.save({'w': torch.zeros(1), 'x': _SneakyGetattr()}, path)
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(path)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    garbage = tmp_path / 'notes.pth'
    for text in ('this is not a checkpoint', 'not a checkpoint'):  # two different failures inside torch.load
        garbage.write_text(text)
        with pytest.raises(ValueError, match='not a readable torch checkpoint'):
            safe_torch_load(garbage)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        safe_torch_load(tmp_path / 'missing.pth')
    tensors_free = tmp_path / 'meta.pth'
    torch.save({'meta': {'epoch': 3}}, tensors_free)
    with pytest.raises(ValueError, match='not a model checkpoint'):
        read_state_dict(str(tensors_free))


def test_official_training_checkpoint_with_args_loads(tmp_path):
    import argparse
    path = tmp_path / 'official.pth'
    torch.save({'model': {'linear.weight': torch.ones(2, 4)}, 'epoch': 299,
                'args': argparse.Namespace(model='shunted_s', lr=5e-4)}, path)
    assert safe_torch_load(path)['args'].model == 'shunted_s'
    assert list(read_state_dict(str(path))) == ['linear.weight']


def test_read_state_dict_unwraps_and_strips_prefix():
    w = torch.ones(2, 4)
    nested = {'meta': {}, 'state_dict': {'backbone.linear.weight': w, 'neck.conv.weight': w}}
    assert list(read_state_dict(nested)) == ['linear.weight']
    assert list(read_state_dict({'model': {'module.linear.weight': w}})) == ['linear.weight']


def test_strict_load_names_every_mismatch():
    model = _ToyModel()
    good = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    assert load_state_dict_strict(model, good, source='toy') == []
    assert torch.count_nonzero(model.linear.weight) == 0

    partial = {'linear.weight': torch.ones(2, 4), 'head.fc.weight': torch.ones(3), 'linear.bias': torch.ones(5)}
    with pytest.raises(CheckpointMismatchError) as err:
        load_state_dict_strict(model, partial, source='toy.pth')
    msg = str(err.value)
    assert 'head.fc.weight' in msg and 'linear.bias: checkpoint (5,) vs model (2,)' in msg
    assert torch.count_nonzero(model.linear.weight) == 0, 'a failed strict load must not change the model'

    allowed = load_state_dict_strict(model, {'linear.weight': torch.ones(2, 4)}, source='toy',
                                     allowed_missing=['linear.b*'])
    assert allowed == ['linear.bias'] and torch.all(model.linear.weight == 1)

    with pytest.raises(CheckpointMismatchError, match='another model'):
        load_state_dict_strict(model, {'conv.weight': torch.ones(1)}, source='x', strict=False)
