"""Inference speed of the whole model a config builds (detector or segmentor, post-processing included).

    python tools/analysis/benchmark_model.py CONFIG [--checkpoint CKPT] [--shape H W] [--batch-size N]
        [--warmup 5] [--iters 20] [--device cuda] [--amp] [--cfg-options k=v ...] [--json FILE]

Runs ``model.test_step`` (data pre-processor, backbone, neck, heads, post-processing: NMS and mask pasting for
Mask R-CNN, resizing the logits for UperNet) on random images of a fixed size, after ``--warmup`` untimed
iterations, and reports the mean / median time per iteration, images per second and peak GPU memory. Without
``--checkpoint`` the weights are random: fine for speed, except that a random detector's proposal count (and so its
RoI-head time) can differ from a trained one's. Image decoding and resizing of the data pipeline are not timed.
For backbone-only speed see tools/analysis/benchmark_backbones.py.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch
from mmengine.config import DictAction

from mmswin.apis import DEFAULT_SHAPES, build_model, dummy_batch, load_config
from mmswin.apis.errors import add_debug_argument, run_tool
from mmswin.engine import setup_runtime


def benchmark(model: torch.nn.Module, batch: dict[str, Any], warmup: int, iters: int,
              amp: bool = False) -> dict[str, Any]:
    device = next(model.parameters()).device
    cuda = device.type == 'cuda'
    times = []
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad(), torch.autocast(device.type, enabled=amp):
        for i in range(warmup + iters):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model.test_step(batch)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    n = len(batch['inputs'])
    mean = statistics.mean(times)
    return dict(
        iters=iters, batch_size=n, mean_ms=1000 * mean, median_ms=1000 * statistics.median(times),
        images_per_s=n / mean,
        peak_memory_mb=(torch.cuda.max_memory_allocated(device) / 2**20) if cuda else None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Inference speed of the model of an mmswin config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='trained weights (default: random weights)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='image height and width (default: 800 1280 for detection, 512 512 for segmentation)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--warmup', type=int, default=5, help='untimed iterations first')
    parser.add_argument('--iters', type=int, default=20, help='timed iterations')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', action='store_true', help='run under torch.autocast (float16 on CUDA)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--json', help='also write the result to this JSON file')
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error('--iters and --batch-size must be >= 1, --warmup >= 0')
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    setup_runtime()
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, drop_pretrained=True)
    height, width = args.shape or DEFAULT_SHAPES[cfg.default_scope]
    model = build_model(cfg, args.device)
    if args.checkpoint:
        from mmswin.apis import load_model_checkpoint
        load_model_checkpoint(model, args.checkpoint)
        model.to(args.device)
    batch = dummy_batch(cfg.default_scope, height, width, args.batch_size)
    res = dict(config=args.config, device=str(args.device), input_shape=[height, width], amp=args.amp,
               **benchmark(model, batch, args.warmup, args.iters, args.amp))
    mem = f', peak memory {res["peak_memory_mb"]:.0f} MiB' if res['peak_memory_mb'] is not None else ''
    print(f'{args.config} on {res["device"]}, {height}x{width}, batch {args.batch_size}: '
          f'{res["mean_ms"]:.1f} ms / iteration (median {res["median_ms"]:.1f}), '
          f'{res["images_per_s"]:.2f} images/s{mem}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    sys.exit(run_tool(main))
