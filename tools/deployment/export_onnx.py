"""Export an mmswin backbone, or a whole UperNet segmentor in predict mode, to ONNX with dynamic batch, height and
width; optionally also save a ``torch.export`` program (``.pt2``) of it, and check both against PyTorch.

Usage::

    # a backbone by name (random weights unless --checkpoint), ONNX + .pt2, both checked at three sizes
    python tools/deployment/export_onnx.py --backbone swin --arch tiny -o work_dirs/export/swin_t.onnx \\
        --torch-export work_dirs/export/swin_t.pt2 --verify
    # the backbone of a config (its init_cfg is dropped; weights from a backbone, ImageNet, detector or
    # segmentor checkpoint of any layout the backbone's loader knows)
    python tools/deployment/export_onnx.py configs/mask_rcnn_swin_t_fpn_1x_coco.py --part backbone \\
        --checkpoint CKPT.pth --verify
    # a whole segmentor: normalised images (B, 3, H, W) -> class map (B, H, W) int64 and logits (B, C, H, W)
    python tools/deployment/export_onnx.py configs/upernet_swin_t_ade20k.py --checkpoint SEG.pth \\
        -o work_dirs/export/upernet_swin_t.onnx --verify

The export itself, its limits (the exportable minimum side, what is not exported) and measured figures:
``mmswin/apis/export.py``; this file is the command line.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os.path as osp
import re
import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mmswin.apis.errors import add_debug_argument, run_tool
from mmswin.apis.export import (DEFAULT_MAX_SIDE, ONNX_SAMPLE_BATCH, ExportError, SegmentorPredictor,
                                backbone_families, backbone_family, backbone_from_config, build_backbone, check_side,
                                default_verify_sizes, export_onnx, export_pt2, format_table, load_backbone_weights,
                                load_config, min_export_side, reference_outputs, replace_adaptive_pools, resolve_part,
                                segmentor_from_config, verify_onnx, verify_pt2)


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------
def _parse_arch(text: str) -> str | dict[str, Any]:
    text = text.strip()
    if text.startswith(('{', 'dict(')):
        try:
            if text.startswith('dict('):
                tree = ast.parse(text, mode='eval').body
                if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == 'dict'
                        and not tree.args):
                    raise ValueError(text)
                return {kw.arg: ast.literal_eval(kw.value) for kw in tree.keywords}
            return dict(ast.literal_eval(text))
        except (ValueError, SyntaxError) as exc:
            raise argparse.ArgumentTypeError(f'--arch {text!r} is neither a name nor a dict literal') from exc
    return text


def _parse_size(text: str) -> tuple[int, int, int]:
    m = re.fullmatch(r'(?:(\d+)[:@])?(\d+)[xX](\d+)', text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f'size {text!r}: expected HxW or BATCH:HxW, e.g. 257x321 or 2:417x333')
    return int(m.group(1) or 1), int(m.group(2)), int(m.group(3))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Export an mmswin backbone or UperNet segmentor to ONNX (dynamic batch / height / width), '
                    'optionally also as a torch.export .pt2 program, and check them against PyTorch.')
    parser.add_argument('config', nargs='?', help='an mmswin config (its model.backbone, or the whole segmentor)')
    parser.add_argument('--backbone', help=f'export a backbone by family name instead of a config: '
                                           f'{", ".join(backbone_families())}')
    parser.add_argument('--arch', type=_parse_arch, default='tiny',
                        help="with --backbone: a preset name (tiny, small, base, ...) or a dict literal, e.g. "
                             "\"dict(embed_dims=16, depths=(2,2,2,2), num_heads=(1,2,2,4))\" (default: tiny)")
    parser.add_argument('--backbone-options', nargs='+', action=DictAction, default={},
                        help='with --backbone: more constructor arguments, e.g. window_size=12 out_indices=[0,1,2]')
    parser.add_argument('--part', choices=('auto', 'backbone', 'segmentor'), default='auto',
                        help='with a config: export its backbone or the whole segmentor (auto: the segmentor for '
                             'mmseg configs; detectors need --part backbone)')
    parser.add_argument('--checkpoint', help='weights: a segmentor checkpoint for --part segmentor; any checkpoint '
                                             'holding the backbone otherwise (default: random weights)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('-o', '--out', help='the ONNX file (default: work_dirs/export/<name>.onnx)')
    parser.add_argument('--skip-onnx', action='store_true', help='no ONNX file (e.g. only --torch-export)')
    parser.add_argument('--torch-export', metavar='PATH.pt2', help='also save a torch.export program (dynamic H/W)')
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                        help='the sample size traced (default: the exportable minimum rounded up to 32, at least '
                             '256, by that + 64); sides below the exportable minimum are refused')
    parser.add_argument('--min-size', type=int, help='lower end of the dynamic height / width range '
                                                     '(default and smallest allowed: the exportable minimum)')
    parser.add_argument('--max-size', type=int, default=DEFAULT_MAX_SIDE, help='upper end of that range')
    parser.add_argument('--batch', type=int, default=1, help='the fixed batch of the --torch-export program')
    parser.add_argument('--opset', type=int, help='ONNX opset (default: the exporter\'s)')
    parser.add_argument('--verify', action='store_true', help='compare the exported files with PyTorch')
    parser.add_argument('--verify-sizes', nargs='+', type=_parse_size, metavar='[B:]HxW',
                        help='sizes for --verify (default: three, odd ones included, e.g. 256x320 257x321 2:417x333)')
    parser.add_argument('--atol', type=float, default=1e-4, help='largest absolute difference --verify accepts')
    parser.add_argument('--seed', type=int, default=0, help='seed of random weights and inputs')
    add_debug_argument(parser)
    return parser.parse_args(argv)


def _default_out(args: argparse.Namespace, part: str) -> str:
    if args.config:
        stem = osp.splitext(osp.basename(args.config))[0] + ('' if part == 'segmentor' else '_backbone')
    else:
        stem = f'{args.backbone}_{args.arch if isinstance(args.arch, str) else "custom"}'
    return osp.join('work_dirs', 'export', stem + '.onnx')


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Do what ``args`` say; returns a summary (files, seconds, verification rows).

    Raises:
        ExportError: any reason the export cannot be done as asked.
    """
    torch.manual_seed(args.seed)
    if bool(args.config) == bool(args.backbone):
        raise ExportError('give either a CONFIG or --backbone {swin,shunted} (with --arch), not both / neither')
    segmentor = None
    if args.config:
        cfg = load_config(args.config, args.cfg_options)
        part = resolve_part(cfg, args.part)
        if part == 'segmentor':
            segmentor = segmentor_from_config(cfg, args.checkpoint)
            backbone = segmentor.backbone
        else:
            backbone = backbone_from_config(cfg, args.checkpoint)
    else:
        if args.part == 'segmentor':
            raise ExportError('--part segmentor needs a config')
        part = 'backbone'
        backbone = build_backbone(args.backbone, args.arch, **dict(args.backbone_options or {}))
        if args.checkpoint:
            load_backbone_weights(backbone, args.checkpoint, f'the {args.backbone} backbone')
    if not args.checkpoint:
        print('[export] no --checkpoint: exporting random weights')
    if args.skip_onnx and not args.torch_export:
        print('[export] note: --skip-onnx without --torch-export: nothing is written')

    minimum = min_export_side(backbone)
    min_side = minimum if args.min_size is None else args.min_size
    check_side(min_side, minimum, backbone, '--min-size')
    if args.shape:
        height, width = args.shape
    else:
        height = max(256, -(-min_side // 32) * 32)
        width = height + 64
    for side in (height, width):
        check_side(side, minimum, backbone, 'the sample input side')
    if max(height, width) > args.max_size:
        raise ExportError(f'the sample {height}x{width} exceeds --max-size {args.max_size}')
    sizes = args.verify_sizes or default_verify_sizes(min_side)
    for _, h, w in sizes:
        if min(h, w) < min_side or max(h, w) > args.max_size:
            print(f'[export] note: verify size {h}x{w} is outside the exported range [{min_side}, {args.max_size}]')

    summary: dict[str, Any] = dict(part=part, family=backbone_family(backbone), min_side=min_side,
                                   sample=(height, width), rows=[])
    print(f'[export] {part} ({type(backbone).__name__}); dynamic height / width in [{min_side}, {args.max_size}] '
          f'(exportable minimum {minimum}); sample {height}x{width}')
    module: nn.Module = SegmentorPredictor(segmentor) if segmentor is not None else backbone
    reference = reference_outputs(backbone, segmentor)
    output_names = ['seg', 'logits'] if segmentor is not None else \
        [f'level{i}' for i in backbone.out_indices]

    if not args.skip_onnx:
        onnx_module = module
        if segmentor is not None:
            onnx_module = SegmentorPredictor(copy.deepcopy(segmentor)).eval()
            replaced = replace_adaptive_pools(onnx_module)
            if replaced:
                print(f'[export] {replaced} nn.AdaptiveAvgPool2d replaced by pooling matrices for ONNX')
        path = args.out or _default_out(args, part)
        sample = torch.randn(ONNX_SAMPLE_BATCH, 3, height, width)
        info = export_onnx(onnx_module, path, sample, min_side, args.max_size, output_names, args.opset)
        summary['onnx'] = info
        print(f'[export] wrote {path} in {info["seconds"]:.1f} s (opset {info["opset"]}); inputs {info["inputs"]}; '
              f'outputs {info["outputs"]}')
        if args.verify:
            summary['rows'] += verify_onnx(path, reference, sizes, args.atol, segmentor is not None, args.seed)
    if args.torch_export:
        sample = torch.randn(args.batch, 3, height, width)
        info = export_pt2(module, args.torch_export, sample, min_side, args.max_size)
        summary['pt2'] = info
        print(f'[export] wrote {args.torch_export} in {info["seconds"]:.1f} s; batch fixed to {args.batch}; '
              f'ranges {info["range_constraints"]}')
        if args.verify:
            pt2_sizes = [(args.batch, h, w) for _, h, w in sizes]
            summary['rows'] += verify_pt2(args.torch_export, reference, pt2_sizes, args.atol, segmentor is not None,
                                          args.seed)
    if summary['rows']:
        print(format_table(summary['rows']))
    summary['ok'] = all(r['ok'] for r in summary['rows'])
    return summary


def export(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    summary = run(args)
    if not summary['ok']:
        print(f'export_onnx: verification failed: a difference above --atol {args.atol}', file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 on success; 1 when a verification fails, or with the reason for an impossible export (any
    user error; ``--debug`` shows its traceback)."""
    return run_tool(export, argv, extra_errors=(ExportError,), prog='export_onnx')


if __name__ == '__main__':
    sys.exit(main())
