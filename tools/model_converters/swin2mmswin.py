#!/usr/bin/env python
"""Convert a Swin Transformer checkpoint of any known layout into mmswin's.

Reads the official Microsoft release, timm, mmdet / mmseg detector or segmentor checkpoints (``backbone.`` prefix),
mmpretrain and mmswin files; detects the layout; writes ``{'state_dict': backbone keys, 'meta': {...}}`` in mmswin's
layout (mmdet's key names and ``nn.Unfold`` merging order, the final ImageNet ``norm`` as ``norm3``; heads,
``relative_position_index`` and ``attn_mask`` dropped). Neck and head weights of detector checkpoints are not
copied. The file is read with ``weights_only=True`` (see ``mmswin.utils.checkpoint_io``).

Example::

    python tools/model_converters/swin2mmswin.py swin_tiny_patch4_window7_224.pth checkpoints/swin-t_mmswin.pth

Window sizes and the absolute position embedding are left as they are: the backbone resizes them when it loads.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from mmswin.apis.errors import add_debug_argument


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='checkpoint to convert (official, timm, mmdet/mmseg, mmpretrain or mmswin)')
    parser.add_argument('dst', help='where to write the mmswin checkpoint')
    parser.add_argument('--layout', choices=['official', 'timm', 'mmdet', 'mmpretrain'],
                        help='skip detection and read SRC as this layout')
    add_debug_argument(parser)
    return parser.parse_args(argv)


def convert(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mmswin.models.backbones.swin import SWIN_LAYOUTS, convert_swin_state_dict, detect_swin_layout
    from mmswin.models.pretrained import read_state_dict

    state = read_state_dict(args.src)
    layout = args.layout or detect_swin_layout(state)
    converted = convert_swin_state_dict(state, layout)
    dst_dir = os.path.dirname(os.path.abspath(args.dst))
    os.makedirs(dst_dir, exist_ok=True)
    meta = dict(layout='mmswin', converted_from=layout, source=os.path.basename(args.src))
    torch.save(dict(state_dict=converted, meta=meta), args.dst)
    dropped = len(state) - len(converted)
    print(f'{args.src}: {SWIN_LAYOUTS[layout]}\n  -> {args.dst}: {len(converted)} tensors in mmswin layout'
          f' ({dropped} head / derived tensors dropped)')
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command: a file that cannot be converted gives its message and exit status 1 (``--debug``: traceback)."""
    from mmswin.apis.errors import run_tool
    return run_tool(convert, argv, extra_errors=(ValueError, OSError), prog='swin2mmswin')


if __name__ == '__main__':
    sys.exit(main())
