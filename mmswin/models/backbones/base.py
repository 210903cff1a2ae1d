"""The contract every backbone family implements, and what the families share.

A family (one file: ``swin.py``, ``shunted.py``) subclasses :class:`PyramidBackbone` with a class attribute
``family`` (its short name; the class is then listed in :data:`FAMILIES`, which tools and tests iterate), checks
its arguments with :func:`check_pyramid_arguments`, sets the attributes below in ``__init__``, ends it with
``self._finish_init(compile)``, and implements:

* ``_frozen_modules()`` -- the modules ``frozen_stages`` freezes (kept in eval mode, no gradient);
* ``_init_default_weights()`` -- the family's random initialisation;
* ``convert_checkpoint(state_dict)`` -- detect the layout of a backbone state dict and convert it (pure);
* ``describe_arch()`` -- the model's arch in words, for messages;
* ``exportable_side(side)`` and ``export_rule`` -- whether a square input of that side keeps every computed map
  above one token per side (``torch.export`` specialises size-1 dimensions), and why;
* ``min_input_size`` (class attribute) -- the smallest input side the forward accepts.

``init_weights``, ``train``, ``load_pretrained``, ``min_export_side``, ``compile=True`` and ``float32_residual=True``
(the family passes it to ``__init__`` and sends each stage's input tokens through :meth:`_residual_stream`) then
behave the same in every family. Deprecated argument names go through :func:`pop_renamed_arguments`.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmswin.models.pretrained import load_pretrained, split_init_cfg

__all__ = ['FAMILIES', 'PyramidBackbone', 'check_pyramid_arguments', 'compile_in_place', 'drop_path_rates',
           'init_linears_and_norms', 'pop_renamed_arguments', 'split_output_norms']

FAMILIES: dict[str, type[PyramidBackbone]] = {}  # family name -> class, filled by PyramidBackbone subclasses


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


def pop_renamed_arguments(owner: str, kwargs: dict[str, Any], renames: Mapping[str, str],
                          hint: str = '') -> dict[str, Any]:
    """Take deprecated argument names out of ``kwargs`` with one warning, and return them under their new names.

    Args:
        owner: the class name, for messages.
        kwargs: the ``**kwargs`` of ``__init__``: every key must be a deprecated name.
        renames: deprecated name -> current name (or a description of what replaces it).
        hint: appended to the warning (e.g. how to write the new form).

    Raises:
        TypeError: a name in ``kwargs`` is neither a deprecated nor a current argument (as Python would).
    """
    unknown = sorted(set(kwargs) - set(renames))
    if unknown:
        raise TypeError(f'{owner} got unexpected keyword arguments {unknown}')
    if kwargs:
        pairs = ', '.join(f'{old!r} -> {renames[old]!r}' for old in sorted(kwargs))
        warnings.warn(f'{owner}: deprecated arguments ({pairs}){"; " + hint if hint else ""}', DeprecationWarning,
                      stacklevel=3)
    return {renames[old]: value for old, value in kwargs.items()}


def check_pyramid_arguments(owner: str, num_stages: int, out_indices: Sequence[int] | int, frozen_stages: int,
                            frozen_meaning: str, **rates: float) -> tuple[int, ...]:
    """The one check of the arguments every family takes; returns ``out_indices`` as a tuple.

    ``out_indices``: distinct stage indices in ``0 .. num_stages - 1``, increasing (the outputs come in stage
    order); ``frozen_stages``: an int in ``-1 .. num_stages`` (``frozen_meaning`` explains the values); every
    ``rates`` entry (``drop_path_rate=...``) in ``[0, 1)``.

    Raises:
        ValueError: naming the argument, the rule and the value given.
    """
    indices = tuple(out_indices) if isinstance(out_indices, Sequence) else (out_indices,)
    if (not indices or any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < num_stages
                           for i in indices) or list(indices) != sorted(set(indices))):
        raise ValueError(f'{owner}: out_indices must be increasing, distinct stage indices in 0..{num_stages - 1}, '
                         f'got {out_indices!r}')
    if not isinstance(frozen_stages, int) or isinstance(frozen_stages, bool) or \
            not -1 <= frozen_stages <= num_stages:
        raise ValueError(f'{owner}: frozen_stages must be an int in -1..{num_stages} ({frozen_meaning}), '
                         f'got {frozen_stages!r}')
    for name, rate in rates.items():
        if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f'{owner}: {name} must be in [0, 1), got {rate!r}')
    return indices


def drop_path_rates(rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Stochastic depth rising linearly from 0 at the first block to ``rate`` at the last, split per stage."""
    total = sum(depths)
    flat = [rate * j / max(total - 1, 1) for j in range(total)]
    starts = [sum(depths[:i]) for i in range(len(depths))]
    return [flat[start:start + depth] for start, depth in zip(starts, depths)]


def init_linears_and_norms(model: nn.Module, std: float = 0.02) -> None:
    """The transformer initialisation: truncated normal (``std``) linear weights, zero biases, unit LayerNorms."""
    from timm.layers import trunc_normal_
    for module in model.modules():
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def split_output_norms(state: dict[str, Tensor], own: Mapping[str, Tensor], num_stages: int,
                       out_indices: Sequence[int]) -> list[str]:
    """Reconcile a converted state dict's per-level output norms ``norm{i}`` with a model's (in place).

    Drops the norms of levels the model does not return; returns the glob patterns of the model's output norms an
    ImageNet file is allowed not to carry (it has at most the final norm, ``norm{num_stages - 1}``).
    """
    for key in list(state):
        m = re.fullmatch(r'norm(\d+)\.(weight|bias)', key)
        if m and key not in own and int(m.group(1)) < num_stages:
            del state[key]
    levels = {int(m.group(1)) for k in state if (m := re.match(r'norm(\d+)\.', k))}
    if levels - {num_stages - 1}:  # a detector / segmentor file: every returned level's norm must be there
        return []
    return [f'norm{i}.*' for i in out_indices if i not in levels]


class PyramidBackbone(BaseModule):
    """Base of the mmswin backbones: ``(B, C, H, W)`` images -> a tuple of NCHW maps for ``out_indices``.

    Attributes (set by the subclass):
        family: the family's short name (class attribute): ``'swin'``, ``'shunted'``.
        min_input_size: the smallest input side ``forward`` accepts (class attribute; 1: any).
        num_stages: the number of stages (levels).
        out_indices: the returned levels, increasing.
        out_channels: channels of each output, aligned with the returned tuple.
        out_strides: stride of each output w.r.t. the input, aligned with the returned tuple.
        feature_info: timm-style ``dict(num_chs, reduction, module)`` for every level (returned or not).
        frozen_stages: see the family's docstring; ``num_stages`` freezes every parameter.
        float32_residual: under autocast, the blocks add their (bfloat16 / float16) branch outputs to a float32
            residual stream; see :meth:`_residual_stream`.
    """

    family: ClassVar[str] = ''
    min_input_size: ClassVar[int] = 1
    num_stages: int
    out_indices: tuple[int, ...]
    out_channels: tuple[int, ...]
    out_strides: tuple[int, ...]
    feature_info: list[dict[str, Any]]
    frozen_stages: int
    float32_residual: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get('family'):
            FAMILIES[cls.family] = cls

    def __init__(self, init_cfg: dict | list | None = None, float32_residual: bool = False) -> None:
        split_init_cfg(init_cfg)  # a malformed Pretrained entry fails at construction, not after the build
        super().__init__(init_cfg=init_cfg)
        self.float32_residual = bool(float32_residual)

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

    def describe_arch(self) -> str:
        """This model's arch in words, e.g. ``"arch 'tiny' (embed_dims 96, depths (2, 2, 6, 2), ...)"``."""
        raise NotImplementedError

    def exportable_side(self, side: int) -> bool:
        """Whether a ``side x side`` input keeps every map this model computes above one token per side."""
        raise NotImplementedError

    @property
    def export_rule(self) -> str:
        """Why small inputs cannot be exported with dynamic sizes, in this family's terms."""
        raise NotImplementedError

    # -- shared behaviour -----------------------------------------------------------------------------------------
    def _residual_stream(self, x: Tensor) -> Tensor:
        """A stage's input tokens ``(B, N, C)``: cast to float32 with ``float32_residual`` (a no-op in float32), so
        that under autocast every block adds its low-precision branch outputs to a float32 stream instead of
        rounding the stream to 8 (bfloat16) or 11 (float16) mantissa bits at every add; as they come otherwise."""
        return x.float() if self.float32_residual else x

    def _frozen_parameters(self) -> Iterator[nn.Parameter]:
        for module in self._frozen_modules():
            yield from module.parameters()

    def _set_levels(self, num_features: Sequence[int], strides: Sequence[int], modules: Sequence[str]) -> None:
        """Set ``feature_info`` (every level) and ``out_channels`` / ``out_strides`` (the returned ones)."""
        self.feature_info = [dict(num_chs=c, reduction=s, module=m) for c, s, m in zip(num_features, strides, modules)]
        self.out_channels = tuple(num_features[i] for i in self.out_indices)
        self.out_strides = tuple(strides[i] for i in self.out_indices)

    def _stem_and_stages_frozen(self, stem: Sequence[nn.Module], stages: Sequence[nn.Module]) -> list[nn.Module]:
        """``frozen_stages = k``: the stem, stages ``0..k-1`` and their output norms ``norm{i}`` (-1: nothing)."""
        if self.frozen_stages < 0:
            return []
        frozen = list(stem)
        for i in range(self.frozen_stages):
            frozen.append(stages[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        return frozen

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

    def min_export_side(self, limit: int = 1 << 15) -> int:
        """The smallest square side for which no computed map has a size-1 side (``torch.export`` would specialise
        it): 225 for Swin-T (patch 4, window 7, four stages), 63 for Shunted with the paper's sr ratios.

        Raises:
            ValueError: no side below ``limit`` qualifies.
        """
        for side in range(max(self.min_input_size, 1), limit):
            if self.exportable_side(side):
                return side
        raise ValueError(f'no input side below {limit} keeps every map of this {self.family} backbone above one '
                         'token per side')

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
