#!/usr/bin/env python
"""The main job, out of the box: prepare a small real data set, train, evaluate, write prediction overlays.

    python tools/run_demo.py --task seg   # UperNet + Swin-T, mIoU        (configs/demo/upernet_swin_t_demo.py)
    python tools/run_demo.py --task det   # Mask R-CNN + Swin-T, box / mask AP
                                          # (configs/demo/mask_rcnn_swin_t_fpn_demo.py)

Steps: (1) ``tools/prepare_demo_data.py`` (downloads the labelme 6.3.1 sdist once, ~14 MB, and converts its three
annotated PASCAL VOC photos into ``data/demo_ade`` / ``data/demo_coco``); (2) trains with mmengine's Runner (progress
and ETA in the log; checkpoints written atomically, a NaN / inf loss stops the run, every data file checked first);
(3) evaluates on the validation split (the same three photos) and prints the metric table; (4) writes one PNG per
photo, ground truth beside prediction under a title each (seg: the photo's mIoU and pixel accuracy; det: the
objects, and the predictions scoring above ``--score-thr``, default 0.7) and prints where they are.

The backbone starts from the official ImageNet-1K Swin-T weights (``--pretrained auto``, the default): downloaded
once into torch's checkpoint cache (``$TORCH_HOME/hub/checkpoints``), checked and loaded strictly, trained at the
recipe's fine-tuning learning rate. Where they cannot be had (no network, a refusing proxy, a truncated or corrupt
download, a file of another arch) one line says so and the demo trains from random weights at the higher learning
rate of its config, as it does with ``--pretrained none``; ``--pretrained PATH_OR_URL`` names the file (then a
failure stops the demo). About 10 minutes on 2 CPU cores each.

``--resume`` continues an interrupted run from its last complete checkpoint. ``--precision auto`` (the default) trains
in bfloat16 mixed precision where the machine runs bfloat16 natively (a CPU with AMX-BF16 / AVX512-BF16, a GPU with
bfloat16: ``tools/train.py --amp``), else in float32; ``--precision fp32`` forces float32 (``make demo
PRECISION=fp32``), ``--precision bf16`` insists on bfloat16. The printout says which.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time
from pathlib import Path
from typing import Any

from mmswin.datasets.demo_data import PrepareError, prepare

REPO_ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    'seg': REPO_ROOT / 'configs' / 'demo' / 'upernet_swin_t_demo.py',
    'det': REPO_ROOT / 'configs' / 'demo' / 'mask_rcnn_swin_t_fpn_demo.py',
}
# det overlays: the trained demo detector (random start, seed 0) scores 25 boxes above 0.3 on the 3 photos' 12 objects,
# 18 above 0.5 (partial duplicates of a bus at 0.56-0.84), 14 above 0.7
DET_SCORE_THR = 0.7
DATA_DIRS = {'seg': 'demo_ade', 'det': 'demo_coco'}
METRIC_KEYS = {'seg': ('mIoU', 'aAcc', 'mAcc'), 'det': ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP',
                                                        'coco/segm_mAP_50')}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--task', choices=['seg', 'det'], default='seg',
                        help='seg: UperNet + Swin-T (mIoU); det: Mask R-CNN + Swin-T (box / mask AP)')
    parser.add_argument('--config', help='another demo config (default: the one of --task)')
    parser.add_argument('--work-dir', help='default: work_dirs/demo_<task>')
    parser.add_argument('--data-root', default=str(REPO_ROOT / 'data'),
                        help='where demo_ade / demo_coco are (made if missing); default <repo>/data')
    parser.add_argument('--resume', action='store_true', help='continue from the last checkpoint in the work dir')
    parser.add_argument('--precision', choices=['auto', 'bf16', 'fp32'], default='auto',
                        help='auto (default): bfloat16 mixed precision where the CPU (AMX-BF16, AVX512-BF16) or GPU '
                        'runs it natively, else float32; bf16: bfloat16 or stop; fp32: float32')
    parser.add_argument('--pretrained', default='auto', metavar='auto|none|PATH|URL',
                        help='backbone start: auto (default) the official ImageNet-1K Swin-T file, downloaded once, '
                        'random weights if it cannot be had; none: random weights; a local file or an address')
    parser.add_argument('--score-thr', type=float, default=DET_SCORE_THR,
                        help=f'det overlays: paint predictions scoring above this (default {DET_SCORE_THR})')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='override config settings, e.g. train_cfg.max_iters=20')
    from mmswin.apis.errors import add_debug_argument
    add_debug_argument(parser)
    return parser.parse_args(argv)


def _point_at_data(cfg, data_dir: str, task: str) -> None:
    """Make the data paths absolute (the demo runs from any folder)."""
    root = data_dir.rstrip('/') + '/'
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader is not None:
            loader['dataset']['data_root'] = root
    if task == 'det':
        for name in ('val_evaluator', 'test_evaluator'):
            evaluator = cfg.get(name)
            if evaluator is not None and evaluator.get('ann_file'):
                evaluator['ann_file'] = osp.join(root, 'annotations', osp.basename(evaluator['ann_file']))


def build_cfg(args: argparse.Namespace, data_dir: str) -> tuple[Any, str, str]:
    """The demo config with ``--cfg-options``, the precision of ``--precision``, the safeguards and the data paths;
    one line saying which precision it trains in and one saying where the backbone starts."""
    from mmengine.config import DictAction

    from mmswin.apis import apply_precision, find_resume_checkpoint, load_tool_config
    from mmswin.engine import enable_safeguards

    options = None
    if args.cfg_options:
        action = DictAction(option_strings=['--cfg-options'], dest='cfg_options')
        namespace = argparse.Namespace()
        action(None, namespace, args.cfg_options)
        options = namespace.cfg_options
    work_dir = args.work_dir or str(REPO_ROOT / 'work_dirs' / f'demo_{args.task}')
    cfg = load_tool_config(str(args.config or CONFIGS[args.task]), options, 'none', work_dir)
    note = apply_precision(cfg, args.precision)
    enable_safeguards(cfg)
    start = start_weights(cfg, args.pretrained)
    _point_at_data(cfg, data_dir, args.task)
    if args.resume:
        cfg.resume = True
        cfg.load_from = find_resume_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
    return cfg, note, start


AUTO_PRETRAINED = 'swin_tiny_patch4_window7_224.pth'  # the file of the recipe the demo shrinks


def _checked_backbone_file(cfg, path: str) -> None:
    """Load ``path`` strictly into the config's backbone (built alone): raises if it is of another arch."""
    from mmswin.registry import MODELS
    backbone = MODELS.build(dict(cfg.model.backbone, init_cfg=None))
    backbone.load_pretrained(path)


def start_weights(cfg, choice: str) -> str:
    """Point the config's backbone at the ``--pretrained`` choice; returns one line saying where it starts.

    ``auto``: the official Swin-T file, downloaded once (:func:`~mmswin.apis.downloads.download_checkpoint`),
    random weights if it cannot be had or does not fit; ``none``: random weights; a path or an address: that file,
    which must load. With ImageNet weights the learning rate becomes the recipe's ``finetune_lr`` (of the demo
    config).

    Raises:
        ToolError: an explicit file or address that cannot be had or does not fit the backbone.
    """
    from mmswin.apis import PRETRAINED_SOURCES, ToolError
    from mmswin.apis.downloads import DownloadError, download_checkpoint

    if choice == 'none':
        cfg.model.backbone.init_cfg = None
        return 'weights: random initialisation (--pretrained none)'
    source = PRETRAINED_SOURCES[AUTO_PRETRAINED] if choice == 'auto' else choice
    try:
        if '://' in source:
            local = REPO_ROOT / 'checkpoints' / AUTO_PRETRAINED
            path = str(local) if choice == 'auto' and local.is_file() else download_checkpoint(source)
        elif osp.isfile(source):
            path = source
        else:
            raise DownloadError(f'--pretrained {source}: no such file')
        _checked_backbone_file(cfg, path)
    except Exception as err:  # any failure of the automatic choice falls back; an explicit one stops
        if choice != 'auto':
            raise ToolError(f'--pretrained {choice}: {err}') from err
        cfg.model.backbone.init_cfg = None
        return (f'weights: RANDOM INITIALISATION - the ImageNet Swin-T weights could not be had ({err}); '
                'training from scratch, so the numbers below measure how well a from-scratch model fits 3 photos, '
                'not the recipe (--pretrained PATH to give the file)')
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=path)
    lr = cfg.get('finetune_lr')
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    return f'weights: ImageNet-1K Swin-T from {path} (strict load checked), fine-tuning learning rate {lr}'


def write_overlays(runner, out_dir: str, score_thr: float = DET_SCORE_THR) -> list[str]:
    """One PNG per validation image: ground truth beside prediction, titled (seg: the image's mIoU and pixel
    accuracy; det: the objects and the predictions scoring above ``score_thr``)."""
    import mmcv
    import torch

    from mmswin.apis.pictures import add_titles, build_painter, comparison_titles, paint

    dataloader = runner.val_dataloader
    painter = build_painter(runner.cfg.visualizer, dataloader.dataset.metainfo, f'mmswin_demo_{id(runner)}')
    model = runner.model
    ignore_index = getattr(getattr(model, 'decode_head', None), 'ignore_index', 255)
    model.eval()
    os.makedirs(out_dir, exist_ok=True)
    written = []
    with torch.no_grad():
        for data_batch in dataloader:
            for sample in model.test_step(data_batch):
                img = mmcv.imread(sample.img_path, channel_order='rgb')
                name = Path(sample.img_path).stem
                out_file = osp.join(out_dir, f'{name}.png')
                picture = paint(painter, img, sample, draw_gt=True, score_thr=score_thr)
                titles = comparison_titles(sample, name, score_thr, ignore_index)
                mmcv.imwrite(mmcv.rgb2bgr(add_titles(picture, titles)), out_file)
                written.append(out_file)
    return written


def _metrics_catcher():
    """An mmengine hook keeping the metrics of the last validation in ``.metrics``."""
    from mmengine.hooks import Hook

    class MetricsCatcher(Hook):
        priority = 'LOWEST'

        def __init__(self) -> None:
            self.metrics: dict = {}

        def after_val_epoch(self, runner, metrics=None) -> None:
            self.metrics = dict(metrics or {})

    return MetricsCatcher()


def run(argv: list[str] | None = None, log=print) -> dict:
    """The whole demo; returns ``dict(metrics=..., overlays=[...], work_dir=..., checkpoint=..., log_dir=...)``."""
    args = parse_args(argv)
    started = time.time()
    outs = prepare(args.data_root, log=log)
    data_dir = str(outs['seg' if args.task == 'seg' else 'coco'])

    cfg, precision, start = build_cfg(args, data_dir)
    model_name = 'UperNet + Swin-T' if args.task == 'seg' else 'Mask R-CNN + FPN + Swin-T'
    log('=' * 100)
    log(f'mmswin demo ({args.task}): {model_name}, config {args.config or CONFIGS[args.task]}')
    log(f'data: {data_dir} (3 PASCAL VOC 2011 photos from the labelme 6.3.1 sdist; training set = validation set)')
    log(start)
    log(precision)
    log(f'work dir: {cfg.work_dir}')
    log('=' * 100)

    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    catcher = _metrics_catcher()
    runner.register_hook(catcher)
    runner.train()
    metrics = dict(catcher.metrics)
    if not metrics:  # resumed a finished run: evaluate once more
        metrics = runner.val_loop.run()
    overlay_dir = osp.join(cfg.work_dir, 'overlays')
    overlays = write_overlays(runner, overlay_dir, args.score_thr)
    last = runner.message_hub.get_info('last_ckpt')

    keys = [k for k in METRIC_KEYS[args.task] if k in metrics]
    log('=' * 100)
    init = 'random init' if cfg.model.backbone.init_cfg is None else 'ImageNet init'
    log(f'demo finished in {time.time() - started:.0f} s. Validation (the 3 training photos, {init}): '
        + ', '.join(f'{k}={metrics[k]}' for k in keys))
    shown = ('ground truth beside prediction, titled with each image\'s mIoU and pixel accuracy' if args.task == 'seg'
             else f'ground truth beside the predictions scoring above {args.score_thr:g} (--score-thr)')
    log(f'prediction overlays ({len(overlays)} PNG files, {shown}): {overlay_dir}')
    for path in overlays:
        log(f'  {path}')
    log(f'last checkpoint: {last}')
    log(f'logs: {runner.log_dir}')
    log('=' * 100)
    return dict(metrics=metrics, overlays=overlays, work_dir=cfg.work_dir, checkpoint=last, log_dir=runner.log_dir,
                start=start)


def main(argv: list[str] | None = None) -> int:
    from mmswin.apis.errors import run_tool
    from mmswin.engine import setup_runtime
    setup_runtime()
    return run_tool(run, argv, extra_errors=(PrepareError,), prog='run_demo')


if __name__ == '__main__':
    sys.exit(main())
