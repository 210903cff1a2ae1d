#!/usr/bin/env python
"""Convert a labelme export into the ADE20K directory layout (mmseg) and / or the COCO layout (mmdet).

Inputs: a folder of labelme json files, a ``labelme2voc.py`` export or a ``labelme2coco.py`` export. What is read
and written, the class list and the splits: ``mmswin/datasets/labelme.py``.

Example::

    python tools/dataset_converters/labelme2mmswin.py my_labelme_dir --labels labels.txt \
        --seg-out data/my_ade --coco-out data/my_coco --val-ratio 0.1
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mmswin.apis.errors import add_debug_argument, run_tool
from mmswin.datasets.labelme import convert


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='labelme json folder, labelme2voc export or labelme2coco export')
    parser.add_argument('--seg-out', help='write the ADE20K layout (mmseg) here')
    parser.add_argument('--coco-out', help='write the COCO layout (mmdet) here')
    parser.add_argument('--labels', help="labelme labels.txt (class order); default: 'background' + sorted labels")
    parser.add_argument('--input-format', default='auto', choices=['auto', 'labelme', 'voc', 'coco'])
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--val-ratio', type=float, default=0.2, help='share of images for validation (default 0.2)')
    group.add_argument('--val-images', help='comma-separated image stems for validation')
    group.add_argument('--val-equals-train', action='store_true', help='every image in both splits')
    parser.add_argument('--overwrite', action='store_true', help='replace non-empty output folders')
    add_debug_argument(parser)
    return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = convert(args.input, seg_out=args.seg_out, coco_out=args.coco_out, labels=args.labels,
                     input_format=args.input_format, val_ratio=args.val_ratio,
                     val_images=args.val_images.split(',') if args.val_images else None,
                     val_equals_train=args.val_equals_train, overwrite=args.overwrite)
    for kind, classes in result.items():
        out = args.seg_out if kind == 'seg' else args.coco_out
        print(f'{kind}: wrote {out} ({len(classes)} classes: {", ".join(classes)})')


def main(argv: Sequence[str] | None = None) -> int:
    """The command: a conversion error gives its message and exit status 1 (``--debug``: the traceback)."""
    return run_tool(run, argv, prog='labelme2mmswin')


if __name__ == '__main__':
    sys.exit(main())
