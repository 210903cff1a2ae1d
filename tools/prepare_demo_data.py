#!/usr/bin/env python
"""Prepare the demo data sets ``data/demo_ade`` (ADE20K layout) and ``data/demo_coco`` (COCO layout).

From the three annotated photos of the labelme 6.3.1 source distribution on PyPI, downloaded once (14 MB, sha256
checked, cached in ``$MMSWIN_CACHE``, default ``~/.cache/mmswin``); never committed. Details:
``mmswin/datasets/demo_data.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmswin.apis.errors import add_debug_argument, run_tool
from mmswin.datasets.demo_data import SDIST_NAME, PrepareError, prepare

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-root', default=str(ROOT / 'data'), help='parent folder (default: <repo>/data)')
    parser.add_argument('--sdist', help=f'use this local {SDIST_NAME} instead of downloading')
    parser.add_argument('--force', action='store_true', help='rebuild even when the stamp says done')
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    return run_tool(lambda _: prepare(args.data_root, args.sdist, args.force), [], extra_errors=(PrepareError,),
                    prog='prepare_demo_data')


if __name__ == '__main__':
    sys.exit(main())
