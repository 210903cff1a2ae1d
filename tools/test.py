"""Evaluate a trained detector (mmdet) or segmentor (mmseg) from an mmswin config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE_OR_DIR] [--show-dir DIR] [--tta] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

``--out``: detection dumps the raw predictions to a ``.pkl`` file (mmdet's convention); segmentation writes the
predicted label maps as PNG files into that directory (mmseg's convention). ``--show-dir`` saves painted
predictions. ``--amp``: the backbone, neck and dense heads run in bfloat16 autocast (float16 on GPUs without
bfloat16), box decoding, NMS, RoI heads, post-processing and the metrics in float32; refused on CPUs without native
bfloat16. Distributed: ``tools/dist_test.sh CONFIG CHECKPOINT GPUS``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, ConfigDict, DictAction

from mmswin.apis import (ConfigError, ToolError, add_debug_argument, check_annotation_files, drop_pretrained_init,
                         find_missing_data, inference_dtype, load_model_checkpoint, load_tool_config,
                         missing_data_message, prepare_distributed, training_device_type)
from mmswin.apis.errors import run_tool
from mmswin.datasets.checks import DataCheckError
from mmswin.datasets.wrappers import leaf_dataset_cfgs
from mmswin.utils.checkpoint_io import CheckpointNotFoundError
from mmswin.engine import enable_safeguards, mixed_precision, setup_runtime


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) an mmswin detector or segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', type=str,
                        help='detection: dump predictions to this .pkl file; segmentation: write predicted '
                        'label maps (PNG) into this directory')
    parser.add_argument('--show', action='store_true', help='show prediction results in a window')
    parser.add_argument('--show-dir', help='save painted predictions into this directory')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of --show (s)')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (segmentation: multi-scale + flip; detection: flip)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: bfloat16 autocast of the backbone, neck and dense heads (float16 on '
                        'GPUs without bfloat16); box decoding, NMS, RoI heads, post-processing and metrics in '
                        'float32. Refused on CPUs without native bfloat16 (AMX-BF16, AVX512-BF16, ARM BF16)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs; lists as key="[a,b]" (no white space)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--no-data-check', action='store_true',
                        help='skip the check that the test data set paths of the config exist')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _enable_visualization(cfg: Config, args: argparse.Namespace, scope: str) -> None:
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise ConfigError('--show / --show-dir need default_hooks.visualization in the config (the stock '
                          'mmdet / mmseg runtime bases define it)')
    hook = hooks['visualization']
    hook['draw'] = True
    # Every image: mmseg's SegVisualizationHook draws every 50th test image by default (interval=50), so a test
    # set under 50 images gave no picture at all; mmdet's hook draws every test image already.
    hook['interval'] = 1
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if scope == 'mmdet':
            # absolute: mmdet 3.3's DetVisualizationHook joins a relative test_out_dir onto work_dir/TIMESTAMP
            # again at every iteration (each batch one level deeper)
            hook['test_out_dir'] = osp.abspath(args.show_dir)
        else:
            cfg.visualizer['save_dir'] = args.show_dir  # pictures in DIR/vis_data/vis_image/


def _setup_det_tta(cfg: Config) -> None:
    """mmdet's default flip test-time augmentation, used when the config defines none."""
    from copy import deepcopy
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(type='DetTTAModel',
                             tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        data, _ = next(leaf_dataset_cfgs(cfg.test_dataloader.dataset))
        cfg.tta_pipeline = deepcopy(data['pipeline'])
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                        [dict(type='PackDetInputs',
                              meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                         'flip_direction'))]])


def setup_cfg(args: argparse.Namespace) -> Config:
    cfg = enable_safeguards(load_tool_config(args.config, args.cfg_options, args.launcher, args.work_dir))
    scope = cfg.default_scope
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise CheckpointNotFoundError(f'checkpoint file not found: {args.checkpoint!r}')
    # loaded strictly by main() (load_model_checkpoint), not by the Runner's load_from, which loads whatever fits
    cfg.load_from = None
    # The checkpoint holds every weight: the backbone's ImageNet file is not needed (and may be absent).
    drop_pretrained_init(cfg)

    if args.show or args.show_dir:
        _enable_visualization(cfg, args, scope)

    if args.tta:
        if scope == 'mmdet':
            _setup_det_tta(cfg)
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ConfigError('--tta needs tta_model and tta_pipeline in the config (the mmseg configs inherit '
                              "them from mmseg's data set bases)")
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    if args.out is not None and scope == 'mmseg':
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    elif args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ToolError(f'--out must name a .pkl file for detection, got {args.out!r}')
    return cfg


def main(argv: list[str] | None = None) -> None:
    setup_runtime()
    args = parse_args(argv)
    device_type = training_device_type()  # where the Runner puts the model
    dtype = inference_dtype(device_type) if args.amp else None  # a CPU without bfloat16 stops here
    cfg = setup_cfg(args)
    if not args.no_data_check:
        missing = find_missing_data(cfg, ('test',))
        if missing:
            raise DataCheckError(missing_data_message(missing, args.config))
        check_annotation_files(cfg, ('test',))
    prepare_distributed(cfg)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None and cfg.default_scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    model = runner.model
    while isinstance(getattr(model, 'module', None), torch.nn.Module):  # DDP and test-time-augmentation wrappers
        model = model.module
    load_model_checkpoint(model, args.checkpoint)
    precision = mixed_precision(runner.model, device_type, dtype, log=True) if dtype else contextlib.nullcontext()
    with precision:
        runner.test()


if __name__ == '__main__':
    sys.exit(run_tool(main))
