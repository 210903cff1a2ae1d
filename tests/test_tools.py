"""tools/: train / test / infer on tiny synthetic data sets, distributed training on CPU (gloo) through
tools/dist_train.sh, the missing-data and missing-pretrained messages, get_flops and benchmark_model."""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine.config import Config  # noqa: E402

from mmswin.datasets.checks import DataCheckError  # noqa: E402
from mmswin.utils.checkpoint_io import CheckpointNotFoundError  # noqa: E402
import helpers  # noqa: E402
from helpers import SIZE, load_tool, tiny_det_config, tiny_seg_config, write_ade, write_coco  # noqa: E402


REPO, TOOLS = str(helpers.REPO), str(helpers.TOOLS)
get_flops = load_tool('analysis/get_flops.py')
benchmark_model = load_tool('analysis/benchmark_model.py')
infer = load_tool('infer.py')
test_tool = load_tool('test.py')
train_tool = load_tool('train.py')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data'))
    write_coco(root)
    write_ade(root)
    return root


# ---------------------------------------------------------------------------------------------------------------
# Messages instead of tracebacks.

def _run(args: list[str], cwd: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    full_env['PYTHONPATH'] = os.pathsep.join(
        filter(None, [REPO, (env or {}).get('PYTHONPATH'), os.environ.get('PYTHONPATH')]))
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def test_train_missing_coco_message(tmp_path):
    """The real command, run where there is no data/: a short message and exit status 1, no traceback."""
    proc = _run([sys.executable, osp.join(TOOLS, 'train.py'),
                 osp.join(REPO, 'configs/mask_rcnn_swin_t_fpn_1x_coco.py')], cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert 'Data set not found' in proc.stderr
    assert 'data/coco/   (train_dataloader.dataset.data_root)' in proc.stderr
    assert 'annotations/instances_train2017.json' in proc.stderr  # the expected layout
    assert 'https://cocodataset.org/#download' in proc.stderr
    assert 'ln -s /path/to/coco data/coco' in proc.stderr


def test_train_missing_ade_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataCheckError) as err:
        train_tool.main([osp.join(REPO, 'configs/upernet_swin_t_ade20k.py')])
    msg = str(err.value)
    assert 'data/ade/ADEChallengeData2016' in msg and 'ADEChallengeData2016.zip' in msg
    assert 'images/training' in msg and 'annotations/validation' in msg


def test_test_missing_data_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': {}}, ckpt)
    with pytest.raises(DataCheckError) as err:
        test_tool.main([osp.join(REPO, 'configs/mask_rcnn_shunted_t_fpn_1x_coco.py'), str(ckpt)])
    missing_part = str(err.value).split('Expected layout')[0]
    assert 'data/coco/   (test_dataloader.dataset.data_root)' in missing_part
    assert 'train_dataloader' not in missing_part  # testing needs only the test split


def test_train_missing_pretrained_message(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    root = osp.join(data_dir, 'coco') + '/'
    with pytest.raises(CheckpointNotFoundError) as err:
        train_tool.main([osp.join(REPO, 'configs/mask_rcnn_swin_s_fpn_1x_coco.py'), '--cfg-options',
                         f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}'])
    msg = str(err.value)
    assert 'checkpoints/swin_small_patch4_window7_224.pth' in msg
    assert ('wget -O checkpoints/swin_small_patch4_window7_224.pth https://github.com/SwinTransformer/storage/'
            'releases/download/v1.0.0/swin_small_patch4_window7_224.pth') in msg
    assert '--cfg-options model.backbone.init_cfg=None' in msg


def test_resume_does_not_need_the_pretrained_file(tmp_path, monkeypatch, data_dir):
    """--resume CKPT / load_from replace every weight: a missing ImageNet file is dropped with a note, not an error."""
    monkeypatch.chdir(tmp_path)
    root = osp.join(data_dir, 'coco') + '/'
    ckpt = tmp_path / 'epoch_3.pth'
    ckpt.write_bytes(b'')
    args = train_tool.parse_args([osp.join(REPO, 'configs/mask_rcnn_swin_t_fpn_3x_coco.py'), '--resume', str(ckpt),
                                  '--cfg-options', f'train_dataloader.dataset.data_root={root}',
                                  f'val_dataloader.dataset.data_root={root}'])
    cfg = train_tool.setup_cfg(args)
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    train_tool.check_inputs(cfg, args)
    assert cfg.model.backbone.init_cfg is None
    # without --resume the same config stops with the message
    args = train_tool.parse_args([osp.join(REPO, 'configs/mask_rcnn_swin_t_fpn_3x_coco.py'), '--cfg-options',
                                  f'train_dataloader.dataset.data_root={root}',
                                  f'val_dataloader.dataset.data_root={root}'])
    with pytest.raises(CheckpointNotFoundError, match='swin_tiny_patch4_window7_224.pth'):
        train_tool.check_inputs(train_tool.setup_cfg(args), args)


@pytest.mark.parametrize('native_bf16', [True, False], ids=['bf16-cpu', 'cpu-without-bf16'])
def test_amp_on_the_cpu(monkeypatch, native_bf16):
    """Without CUDA, --amp trains the dense parts in bfloat16 (Bf16OptimWrapper, no loss scaling) on a CPU with native
    bfloat16, and is refused with the reason on other CPUs (tests/test_amp_compile.py runs both)."""
    import mmswin.engine.precision as precision
    from mmswin.engine import UnsupportedPrecisionError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(precision, 'cpu_bf16_instructions', lambda: ['AVX512-BF16'] if native_bf16 else [])
    args = train_tool.parse_args([osp.join(REPO, 'configs/upernet_swin_t_ade20k.py'), '--amp'])
    if not native_bf16:
        with pytest.raises(UnsupportedPrecisionError, match='--amp on the CPU needs native bfloat16 instructions'):
            train_tool.setup_cfg(args)
        return
    cfg = train_tool.setup_cfg(args)
    assert cfg.optim_wrapper.type == 'Bf16OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper and 'dtype' not in cfg.optim_wrapper


@pytest.mark.parametrize('bf16', [True, False], ids=['bf16-gpu', 'fp16-gpu'])
def test_amp_compile_and_auto_scale_lr_options(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: bf16)
    args = train_tool.parse_args([osp.join(REPO, 'configs/mask_rcnn_swin_s_fpn_3x_coco.py'), '--amp',
                                  '--auto-scale-lr', '--resume', '--compile'])
    cfg = train_tool.setup_cfg(args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    if bf16:
        assert cfg.optim_wrapper.dtype == 'bfloat16' and 'loss_scale' not in cfg.optim_wrapper
    else:
        assert cfg.optim_wrapper.loss_scale == 'dynamic' and 'dtype' not in cfg.optim_wrapper
    assert cfg.compile is False  # mmengine's whole-train_step compile fails: CompileHook compiles the dense parts
    assert dict(type='CompileHook', options={}) in cfg.custom_hooks
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=16)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.work_dir == osp.join('./work_dirs', 'mask_rcnn_swin_s_fpn_3x_coco')


def test_data_check_unit(tmp_path):
    from mmswin.apis import find_missing_data
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=2,
        dataset=dict(type='CocoDataset', data_root=str(tmp_path), ann_file='a.json',
                     data_prefix=dict(img='imgs/'))))))
    missing = find_missing_data(cfg, ('train',))
    assert [m.key for m in missing] == ['train_dataloader.dataset.dataset.ann_file',
                                        'train_dataloader.dataset.dataset.data_prefix.img']
    (tmp_path / 'a.json').write_text('{}')
    (tmp_path / 'imgs').mkdir()
    assert find_missing_data(cfg, ('train',)) == []
    with pytest.raises(ValueError, match='splits'):
        find_missing_data(cfg, ('training',))


# ---------------------------------------------------------------------------------------------------------------
# The real training pipelines of the configs, on synthetic data.

@pytest.mark.parametrize('name', ['mask_rcnn_swin_t_fpn_1x_coco.py', 'mask_rcnn_shunted_s_fpn_3x_coco.py',
                                  'upernet_shunted_b_ade20k.py'])
def test_real_train_pipelines(data_dir, name):
    from mmengine.registry import DATASETS, init_default_scope
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    init_default_scope(cfg.default_scope)
    ds_cfg = cfg.train_dataloader.dataset
    if 'coco' in name:
        ds_cfg.data_root = osp.join(data_dir, 'coco') + '/'
    else:
        ds_cfg.data_root = osp.join(data_dir, 'ade', 'ADEChallengeData2016')
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) > 0
    for i in range(4):
        item = dataset[i % len(dataset)]
        h, w = item['inputs'].shape[-2:]
        if name.endswith('1x_coco.py'):
            assert (h, w) == (800, 800)  # 64x64 -> shorter side 800
        elif name.endswith('3x_coco.py'):
            assert 480 <= min(h, w) <= 800 and max(h, w) <= 1333, (h, w)
        else:
            assert h == w and 256 <= h <= 512, (h, w)  # 64x64 resized to 512 x 0.5..2, crop at most 512
        if 'coco' in name:
            assert len(item['data_samples'].gt_instances) >= 1


# ---------------------------------------------------------------------------------------------------------------
# Segmentation: train (2 iterations + validation), resume to 3, test with --out, infer.

@pytest.mark.slow
def test_seg_train_resume_test_infer(tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ade = osp.join(data_dir, 'ade', 'ADEChallengeData2016')
    cfg_path = tiny_seg_config(str(tmp_path / 'seg_tiny.py'), ade)
    work = str(tmp_path / 'work')
    train_tool.main([cfg_path, '--work-dir', work])
    assert osp.isfile(osp.join(work, 'iter_2.pth'))

    # bare --resume: the latest checkpoint of the work dir; continues from iteration 2 to 3
    train_tool.main([cfg_path, '--work-dir', work, '--resume', '--cfg-options', 'train_cfg.max_iters=3',
                     'default_hooks.checkpoint.interval=1'])
    from mmswin.utils.checkpoint_io import safe_torch_load
    ckpt = safe_torch_load(osp.join(work, 'iter_3.pth'))
    assert ckpt['meta']['iter'] == 3
    assert len(ckpt['meta']['dataset_meta']['classes']) == 150

    out_dir = str(tmp_path / 'pred_png')
    show_dir = str(tmp_path / 'show')
    test_tool.main([cfg_path, osp.join(work, 'iter_3.pth'), '--work-dir', str(tmp_path / 'test_work'),
                    '--out', out_dir, '--show-dir', show_dir])
    assert len([f for f in os.listdir(out_dir) if f.endswith('.png')]) == 2
    # --show-dir paints every test image (mmseg's hook alone paints every 50th: none of these 2)
    painted = glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True)
    assert len(painted) == 2, painted
    # multi-scale + flip testing with the stock ADE20K tta_pipeline (ratios 0.5 ... 1.75, flip)
    test_tool.main([cfg_path, osp.join(work, 'iter_3.pth'), '--work-dir', str(tmp_path / 'tta_work'), '--tta'])
    metrics = [f for f in glob.glob(str(tmp_path / 'tta_work' / '*' / '*.json'))]
    assert metrics and 'mIoU' in json.load(open(metrics[0]))

    records = infer.main([cfg_path, osp.join(work, 'iter_3.pth'), osp.join(ade, 'images', 'validation'),
                          '--out-dir', str(tmp_path / 'infer'), '--device', 'cpu'])
    assert len(records) == 2
    import mmcv
    for rec in records:
        assert mmcv.imread(rec['visualization']).shape[0] > SIZE  # the legend below the picture
        name = osp.splitext(osp.basename(rec['image']))[0]
        with open(osp.join(tmp_path, 'infer', 'preds', f'{name}.json')) as f:
            js = json.load(f)
        assert js['height'] == js['width'] == SIZE
        assert sum(c['pixels'] for c in js['classes_present']) == SIZE * SIZE
        label = mmcv.imread(js['label_map'], flag='unchanged')
        assert label.shape == (SIZE, SIZE) and label.max() < 150


# ---------------------------------------------------------------------------------------------------------------
# Detection: two-process distributed training (gloo on CPU) through tools/dist_train.sh; both ranks end with
# identical weights; then test and infer with the saved checkpoint.

HASH_HOOK = '''
import hashlib

import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class ParamHashHook(Hook):
    """Each rank writes a hash of its model state (parameters and buffers) after training."""

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        h = hashlib.sha256()
        for name, value in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        with open(f'{self.out_dir}/rank{runner.rank}.txt', 'w') as f:
            f.write(f'{runner.world_size} {runner.iter} {dist.get_backend()} {h.hexdigest()}')
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dist_train_two_processes_then_test_and_infer(tmp_path, data_dir, monkeypatch):
    (tmp_path / 'hash_hook.py').write_text(HASH_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))  # the config imports it in this process too (test / infer)
    extra = f"""custom_imports = dict(imports=['mmswin.models', 'hash_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='ParamHashHook', out_dir={str(tmp_path)!r})]
train_cfg = dict(max_epochs=2, val_interval=10)
"""
    cfg_path = tiny_det_config(str(tmp_path / 'det_tiny.py'), osp.join(data_dir, 'coco'), extra)
    work = str(tmp_path / 'work')
    proc = _run(['bash', osp.join(TOOLS, 'dist_train.sh'), cfg_path, '2', '--work-dir', work],
                cwd=str(tmp_path), env=dict(PYTHONPATH=str(tmp_path), PORT=str(_free_port()), PYTHON=sys.executable,
                                            OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-5000:])
    r0 = (tmp_path / 'rank0.txt').read_text().split()
    r1 = (tmp_path / 'rank1.txt').read_text().split()
    # 4 images / (2 ranks x 1 image) = 2 iterations per epoch, 2 epochs
    assert r0[:3] == ['2', '4', 'gloo'] and r1[:3] == r0[:3]
    assert r0[3] == r1[3], 'the two ranks ended with different weights'
    ckpt = osp.join(work, 'epoch_2.pth')
    assert osp.isfile(ckpt)

    # two-process test through tools/dist_test.sh: predictions gathered into one pickle, pictures painted
    out_pkl = str(tmp_path / 'preds.pkl')
    show_dir = str(tmp_path / 'show')
    proc = _run(['bash', osp.join(TOOLS, 'dist_test.sh'), cfg_path, ckpt, '2', '--work-dir', str(tmp_path / 'test'),
                 '--out', out_pkl, '--show-dir', show_dir],
                cwd=str(tmp_path), env=dict(PYTHONPATH=str(tmp_path), PORT=str(_free_port()), PYTHON=sys.executable,
                                            OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-5000:])
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    import pickle
    with open(out_pkl, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 4 and 'pred_instances' in preds[0]
    # DetLocalVisualizer paints on rank 0 only (mmdet's @master_only): its half of the 4 images
    assert len([f for f in os.listdir(show_dir) if f.endswith('.jpg')]) == 2

    no_hook = ['--cfg-options', 'custom_hooks=[]']
    records = infer.main([cfg_path, ckpt, osp.join(data_dir, 'coco', 'val2017'), '--out-dir',
                          str(tmp_path / 'infer'), '--device', 'cpu', '--score-thr', '0.0', *no_hook])
    assert len(records) == 4
    from mmdet.datasets import CocoDataset
    classes = CocoDataset.METAINFO['classes']
    import mmcv
    for rec in records:
        assert mmcv.imread(rec['visualization']).shape[0] > SIZE  # the legend below the picture
        assert 1 <= len(rec['instances']) <= 10
        for inst in rec['instances']:
            assert inst['class'] == classes[inst['label']] and len(inst['bbox']) == 4
            assert inst['mask']['size'] == [SIZE, SIZE] and 0 <= inst['score'] <= 1


def test_shell_scripts_usage():
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh'):
        path = osp.join(TOOLS, script)
        assert os.access(path, os.X_OK), script
        proc = subprocess.run(['bash', path], capture_output=True, text=True)
        assert proc.returncode == 2 and 'usage' in proc.stderr, script


def test_cpu_distributed_adaptation():
    from mmswin.apis import adapt_distributed_to_cpu
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl')),
                      model=dict(head=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)))))
    assert adapt_distributed_to_cpu(cfg, cuda_available=False)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model.head.norm_cfg.type == 'BN'
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert not adapt_distributed_to_cpu(cfg, cuda_available=True) and cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert not adapt_distributed_to_cpu(Config(dict(launcher='none')), cuda_available=False)


# ---------------------------------------------------------------------------------------------------------------
# Analysis tools.

def test_sdpa_flop_handle():
    class Attn(torch.nn.Module):
        def forward(self, q, k, v):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    q = torch.randn(2, 3, 10, 8)
    k = torch.randn(2, 3, 12, 8)
    v = torch.randn(2, 3, 12, 5)
    assert get_flops.count(Attn(), (q, k, v)) == 2 * 3 * 10 * 12 * 8 + 2 * 3 * 10 * 12 * 5


def test_flops_of_swin_t_match_the_paper():
    """Swin-T at 224x224: 4.5 GFLOPs in the paper (classifier included, 0.001 G); counts attention (SDPA)."""
    from mmengine.registry import MODELS
    import mmswin.models  # noqa: F401
    backbone = MODELS.build(dict(type='mmswin.SwinTransformer', arch='tiny')).eval()
    with torch.no_grad():
        flops = get_flops.count(backbone, (torch.randn(1, 3, 224, 224),))
    assert 4.4e9 < flops < 4.6e9, flops


def test_cascade_mask_heads_counted_on_the_first_rois():
    """get_flops counts a cascade's mask heads on the first 100 proposals (the published convention): inside the
    context the mask forward computes those rows only, zeros for the rest; afterwards the head is as before."""
    calls = []

    class CascadeRoIHead(torch.nn.Module):  # the name is what the tool recognises
        def _mask_forward(self, stage, x, rois):
            calls.append(len(rois))
            return dict(mask_preds=rois[:, :1, None, None].expand(-1, 2, 3, 3) + 1, mask_feats=None)

    model = torch.nn.Module()
    model.roi_head = CascadeRoIHead()
    rois = torch.arange(150 * 5, dtype=torch.float32).view(150, 5)
    full = model.roi_head._mask_forward(0, (), rois)['mask_preds']
    with get_flops.mask_heads_on_first_rois(model, 100) as active:
        assert active
        out = model.roi_head._mask_forward(1, (), rois)
    assert calls == [150, 100]
    assert out['mask_preds'].shape == full.shape and 'mask_feats' in out
    assert torch.equal(out['mask_preds'][:100], full[:100]) and not out['mask_preds'][100:].any()
    assert '_mask_forward' not in vars(model.roi_head)  # the method is the class's again
    with get_flops.mask_heads_on_first_rois(model, 0) as active:
        assert not active and '_mask_forward' not in vars(model.roi_head)
    model.roi_head = torch.nn.Module()  # e.g. StandardRoIHead: already counts 100 itself
    with get_flops.mask_heads_on_first_rois(model, 100) as active:
        assert not active


def test_get_flops_and_benchmark(tmp_path, data_dir):
    cfg_path = tiny_seg_config(str(tmp_path / 'seg_tiny.py'), osp.join(data_dir, 'ade', 'ADEChallengeData2016'))
    (res,) = get_flops.main([cfg_path, '--shape', '64', '64', '--json', str(tmp_path / 'flops.json')])
    assert 0 < res['backbone_params'] < res['params']
    assert 0 < res['backbone_flops'] < res['flops']
    with open(tmp_path / 'flops.json') as f:
        assert json.load(f)[0]['flops'] == res['flops']

    bench = benchmark_model.main([cfg_path, '--shape', '64', '64', '--warmup', '1', '--iters', '2',
                                  '--device', 'cpu'])
    assert bench['iters'] == 2 and bench['mean_ms'] > 0 and bench['images_per_s'] > 0
