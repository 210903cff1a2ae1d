#!/usr/bin/env python
"""Run a script with the bfloat16 numbers of a CPU that has bfloat16 matrix units, on a CPU that has none.

    python tools/analysis/emulate_bf16.py tools/run_demo.py --precision bf16 --pretrained none --work-dir DIR
    python tools/analysis/emulate_bf16.py tools/analysis/bf16_gradients.py configs/demo/upernet_swin_t_demo.py
    python tools/analysis/emulate_bf16.py tools/train.py CONFIG --amp

On a CPU without AVX512-BF16 / AMX-BF16, torch computes bfloat16 matrix products with a generic kernel that is far
slower than float32 (Swin-T training step, batch 2 at 256, one thread, AMD EPYC with AVX2: 23 s against 1.5 s),
so a bfloat16 training run takes many hours, and mmswin refuses ``--amp`` there. Under this script every matrix
product and convolution whose operands are bfloat16 (``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``addbmm``,
``convolution`` and its backward) is computed in float32 from those bfloat16 operands and its result rounded to
bfloat16: what oneDNN's AVX512-BF16 / AMX kernels compute (float32 accumulation), up to the order of summation.
Every other operation runs as it would, and mmswin's native-bfloat16 check answers yes (the log names the
emulation), so that ``--amp`` and ``--precision bf16`` run. Use it for numbers -- losses, gradient errors, mIoU --
never for times.

Checked by ``tests/test_amp_compile.py``: each emulated product (forward and convolution backward) equals torch's
generic bfloat16 kernel within one bfloat16 rounding and is no farther from float64. Measured once (2026-12-07) on
Swin-T, batch 2 at 96, one bf16 autocast training step: emulated and generic kernels are equally far from float32
(outputs 0.5-1.1 %, all gradients 7.2 % relative error) and 2 % from each other.
"""
from __future__ import annotations

import argparse
import runpy
import sys
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

aten = torch.ops.aten
EMULATED_OPS = frozenset({aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default,
                          aten.addbmm.default, aten.convolution.default, aten.convolution_backward.default})
EMULATION = 'emulated by tools/analysis/emulate_bf16.py: float32 products of bfloat16 operands'


def _is_bf16(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16


class Bf16ProductsInFloat32(TorchDispatchMode):
    """Computes the bfloat16 matrix products and convolutions in float32 and rounds their results to bfloat16.

    ``counts`` holds how many calls of each op were emulated.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in EMULATED_OPS or not any(_is_bf16(a) for a in args):
            return func(*args, **kwargs)
        name = str(func)
        self.counts[name] = self.counts.get(name, 0) + 1
        widen = lambda t: t.float() if _is_bf16(t) else t  # noqa: E731
        out = func(*tree_map(widen, args), **tree_map(widen, kwargs))
        return tree_map(lambda t: t.bfloat16() if isinstance(t, torch.Tensor) and t.dtype == torch.float32 else t,
                        out)


def claim_native_bf16() -> None:
    """Make mmswin's native-bfloat16 check answer yes, naming the emulation (it appears in the training log)."""
    import mmswin.engine.precision as precision
    precision.cpu_bf16_instructions = lambda: [EMULATION]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('script', help='the Python script to run, e.g. tools/run_demo.py')
    parser.add_argument('args', nargs=argparse.REMAINDER, help="the script's own arguments")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parsed = parse_args(argv)
    script, args = parsed.script, parsed.args
    claim_native_bf16()
    mode = Bf16ProductsInFloat32()
    saved_argv, sys.argv = sys.argv, [script, *args]
    code: Any = 0
    with mode:
        try:
            runpy.run_path(script, run_name='__main__')
        except SystemExit as exit_:
            code = exit_.code
        finally:
            sys.argv = saved_argv
    print(f'[emulate_bf16] emulated bfloat16 products: {mode.counts or "none"}')
    return code if isinstance(code, int) else (0 if code is None else 1)


if __name__ == '__main__':
    sys.exit(main())
