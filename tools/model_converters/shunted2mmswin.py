"""Convert an official Shunted Transformer ImageNet checkpoint into an mmswin backbone checkpoint.

mmswin keeps the official key names, so the conversion drops the classifier ``head.*`` and unwraps ``model`` /
``state_dict``; it then builds the matching ``mmswin.ShuntedTransformer`` and loads the result strictly, so a file
that would not load in training fails here, with every offending key named.

    python tools/model_converters/shunted2mmswin.py ckpt_S.pth shunted_s_mmswin.pth

The output holds ``{'state_dict': ..., 'meta': {'arch': ..., 'source': ...}}``; use it with
``init_cfg=dict(type='Pretrained', checkpoint='shunted_s_mmswin.pth')`` (the original file works there as well).
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys

import torch

from mmswin.apis.errors import add_debug_argument


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint (state dict, or one under "model" / "state_dict")')
    parser.add_argument('dst', help='where to write the mmswin checkpoint')
    add_debug_argument(parser)
    return parser.parse_args(argv)


def convert(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mmswin.models.backbones.shunted import (SHUNTED_ARCHS, ShuntedTransformer, convert_shunted_checkpoint,
                                                 infer_shunted_arch)
    from mmswin.models.pretrained import read_state_dict

    state = convert_shunted_checkpoint(read_state_dict(args.src), source=repr(args.src))
    arch = infer_shunted_arch(state)
    name = next((n for n, s in SHUNTED_ARCHS.items()
                 if len(n) > 1 and s['depths'] == arch['depths'] and s['num_conv'] == arch['num_conv']), None)
    model = ShuntedTransformer(arch=name or dict(arch))
    model.load_pretrained(state, strict=True)  # names every key that does not fit
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': state, 'meta': dict(arch=name or dict(arch), source=os.path.basename(args.src))},
               args.dst)
    numel = sum(v.numel() for v in state.values())
    print(f'{args.src} -> {args.dst}: Shunted {name or arch}, {len(state)} tensors, {numel:,} values '
          f'(classifier dropped), strict load OK')
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command: a file that cannot be converted gives its message and exit status 1 (``--debug``: traceback)."""
    from mmswin.apis.errors import run_tool
    return run_tool(convert, argv, extra_errors=(ValueError, OSError, pickle.UnpicklingError), prog='shunted2mmswin')


if __name__ == '__main__':
    sys.exit(main())
