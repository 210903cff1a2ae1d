"""Train a detector (mmdet) or segmentor (mmseg) from an mmswin config.

    python tools/train.py configs/upernet_swin_t_ade20k.py [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--compile] [--auto-scale-lr] [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

The task follows from the config's ``default_scope`` (``mmdet`` or ``mmseg``). Before the Runner is built, a
missing data set or pretrained file stops the run with a short message saying what to do, and distributed runs on
machines without CUDA switch to a gloo process group. Distributed: ``tools/dist_train.sh CONFIG GPUS``.
"""
from __future__ import annotations

import argparse
import os
import sys

from mmengine.config import Config, DictAction

from mmswin.apis import (ConfigError, add_debug_argument, check_annotation_files, drop_pretrained_init, enable_amp,
                         find_missing_data, find_missing_pretrained, find_resume_checkpoint, load_tool_config,
                         missing_data_message, missing_pretrained_message, prepare_distributed)
from mmswin.apis.errors import run_tool
from mmswin.datasets.checks import DataCheckError
from mmswin.utils.checkpoint_io import CheckpointNotFoundError
from mmswin.engine import enable_compile, enable_safeguards, setup_runtime


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an mmswin detector or segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models (default: work_dirs/CONFIG_NAME)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision. GPU: mmengine\'s AmpOptimWrapper, bfloat16 where the GPU supports it, '
                        'else float16 with dynamic loss scaling; global pooling branches (UperNet\'s pyramid pooling) '
                        'in float32. CPU with native bfloat16 (AMX-BF16, AVX512-BF16, '
                        'ARM BF16): bfloat16 autocast of the backbone, neck and dense heads, the rest in float32, no '
                        'loss scaling (Bf16OptimWrapper); other CPUs are refused (emulated bfloat16 is slower than '
                        'float32)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile, for training, the dense parts of the model in place: backbone, neck, '
                        'UperNet decode and auxiliary heads, RPN head, one-stage detector heads (CompileHook). '
                        'Losses, box decoding, NMS, RoI heads, the optimizer step and evaluation stay eager '
                        "(data-dependent shapes; mmengine's compile of the whole train_step fails on the optimizer "
                        "step). A config's compile=True / dict of torch.compile options means the same; options "
                        'e.g. --cfg-options compile.mode=max-autotune. The first step compiles (minutes on a CPU, '
                        'for little gain on small models there); checkpoints are unchanged')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by (total batch size / auto_scale_lr.base_batch_size)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, resume from the latest checkpoint in the work dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs, e.g. model.backbone.init_cfg=None '
        'train_dataloader.batch_size=4; lists as key="[a,b]" (no white space)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--no-data-check', action='store_true',
                        help='skip the check that the data set paths of the config exist')
    # torch.distributed.launch passes --local-rank (torchrun sets LOCAL_RANK instead)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def setup_cfg(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line options, as mmdet's / mmseg's train.py do, then turn on the
    safeguards (atomic checkpoints, non-finite loss handling, data file checks) also for configs that lack them, and
    compile the dense parts for ``--compile`` or a config's ``compile`` (``CompileHook``)."""
    cfg = load_tool_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ConfigError('--auto-scale-lr needs auto_scale_lr = dict(enable=False, base_batch_size=N) '
                              'in the config')
        cfg.auto_scale_lr.enable = True
    # resume: an explicit checkpoint > the latest complete one in work_dir
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = find_resume_checkpoint(cfg.work_dir) if os.path.isdir(cfg.work_dir) else None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    enable_safeguards(cfg)
    if args.compile or cfg.get('compile', False):
        enable_compile(cfg)
    return cfg


def check_inputs(cfg: Config, args: argparse.Namespace) -> None:
    """Stop with a readable message when the data or the pretrained backbone file is not there."""
    if not args.no_data_check:
        splits = ('train', 'val') if cfg.get('val_cfg') and cfg.get('val_dataloader') else ('train',)
        missing = find_missing_data(cfg, splits)
        if missing:
            raise DataCheckError(missing_data_message(missing, args.config))
        check_annotation_files(cfg, splits)
    if find_missing_pretrained(cfg):
        will_load = cfg.get('load_from')
        if will_load:
            # The checkpoint loaded after initialisation replaces the backbone weights anyway.
            for key in drop_pretrained_init(cfg):
                print(f'{key[:-len(".checkpoint")]} set to None: the file does not exist and the weights come '
                      f'from {will_load}', file=sys.stderr)
        else:
            raise CheckpointNotFoundError(missing_pretrained_message(find_missing_pretrained(cfg)))


def main(argv: list[str] | None = None) -> None:
    setup_runtime()
    args = parse_args(argv)
    cfg = setup_cfg(args)
    check_inputs(cfg, args)
    prepare_distributed(cfg)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    sys.exit(run_tool(main))
