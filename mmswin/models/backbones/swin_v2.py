"""Swin Transformer V2 backbone (Liu et al., "Swin Transformer V2: Scaling Up Capacity and Resolution", CVPR 2022)
for mmdet / mmseg, with strict loading of the official, timm and mmpretrain checkpoint layouts.

The file reads top to bottom: small pure helpers (coordinate tables) -> attention -> block -> stage -> model ->
checkpoint layout detection / conversion. Window partitioning, the shift mask, the patch embedding and the attention
kernel are Swin V1's (:mod:`mmswin.models.backbones.swin`): the computation there is the same.

What V2 computes differently from V1, as the released networks do:

* residual post-norm: ``x + drop_path(norm1(attn(x)))``, ``x + drop_path(norm2(mlp(x)))``;
* scaled cosine attention: ``cos(q, k) * exp(min(logit_scale, log 100))`` per head; the qkv projection has a query
  and a value bias (the key bias is zero);
* a continuous relative position bias, ``16 * sigmoid(cpb_mlp(table))``, where ``table`` holds the log-spaced
  relative coordinates of a window, normalised by the *pretrained* window: a model built with a larger window than
  its checkpoint was trained with recomputes the table and interpolates nothing ("window transfer");
* patch merging reduces ``4C -> 2C`` first and normalises after, in the official channel order.

Sizes, for dense prediction: a map whose sides are not multiples of the window is zero-padded right / bottom
*before* the cyclic shift (as V1's detection code and mmpretrain; the padded tokens take part as keys); odd sides
are padded by the patch embedding and the merging. A stage map whose smaller side is at most the window attends in
windows of that side, without shift, as the official code and timm do for square maps (mmpretrain 1.2 drops the
shift for a map exactly one window wide and refuses smaller ones unless ``pad_small_map=True``, which pads): V2's
continuous bias is defined for any window, so this is what the released networks compute for small maps, where
padding to a full window (V1's rule) would make most keys padding. Pairs separated
by the shift mask get ``-inf`` where the official code adds ``-100``; a masked logit is then at least 84 below the
token's own (``cos = 1``), so the two agree to float32 resolution.

mmswin's own layout: ``patch_embed.projection``, ``stages.{i}.blocks.{j}.attn.{qkv,q_bias,v_bias,logit_scale,
cpb_mlp,proj}``, ``norm1``, ``mlp.fc1`` / ``mlp.fc2``, ``norm2``, the merging at the end of stage ``i``
(``stages.{i}.downsample``, official channel order) and output norms ``norm{i}``; see
:func:`convert_swin_v2_state_dict`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from timm.layers import DropPath
from torch import Tensor, nn

from mmswin.models.backbones.base import (PyramidBackbone, check_pyramid_arguments, drop_path_rates,
                                          init_linears_and_norms, split_output_norms)
from mmswin.models.backbones.swin import (SWIN_ARCHS, PatchEmbed, _num_blocks,
                                          attend_in_windows, relative_position_index, resolve_swin_arch,
                                          shift_window_mask, unfold_to_official_order, window_attention)
from mmswin.models.pretrained import CheckpointMismatchError
from mmswin.registry import MODELS

__all__ = ['SwinTransformerV2', 'SWIN_V2_LAYOUTS', 'log_spaced_coordinates', 'detect_swin_v2_layout',
           'convert_swin_v2_state_dict', 'describe_swin_v2_state_dict']


# ----------------------------------------------------------------------------------------------------------------
# Small pure helpers
# ----------------------------------------------------------------------------------------------------------------
def log_spaced_coordinates(window_size: int, pretrained_window_size: int = 0) -> Tensor:
    """The relative coordinates of a ``w x w`` window, log-spaced, as the continuous position bias reads them.

    Offsets ``(dy, dx)`` in ``[-(w-1), w-1]`` are divided by ``pretrained_window_size - 1`` (``w - 1`` when it is
    0), scaled to ``[-8, 8]`` and mapped through ``sign(t) * log2(|t| + 1) / log2(8)``.

    Returns:
        ``(2w-1, 2w-1, 2)`` float32, ``[..., 0]`` the row offset and ``[..., 1]`` the column offset.
    """
    w = window_size
    offsets = torch.arange(-(w - 1), w, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(offsets, offsets, indexing='ij'), dim=-1)  # 2w-1, 2w-1, 2
    reference = (pretrained_window_size if pretrained_window_size > 0 else w) - 1
    if reference > 0:  # a 1x1 window has no offsets to normalise
        table = table / reference
    table = table * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


def _per_stage(value: int | Sequence[int], num_stages: int, name: str, minimum: int) -> tuple[int, ...]:
    """An int or one int per stage -> one int per stage, each at least ``minimum``."""
    values = (value,) * num_stages if isinstance(value, int) else tuple(value) if isinstance(value, Sequence) else ()
    if len(values) != num_stages or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum for v in values):
        raise ValueError(f'{name} must be an int >= {minimum} or {num_stages} of them (one per stage), got {value!r}')
    return values


# ----------------------------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------------------------
class WindowAttentionV2(nn.Module):
    """Scaled cosine attention inside windows with the continuous (log-spaced) relative position bias.

    Parameter names are the official / timm ones (``qkv``, ``q_bias``, ``v_bias``, ``logit_scale``, ``cpb_mlp``,
    ``proj``). The coordinate table and the token-pair index of the configured window are buffers (not saved);
    a smaller window (a small map) gets its own, computed on the fly.

    Args:
        embed_dims: channels ``C``; ``num_heads`` must divide it.
        num_heads: heads.
        window_size: side of the square windows.
        pretrained_window_size: the window the weights were trained with (0: ``window_size``).
        qkv_bias: learn a query and a value bias. Default: True.
        attn_drop_rate, proj_drop_rate: dropout on the attention weights / after the projection.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, pretrained_window_size: int = 0,
                 qkv_bias: bool = True, attn_drop_rate: float = 0.0, proj_drop_rate: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.pretrained_window_size = pretrained_window_size
        self.attn_drop_rate = attn_drop_rate
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(embed_dims)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(embed_dims)) if qkv_bias else None
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate) if proj_drop_rate > 0 else nn.Identity()
        self.register_buffer('relative_coords_table', log_spaced_coordinates(window_size, pretrained_window_size),
                             persistent=False)
        self.register_buffer('relative_position_index', relative_position_index(window_size), persistent=False)

    def position_bias(self, window_size: int) -> Tensor:
        """The continuous position bias ``16 * sigmoid(cpb_mlp(coordinates))`` of a ``window_size`` window:
        ``(heads, N, N)``."""
        if window_size == self.window_size:
            table, index = self.relative_coords_table, self.relative_position_index
        else:
            device = self.relative_coords_table.device
            table = log_spaced_coordinates(window_size, self.pretrained_window_size).to(device)
            index = relative_position_index(window_size).to(device)
        n = window_size * window_size
        bias = self.cpb_mlp(table).view(-1, self.num_heads)[index.view(-1)]  # N*N, heads
        return (16 * torch.sigmoid(bias)).view(n, n, self.num_heads).permute(2, 0, 1).contiguous()  # heads, N, N

    def forward(self, windows: Tensor, window_size: int, shift_mask: Tensor | None = None) -> Tensor:
        """``(B*nW, N, C)`` tokens (the windows of one image consecutive, ``N = window_size**2``) and the optional
        ``(nW, N, N)`` additive shift mask -> ``(B*nW, N, C)``, heads merged, before the output projection."""
        return self.attend(windows, window_size, shift_mask).transpose(1, 2).reshape(windows.shape)

    def attend(self, windows: Tensor, window_size: int, shift_mask: Tensor | None = None) -> Tensor:
        """:meth:`forward` before the heads are merged: ``(B*nW, N, C)`` -> ``(B*nW, heads, N, d)``."""
        bw, n, c = windows.shape
        heads = self.num_heads
        bias = None if self.q_bias is None else torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(windows, self.qkv.weight, bias).view(bw, n, 3, heads, c // heads)  # B*nW, N, 3, heads, d
        scale = torch.clamp(self.logit_scale, max=math.log(100.0)).exp().view(1, heads, 1)  # q: exp(logit scale)
        scale = torch.cat((scale, torch.ones_like(scale)))  # 2, heads, 1 (k: 1)
        qk = qkv[:, :, :2]  # B*nW, N, 2, heads, d
        # q / |q| * scale and k / |k| in one pass (F.normalize's eps 1e-12)
        qk = qk * (scale / torch.linalg.vector_norm(qk, dim=-1, keepdim=True).clamp_min(1e-12))
        q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)  # each B*nW, heads, N, d
        v = qkv[:, :, 2].transpose(1, 2)  # B*nW, heads, N, d
        return window_attention(q, k, v, self.position_bias(window_size), shift_mask, 1.0,
                                self.attn_drop_rate if self.training else 0.0)  # B*nW, heads, N, d


# ----------------------------------------------------------------------------------------------------------------
# Block and stage
# ----------------------------------------------------------------------------------------------------------------
class Mlp(nn.Module):
    """``fc2(drop(gelu(fc1(x))))``, named as the official / timm MLP."""

    def __init__(self, embed_dims: int, hidden_dims: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SwinV2Block(nn.Module):
    """Post-norm block: ``x + norm1(W-MSA(x))`` then ``x + norm2(MLP(x))``; shifted windows when ``shift``.

    Args:
        embed_dims, num_heads, window_size, pretrained_window_size, qkv_bias, attn_drop_rate: see
            :class:`WindowAttentionV2`.
        mlp_ratio: hidden width of the MLP over ``embed_dims``.
        shift: shift the windows by half a window (dropped where the stage map fits in one window).
        drop_rate: dropout after the attention projection and inside the MLP.
        drop_path_rate: stochastic depth of both residual branches.
        with_cp: recompute this block in backward instead of storing its activations.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, pretrained_window_size: int,
                 mlp_ratio: float, shift: bool, qkv_bias: bool, drop_rate: float, attn_drop_rate: float,
                 drop_path_rate: float, with_cp: bool) -> None:
        super().__init__()
        self.shift = shift
        self.with_cp = with_cp
        self.attn = WindowAttentionV2(embed_dims, num_heads, window_size, pretrained_window_size, qkv_bias,
                                      attn_drop_rate, drop_rate)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def _window_attention(self, x: Tensor, hw: tuple[int, int], window: tuple[int, int],
                          shift_mask: Tensor | None) -> Tensor:
        """``(B, H*W, C)`` -> ``(B, H*W, C)``: attend in the (shifted) windows
        (:func:`~mmswin.models.backbones.swin.attend_in_windows`), then project."""
        ws, shift = window
        x = attend_in_windows(x, hw, ws, shift, lambda windows: self.attn.attend(windows, ws, shift_mask))
        return self.attn.proj_drop(self.attn.proj(x))

    def _forward(self, x: Tensor, hw: tuple[int, int], window: tuple[int, int], shift_mask: Tensor | None) -> Tensor:
        x = x + self.drop_path(self.norm1(self._window_attention(x, hw, window, shift_mask)))
        return x + self.drop_path(self.norm2(self.mlp(x)))

    def forward(self, x: Tensor, hw: tuple[int, int], window: tuple[int, int],
                shift_mask: Tensor | None = None) -> Tensor:
        """``(B, H*W, C)`` -> ``(B, H*W, C)``; ``window``: the stage's ``(window side, shift)`` for this map (the
        shift applies to shifted blocks only), ``shift_mask`` ``(nW, N, N)`` its additive mask."""
        window = window if self.shift else (window[0], 0)
        mask = shift_mask if window[1] else None
        if self.with_cp and torch.is_grad_enabled():
            return cp.checkpoint(self._forward, x, hw, window, mask, use_reentrant=False)
        return self._forward(x, hw, window, mask)


class PatchMergingV2(nn.Module):
    """2x2 neighbourhood concatenation in the official order ``[x(0,0) | x(1,0) | x(0,1) | x(1,1)]``, linear
    ``4C -> 2C`` (no bias), then LayerNorm: halves the resolution. Odd sides are zero-padded at the bottom / right."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
        """``(B, H*W, C)`` -> ``(B, ceil(H/2)*ceil(W/2), 2C)`` and the new size."""
        b, _, c = x.shape
        h, w = hw
        h2, w2 = _num_blocks(h, 2), _num_blocks(w, 2)
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, 2 * w2 - w, 0, 2 * h2 - h))  # B, 2*H/2, 2*W/2, C
        x = x.view(b, h2, 2, w2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, h2 * w2, 4 * c)  # (col*2 + row)*C + c
        return self.norm(self.reduction(x)), (h2, w2)


class SwinV2Stage(nn.Module):
    """The blocks of one resolution (every second one shifted), then the optional patch merging."""

    def __init__(self, embed_dims: int, depth: int, num_heads: int, window_size: int, pretrained_window_size: int,
                 mlp_ratio: float, qkv_bias: bool, drop_rate: float, attn_drop_rate: float,
                 path_rates: Sequence[float], downsample: bool, with_cp: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            SwinV2Block(embed_dims, num_heads, window_size, pretrained_window_size, mlp_ratio, i % 2 == 1, qkv_bias,
                        drop_rate, attn_drop_rate, path_rates[i], with_cp) for i in range(depth))
        self.downsample = PatchMergingV2(embed_dims, 2 * embed_dims) if downsample else None

    def window_for(self, hw: tuple[int, int]) -> tuple[int, int]:
        """``(window side, shift)`` on an ``H x W`` map: the configured window shifted by half of it, or, when the
        smaller side is at most the window, one window of that side and no shift."""
        side = min(hw)
        if side <= self.window_size:
            return side, 0
        return self.window_size, self.window_size // 2

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``(B, H*W, C)`` through the blocks (the patch merging is called by the model)."""
        window = self.window_for(hw)
        shift_mask = None
        if window[1] and len(self.blocks) > 1:  # one additive mask (nW, N, N) shared by the shifted blocks
            masked = shift_window_mask(hw[0], hw[1], window[0], window[1], x.device)
            shift_mask = torch.zeros(masked.shape, device=x.device).masked_fill_(masked, float('-inf'))
        for block in self.blocks:
            x = block(x, hw, window, shift_mask)
        return x


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------
@MODELS.register_module()
class SwinTransformerV2(PyramidBackbone):
    """Swin Transformer V2 backbone: a four-level pyramid of NCHW feature maps for FPN-style necks.

    Configs reach it as ``type='mmswin.SwinTransformerV2'``. Each returned map is the stage output through its own
    LayerNorm ``norm{i}`` (identity-initialised; ImageNet files carry the final one, which fills the last stage's).

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (the V1 presets, see ``SWIN_ARCHS``) or a dict with
            ``embed_dims``, ``depths`` and ``num_heads``.
        in_channels: input channels. Default: 3.
        patch_size: side of the patch embedding. Default: 4.
        window_size: window side, one int or one per stage. Default: 8.
        pretrained_window_size: the window the loaded weights were trained with, one int or one per stage; 0 (the
            default) for none (the table is normalised by ``window_size``). Set it when fine-tuning at a larger
            window than the checkpoint's, e.g. ``window_size=16, pretrained_window_size=8``, or ``(12, 12, 12, 6)``
            for the official 22K-to-1K files.
        mlp_ratio: MLP hidden width over the stage width. Default: 4.
        qkv_bias: learn the query and value biases. Default: True.
        drop_rate: dropout after the patch embedding, the attention projections and in the MLPs. Default: 0.
        attn_drop_rate: dropout on the attention weights. Default: 0.
        drop_path_rate: stochastic depth, rising linearly over the blocks to this value. Default: 0.1.
        out_indices: stages whose outputs are returned, increasing. Default: (0, 1, 2, 3).
        frozen_stages: ``-1`` nothing; ``0`` the patch embedding; ``k`` also stages ``0..k-1`` (with the merging
            that ends them) and their output norms; applied at construction. Default: -1.
        with_cp: gradient checkpointing per block. Default: False.
        compile: ``True`` or a dict of ``torch.compile`` options: compile this backbone in place.
        float32_residual: under autocast, keep the residual stream in float32 (each stage's input is cast to
            float32; the blocks' low-precision branch outputs are added to it). Nothing changes in float32.
            Default: False.
        init_cfg: ``None`` (random initialisation: truncated normal std 0.02 for linear layers, ``log 10`` for the
            logit scales, zeros for the q / v biases) or ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` with
            any layout of :data:`SWIN_V2_LAYOUTS`, loaded strictly with a report of what does not match.
    """

    family = 'swinv2'

    def __init__(self, arch: str | Mapping[str, Any] = 'tiny', in_channels: int = 3, patch_size: int = 4,
                 window_size: int | Sequence[int] = 8, pretrained_window_size: int | Sequence[int] = 0,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 with_cp: bool = False, compile: bool | dict = False, float32_residual: bool = False,
                 init_cfg: dict | None = None) -> None:
        embed_dims, depths, num_heads = resolve_swin_arch(arch)
        num_stages = len(depths)
        for name, value in (('in_channels', in_channels), ('patch_size', patch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'SwinTransformerV2: {name} must be a positive int, got {value!r}')
        windows = _per_stage(window_size, num_stages, 'SwinTransformerV2: window_size', 1)
        pretrained_windows = _per_stage(pretrained_window_size, num_stages,
                                        'SwinTransformerV2: pretrained_window_size', 0)
        if not mlp_ratio > 0:
            raise ValueError(f'SwinTransformerV2: mlp_ratio must be positive, got {mlp_ratio!r}')
        out_indices = check_pyramid_arguments(
            'SwinTransformerV2', num_stages, out_indices, frozen_stages,
            '-1: nothing, 0: patch embedding, k: also stages 0..k-1', drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        super().__init__(init_cfg=init_cfg, float32_residual=float32_residual)

        self.arch = dict(embed_dims=embed_dims, depths=depths, num_heads=num_heads)
        self.num_stages = num_stages
        self.patch_size = patch_size
        self.window_sizes = windows
        self.pretrained_window_sizes = pretrained_windows
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp

        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size, norm=True)
        self.drop_after_pos = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        rates = drop_path_rates(drop_path_rate, depths)
        self.num_features = tuple(embed_dims * 2 ** i for i in range(num_stages))
        self.stages = nn.ModuleList(
            SwinV2Stage(self.num_features[i], depths[i], num_heads[i], windows[i], pretrained_windows[i], mlp_ratio,
                        qkv_bias, drop_rate, attn_drop_rate, rates[i], i < num_stages - 1, with_cp)
            for i in range(num_stages))
        for i in out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

        self._set_levels(self.num_features, [patch_size * 2 ** i for i in range(num_stages)],
                         [f'stages.{i}' for i in range(num_stages)])
        self._finish_init(compile)

    # -- contract -------------------------------------------------------------------------------------------------
    def _frozen_modules(self) -> list[nn.Module]:
        return self._stem_and_stages_frozen([self.patch_embed, self.drop_after_pos], self.stages)

    def _init_default_weights(self) -> None:
        init_linears_and_norms(self)
        for module in self.modules():
            if isinstance(module, WindowAttentionV2):
                nn.init.constant_(module.logit_scale, math.log(10.0))
                if module.q_bias is not None:
                    nn.init.zeros_(module.q_bias)
                    nn.init.zeros_(module.v_bias)

    def convert_checkpoint(self, state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str, list[str]]:
        """Convert a backbone state dict of any known layout to this model (pure).

        Returns:
            The converted state dict (output norms of stages this model does not return dropped), the detected
            layout with the arch it holds, and the glob patterns of output norms an ImageNet layout does not carry.
        """
        layout = detect_swin_v2_layout(state_dict)
        state = convert_swin_v2_state_dict(state_dict, layout)
        own = self.state_dict()
        allowed = split_output_norms(state, own, self.num_stages, self.out_indices)
        found, mine = describe_swin_v2_state_dict(state), self.describe_arch()
        description = f'{layout} layout, {found}' + ('' if found == describe_swin_v2_state_dict(own) else
                                                     f' -- the model is {mine}')
        return state, description, allowed

    def describe_arch(self) -> str:
        windows = self.window_sizes if len(set(self.window_sizes)) > 1 else self.window_sizes[0]
        return f'{describe_swin_v2_state_dict(self.state_dict())}, window {windows}'

    def exportable_side(self, side: int) -> bool:
        size = -(-side // self.patch_size)
        for i in range(self.out_indices[-1] + 1):  # the stages computed
            if size <= self.window_sizes[i]:  # one (shrunk) window along this side
                return False
            size = -(-size // 2)
        return True

    @property
    def export_rule(self) -> str:
        return (f'every Swin V2 stage computed must be larger than its window ({self.window_sizes}) along each side '
                f'(patch {self.patch_size}, {self.out_indices[-1] + 1} stages)')

    # -- forward --------------------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """``(B, in_channels, H, W)`` -> tuple of ``(B, C_i, H_i, W_i)`` maps for ``out_indices``."""
        if x.dim() != 4:
            raise ValueError(f'SwinTransformerV2 expects (B, C, H, W) images, got a tensor of shape {tuple(x.shape)}')
        x, hw = self.patch_embed(x)  # B, H/4*W/4, C
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages[:self.out_indices[-1] + 1]):
            x = stage(self._residual_stream(x), hw)  # B, H_i*W_i, C_i
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.view(-1, hw[0], hw[1], out.shape[-1]).permute(0, 3, 1, 2).contiguous())
            if i < self.out_indices[-1]:
                x, hw = stage.downsample(x, hw)
        return tuple(outs)


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint layouts
# ----------------------------------------------------------------------------------------------------------------
SWIN_V2_LAYOUTS = {
    'official': 'Microsoft Swin-Transformer release (layers.*, merging at the end of stage i, persistent index / '
                'coordinate buffers and attention masks, head)',
    'timm': 'timm swinv2_* (layers.*, merging at the start of stage i+1)',
    'mmpretrain': 'mmpretrain SwinTransformerV2 (stages.*.attn.w_msa.*, ffn.layers.*, merging at the start of stage '
                  'i+1 in nn.Unfold order)',
    'mmswin': 'mmswin (stages.*.attn.*, mlp.*, merging at the end of stage i), also inside detector / segmentor '
              'checkpoints',
}
_DERIVED = re.compile(r'(^|\.)(relative_position_index|relative_coords_table|attn_mask|k_bias)$')


def detect_swin_v2_layout(state_dict: Mapping[str, Any]) -> str:
    """Name the layout of a Swin V2 backbone state dict (``backbone.`` prefix already stripped).

    Returns:
        One of :data:`SWIN_V2_LAYOUTS`.

    Raises:
        CheckpointMismatchError: no Swin V2 layout fits (a Swin V1 file says so); the message shows some keys.
    """
    keys = list(state_dict)
    if any(re.match(r'stages\.\d+\.blocks\.\d+\.attn\.w_msa\.cpb_mlp\.', k) for k in keys):
        return 'mmpretrain'
    if any(re.match(r'stages\.\d+\.blocks\.\d+\.attn\.cpb_mlp\.', k) for k in keys):
        return 'mmswin'
    if any(re.match(r'layers\.\d+\.blocks\.\d+\.attn\.cpb_mlp\.', k) for k in keys):
        merging = {int(m.group(1)) for k in keys if (m := re.match(r'layers\.(\d+)\.downsample\.', k))}
        return 'timm' if merging and 0 not in merging else 'official'
    sample = ', '.join(keys[:6])
    v1 = any(k.endswith('relative_position_bias_table') for k in keys)
    hint = (' It holds a Swin Transformer V1 (relative_position_bias_table): use type=\'mmswin.SwinTransformer\'.'
            if v1 else '')
    raise CheckpointMismatchError('the checkpoint is not of a Swin Transformer V2 in any known layout (official / '
                                  "timm 'layers.0.blocks.0.attn.cpb_mlp.0.weight', mmpretrain "
                                  "'stages.0.blocks.0.attn.w_msa.cpb_mlp.0.weight'); its "
                                  f'{len(state_dict)} keys begin with: {sample}.{hint}')


def describe_swin_v2_state_dict(state_dict: Mapping[str, Tensor]) -> str:
    """The arch a Swin V2 state dict in mmswin's layout holds, in words: ``"arch 'tiny' (embed_dims 96, depths
    (2, 2, 6, 2), heads (3, 6, 12, 24))"`` (the preset name when one fits)."""
    embed = state_dict.get('patch_embed.projection.weight')
    blocks: dict[int, set[int]] = {}
    heads: dict[int, int] = {}
    for key, value in state_dict.items():
        m = re.match(r'stages\.(\d+)\.blocks\.(\d+)\.attn\.logit_scale$', key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            heads[int(m.group(1))] = value.shape[0]
    depths = tuple(len(blocks[i]) for i in sorted(blocks))
    arch = dict(embed_dims=embed.shape[0] if embed is not None else None, depths=depths,
                num_heads=tuple(heads[i] for i in sorted(heads)))
    name = next((n for n, a in SWIN_ARCHS.items() if a == arch), None)
    text = f'embed_dims {arch["embed_dims"]}, depths {depths}, heads {arch["num_heads"]}'
    return f"arch '{name}' ({text})" if name else f'({text})'


def convert_swin_v2_state_dict(state_dict: Mapping[str, Tensor], layout: str | None = None) -> dict[str, Tensor]:
    """Convert a Swin V2 backbone state dict of any known layout to mmswin's.

    Pure: returns a new dict. Classification heads and derived buffers (index and coordinate tables, attention
    masks) are dropped -- the model recomputes them for its own window; the final ``norm`` of ImageNet layouts
    becomes the last stage's output norm. Keys of no known role are kept, so that a strict load reports them.

    Args:
        state_dict: backbone keys (``backbone.`` already stripped).
        layout: as returned by :func:`detect_swin_v2_layout`; detected when None.
    """
    layout = layout or detect_swin_v2_layout(state_dict)
    if layout not in SWIN_V2_LAYOUTS:
        raise ValueError(f'layout={layout!r}; valid layouts are {", ".join(SWIN_V2_LAYOUTS)}')
    stage_ids = [int(m.group(1)) for k in state_dict if (m := re.match(r'(?:layers|stages)\.(\d+)\.', k))]
    last = max(stage_ids, default=0)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if _DERIVED.search(key) or key.startswith(('head.', 'head_')):
            continue
        new = key
        if layout in ('official', 'timm'):
            new = new.replace('patch_embed.proj.', 'patch_embed.projection.')
            m = re.match(r'layers\.(\d+)\.downsample\.(.*)$', new)
            if m:
                new = f'layers.{int(m.group(1)) - (layout == "timm")}.downsample.{m.group(2)}'
            new = re.sub(r'^layers\.', 'stages.', new)
        elif layout == 'mmpretrain':
            new = new.replace('.attn.w_msa.', '.attn.').replace('.ffn.layers.0.0.', '.mlp.fc1.')
            new = new.replace('.ffn.layers.1.', '.mlp.fc2.')
            m = re.match(r'stages\.(\d+)\.downsample\.(reduction|norm)\.(weight|bias)$', new)
            if m:
                new = f'stages.{int(m.group(1)) - 1}.downsample.{m.group(2)}.{m.group(3)}'
                if m.group(2) == 'reduction':
                    value = unfold_to_official_order(value)
        if new.startswith('norm.'):
            new = f'norm{last}.' + new[5:]
        out[new] = value
    return out
