"""What both backbone families share: compiling the backbone alone (``compile=True``)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

__all__ = ['compile_in_place']


def compile_in_place(module: nn.Module, compile: bool | Mapping[str, Any]) -> None:
    """``compile=True`` (or a dict of ``torch.compile`` options): compile ``module`` in place.

    Uses ``nn.Module.compile``: parameter names and state dicts are unchanged (no ``_orig_mod.`` prefix), and only
    this module runs as a compiled graph, so a detector's data-dependent heads stay eager. New input sizes are
    handled by torch's automatic dynamic shapes: the second size compiles a shape-generic graph that later sizes
    reuse. Compiling the whole model instead is the Runner's ``compile=True`` (``tools/train.py --compile``).

    Raises:
        ValueError: ``compile`` is neither a bool nor a mapping.
    """
    if isinstance(compile, bool):
        if compile:
            module.compile()
        return
    if not isinstance(compile, Mapping):
        raise ValueError(f'compile must be True, False or a dict of torch.compile options, got {compile!r}')
    module.compile(**dict(compile))
