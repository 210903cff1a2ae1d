"""Parameters and FLOPs of the model a config builds, at a fixed input size (mmengine.analysis).

    python tools/analysis/get_flops.py CONFIG [CONFIG ...] [--shape H W] [--cfg-options k=v ...] [--json FILE]

Default input: 800x1280 (H x W) for detection configs, 512x512 for segmentation configs -- the sizes the Swin
papers report. The model runs in ``tensor`` mode on one random image (weights random: the pretrained file is not
needed). FLOPs follow the fvcore / mmengine convention (one fused multiply-add = 1 FLOP), as the papers report.
Counted per part: the backbone, and the whole model. For Mask R-CNN the whole-model figure includes the RoI heads
on the RPN's proposals (up to 1000 boxes, the mask head on the first 100), as mmdet's own get_flops does; with
random weights the proposal count after NMS may fall below 1000, so the backbone figure is the stable one.
Cascade Mask R-CNN is counted the same way (box heads of the three stages on every proposal, mask heads of the
three stages on the first 100), as mmdet 2.x's ``forward_dummy`` counted the published Swin figures; mmdet 3.3's
``CascadeRoIHead.forward`` runs the mask heads on all proposals instead (``--mask-rois 0`` counts that: about
1430 G more at 800x1280, whatever the backbone).
``scaled_dot_product_attention`` is counted (mmengine has no handle for it) as its two matrix products.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from mmengine.config import Config, DictAction

from mmswin.apis import DEFAULT_SHAPES, build_model, dummy_inputs, load_config
from mmswin.apis.errors import add_debug_argument, run_tool
from mmswin.engine import setup_runtime


def _sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """FLOPs of ``scaled_dot_product_attention(q, k, v)``: q @ k^T plus attn @ v (multiply-adds)."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= d
    return batch * q[-2] * k[-2] * q[-1] + batch * q[-2] * k[-2] * v[-1]


class _TensorMode(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, data_samples: list) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor) -> Any:
        return self.model(inputs, self.data_samples, mode='tensor')


@contextmanager
def mask_heads_on_first_rois(model: torch.nn.Module, num_rois: int) -> Iterator[bool]:
    """While active, a ``CascadeRoIHead``'s mask heads compute only the first ``num_rois`` RoIs (the rest of
    their output is zeros, which count no FLOPs), as ``StandardRoIHead.forward`` does with 100 in tensor mode.
    Yields whether the model has such a head; ``num_rois <= 0`` changes nothing."""
    roi_head = getattr(model, 'roi_head', None)
    if num_rois <= 0 or roi_head is None or type(roi_head).__name__ != 'CascadeRoIHead':
        yield False
        return
    mask_forward = roi_head._mask_forward

    def first_rois(stage: int, x: tuple, rois: torch.Tensor) -> dict:
        out = mask_forward(stage, x, rois[:num_rois])
        preds = out['mask_preds']
        rest = preds.new_zeros((rois.shape[0] - preds.shape[0], *preds.shape[1:]))
        return dict(out, mask_preds=torch.cat([preds, rest]))

    roi_head._mask_forward = first_rois  # an instance attribute: the class stays untouched
    try:
        yield True
    finally:
        del roi_head._mask_forward


def count(module: torch.nn.Module, inputs: tuple) -> int:
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analyzer.total())


def complexity(cfg: Config, height: int, width: int, mask_rois: int = 100) -> dict[str, Any]:
    """Params and FLOPs of the backbone and of the whole model of ``cfg`` at ``height x width`` (a cascade's
    mask heads on the first ``mask_rois`` proposals; 0: on all of them)."""
    from mmengine.analysis import parameter_count
    model = build_model(cfg)
    inputs, samples = dummy_inputs(cfg.default_scope, height, width)
    params = parameter_count(model)
    with torch.no_grad():
        backbone_flops = count(model.backbone, (inputs,))
        with mask_heads_on_first_rois(model, mask_rois):
            model_flops = count(_TensorMode(model, samples), (inputs,))
    return dict(
        input_shape=[height, width],
        params=params[''], backbone_params=params['backbone'],
        flops=model_flops, backbone_flops=backbone_flops)


def _fmt(n: float, unit: str) -> str:
    return f'{n / 1e9:.1f} G' if unit == 'G' else f'{n / 1e6:.2f} M'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Params and FLOPs of the models of mmswin configs')
    parser.add_argument('configs', nargs='+', help='config file(s)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: 800 1280 for detection, 512 512 for segmentation)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--mask-rois', type=int, default=100,
                        help='Cascade Mask R-CNN: run the mask heads on this many proposals, as the published '
                             'figures count (default 100; 0: all, as mmdet 3.3\'s tensor mode)')
    parser.add_argument('--json', help='also write the results to this JSON file (a list, one entry per config)')
    add_debug_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    setup_runtime()
    args = parse_args(argv)
    results = []
    for path in args.configs:
        cfg = load_config(path, args.cfg_options, drop_pretrained=True)  # random weights are fine for counting
        height, width = args.shape or DEFAULT_SHAPES[cfg.default_scope]
        res = dict(config=path, **complexity(cfg, height, width, args.mask_rois))
        results.append(res)
        print(f'{path}: input {height}x{width} | params {_fmt(res["params"], "M")} '
              f'(backbone {_fmt(res["backbone_params"], "M")}) | FLOPs {_fmt(res["flops"], "G")} '
              f'(backbone {_fmt(res["backbone_flops"], "G")})', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    sys.exit(run_tool(main))
