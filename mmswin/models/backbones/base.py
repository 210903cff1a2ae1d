"""What both backbone families share: the output contract, frozen stages, pretrained loading and compiling.

A family subclasses :class:`PyramidBackbone`, sets the contract attributes in ``__init__`` and implements three
small methods; ``init_weights``, ``train`` and ``compile=True`` then behave the same in both families:

* ``_frozen_modules()`` -- the modules ``frozen_stages`` freezes (kept in eval mode, no gradient);
* ``_init_default_weights()`` -- the family's random initialisation;
* ``convert_checkpoint(state_dict)`` -- detect the layout of a backbone state dict and convert it (pure).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmswin.models.pretrained import load_pretrained, split_init_cfg

__all__ = ['PyramidBackbone', 'compile_in_place', 'pop_renamed_arguments']


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


def pop_renamed_arguments(owner: str, kwargs: dict[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    """Take old argument names out of ``kwargs``, warning once per name, and return them under their new names.

    Raises:
        TypeError: a name in ``kwargs`` is neither an old nor a current argument (as Python would).
    """
    unknown = sorted(set(kwargs) - set(renames))
    if unknown:
        raise TypeError(f'{owner} got unexpected keyword arguments {unknown}')
    new = {}
    for old, value in kwargs.items():
        warnings.warn(f'{owner}: the argument {old!r} is deprecated; use {renames[old]!r}', DeprecationWarning,
                      stacklevel=3)
        new[renames[old]] = value
    return new


class PyramidBackbone(BaseModule):
    """Base of the mmswin backbones: a tuple of NCHW maps for ``out_indices`` (see the subclasses).

    Attributes (set by the subclass):
        out_indices: the returned levels.
        out_channels: channels of each output, aligned with the returned tuple.
        out_strides: stride of each output w.r.t. the input, aligned with the returned tuple.
        feature_info: timm-style ``dict(num_chs, reduction, module)`` for every level (returned or not).
    """

    out_indices: tuple[int, ...]
    out_channels: tuple[int, ...]
    out_strides: tuple[int, ...]
    feature_info: list[dict[str, Any]]

    def __init__(self, init_cfg: dict | list | None = None) -> None:
        split_init_cfg(init_cfg)  # a malformed Pretrained entry fails at construction, not after the build
        super().__init__(init_cfg=init_cfg)

    # -- to implement ---------------------------------------------------------------------------------------------
    def _frozen_modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def _init_default_weights(self) -> None:
        raise NotImplementedError

    def convert_checkpoint(self, state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str, list[str]]:
        """Convert a backbone state dict of any supported layout to this model (pure).

        Returns:
            The converted state dict, the detected layout's name and the glob patterns of model keys the layout
            is documented not to carry.
        """
        raise NotImplementedError

    # -- shared behaviour -----------------------------------------------------------------------------------------
    def _frozen_parameters(self) -> Iterator[nn.Parameter]:
        for module in self._frozen_modules():
            yield from module.parameters()

    def _finish_init(self, compile: bool | Mapping[str, Any]) -> None:
        """End of a subclass ``__init__``: random weights, frozen parameters, optional compilation.

        Freezing at construction (not in ``train()``) is what keeps DDP with ``find_unused_parameters=False``
        working: the parameter set DDP registers never changes.
        """
        self._init_default_weights()
        for param in self._frozen_parameters():
            param.requires_grad_(False)
        self.train(self.training)
        compile_in_place(self, compile)

    def train(self, mode: bool = True) -> 'PyramidBackbone':
        """Set the mode, keeping the frozen parts (see ``frozen_stages``) in eval mode."""
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def load_pretrained(self, checkpoint: str | Mapping[str, Tensor], *, strict: bool = True,
                        prefix: str = 'backbone.', map_location: Any = 'cpu') -> None:
        """Load a checkpoint (path, URL or state dict) of any supported layout, as ``init_cfg`` Pretrained does."""
        load_pretrained(self, dict(checkpoint=checkpoint, strict=strict, prefix=prefix, map_location=map_location),
                        self.convert_checkpoint)

    def init_weights(self) -> None:
        """The family's random initialisation, then the other ``init_cfg`` entries (mmengine initialisers), then
        a ``dict(type='Pretrained', checkpoint=PATH_OR_URL, strict=True, prefix='backbone.', map_location='cpu')``
        entry through :func:`~mmswin.models.pretrained.load_pretrained`.

        Raises:
            ValueError: the file is not a checkpoint, or not of this family in a known layout.
            CheckpointMismatchError: (``strict``) a key is missing, unexpected or of the wrong shape.
        """
        pretrained, others = split_init_cfg(self.init_cfg)
        self._init_default_weights()
        if others:
            from mmengine.model import initialize
            initialize(self, others)
        if pretrained is not None:
            load_pretrained(self, pretrained, self.convert_checkpoint)
        self._is_init = True
