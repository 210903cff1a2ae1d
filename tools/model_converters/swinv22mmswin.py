#!/usr/bin/env python
"""Convert a Swin Transformer V2 checkpoint of any known layout into mmswin's.

Reads the official Microsoft release (``swinv2_*.pth``), timm ``swinv2_*`` files, mmpretrain's
``SwinTransformerV2`` and mmswin files (detector / segmentor checkpoints too: ``backbone.`` prefix); detects the
layout; writes ``{'state_dict': backbone keys, 'meta': {...}}`` in mmswin's layout (``stages.*``, the merging at the
end of each stage in the official channel order, the final ImageNet ``norm`` as ``norm3``; heads, coordinate
tables, index buffers and attention masks dropped: the backbone recomputes them for its window). The file is read
with ``weights_only=True`` (see ``mmswin.utils.checkpoint_io``).

Example::

    python tools/model_converters/swinv22mmswin.py swinv2_tiny_patch4_window16_256.pth checkpoints/swinv2-t_mmswin.pth

The window the weights were trained with is not stored in the file: set ``pretrained_window_size`` on the backbone
when it is fine-tuned at another window.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from mmswin.apis.errors import add_debug_argument


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='checkpoint to convert (official, timm, mmpretrain or mmswin)')
    parser.add_argument('dst', help='where to write the mmswin checkpoint')
    parser.add_argument('--layout', choices=['official', 'timm', 'mmpretrain', 'mmswin'],
                        help='skip detection and read SRC as this layout')
    add_debug_argument(parser)
    return parser.parse_args(argv)


def convert(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mmswin.models.backbones.swin_v2 import SWIN_V2_LAYOUTS, convert_swin_v2_state_dict, detect_swin_v2_layout
    from mmswin.models.pretrained import read_state_dict

    state = read_state_dict(args.src)
    layout = args.layout or detect_swin_v2_layout(state)
    converted = convert_swin_v2_state_dict(state, layout)
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    meta = dict(layout='mmswin', converted_from=layout, source=os.path.basename(args.src))
    torch.save(dict(state_dict=converted, meta=meta), args.dst)
    dropped = len(state) - len(converted)
    print(f'{args.src}: {SWIN_V2_LAYOUTS[layout]}\n  -> {args.dst}: {len(converted)} tensors in mmswin layout'
          f' ({dropped} head / derived tensors dropped)')
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command: a file that cannot be converted gives its message and exit status 1 (``--debug``: traceback)."""
    from mmswin.apis.errors import run_tool
    return run_tool(convert, argv, extra_errors=(ValueError, OSError), prog='swinv22mmswin')


if __name__ == '__main__':
    sys.exit(main())
