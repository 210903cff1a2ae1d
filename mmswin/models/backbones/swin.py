"""Swin Transformer backbone (Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
ICCV 2021) for mmdet / mmseg, with strict loading of every common checkpoint layout.

The file reads top to bottom: small pure helpers (window tables, masks, resizing) -> attention -> block -> stage ->
model -> checkpoint layout detection / conversion -> arch table.

Numerics follow mmdet 3.x / mmseg 1.x and the official detection and segmentation forks, which the released
detection / segmentation weights were trained with: a feature map whose sides are not multiples of the window is
padded right / bottom with zeros *after* ``norm1`` and *before* the cyclic shift (padded tokens take part in the
attention as keys, exactly as there), every second block is shifted by ``window_size // 2`` whatever the map size
(also when the map fits in one window, unlike the classification code and timm), and odd sizes are padded at the
bottom / right corner by the patch embedding and the patch merging. Token pairs separated by the shift mask get
``-inf`` where the official code adds ``-100``: their weight, ``exp(-100)`` relative to at least one unmasked pair,
is below float32 resolution either way, and ``-inf`` gives exact zeros instead of subnormal numbers (which slow CPU
matrix products severalfold when the qkv biases are zero, as at initialisation).

Speed and the compiler: the hot path is plain tensor code that ``torch.compile`` traces as one graph (no custom
autograd function, no in-place update of autograd inputs, no data-dependent shape). Training and compiled code pad,
roll and partition with ``F.pad`` / ``torch.roll`` / views (cheap backward, fused by the compiler); eager inference
gathers the windows by index instead (two copies per block instead of up to nine, see
:func:`attend_in_gathered_windows`). The shift mask is built from ``arange`` comparisons of the (symbolic)
map size once per stage. The attention over all windows is one call of :func:`window_attention`: one
``F.scaled_dot_product_attention`` on CUDA (fused kernels in training too), explicit batched products on the CPU
under the compiler (inductor fuses bias, mask and softmax around two ``bmm``), whichever measured faster in eager
CPU mode. The output projection runs on real tokens only (padding dropped first). Padded sizes are single floor
divisions so that symbolic shapes stay small and new input sizes reuse a shape-generic graph (see
:func:`_crop_tokens`).

mmswin's own checkpoint layout is mmdet's (``stages.{i}.blocks.{j}.attn.w_msa.*``, ``ffn.layers.*``, the patch
merging at the end of stage ``i`` in ``nn.Unfold`` channel order, output norms ``norm0..norm3``), so mmdet / mmseg
detector and segmentor checkpoints load after stripping ``backbone.`` only. See :func:`convert_swin_state_dict`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from timm.layers import DropPath, trunc_normal_
from torch import Tensor, nn

from mmswin.models.backbones.base import (PyramidBackbone, check_pyramid_arguments, drop_path_rates,
                                          init_linears_and_norms, pop_renamed_arguments, split_output_norms)
from mmswin.models.pretrained import CheckpointMismatchError
from mmswin.registry import MODELS

__all__ = [
    'SwinTransformer', 'SWIN_ARCHS', 'resolve_swin_arch', 'relative_position_index', 'window_partition',
    'window_reverse', 'shift_window_mask', 'window_attention', 'window_token_index', 'attend_in_windows',
    'attend_in_window_views', 'attend_in_gathered_windows',
    'resize_relative_position_bias_table',
    'resize_abs_pos_embed', 'detect_swin_layout', 'describe_swin_state_dict', 'convert_swin_state_dict',
    'official_to_unfold_order', 'unfold_to_official_order',
]


# ----------------------------------------------------------------------------------------------------------------
# Small pure helpers
# ----------------------------------------------------------------------------------------------------------------
def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, Sequence) and len(value) in (1, 2) and all(isinstance(v, int) for v in value):
        pair = (value[0], value[-1])
    else:
        raise ValueError(f'{name} must be an int or a pair of ints, got {value!r}')
    if min(pair) < 1:
        raise ValueError(f'{name} must be positive, got {value!r}')
    return pair


def relative_position_index(window_size: int) -> Tensor:
    """Index into a ``((2w-1)^2, heads)`` bias table for every pair of tokens of a ``w x w`` window.

    Returns:
        ``(w*w, w*w)`` long tensor; entry ``[i, j] = (dy + w - 1) * (2w - 1) + (dx + w - 1)`` with ``(dy, dx)`` the
        offset of token ``i`` from token ``j`` (row-major token order), as in the official code, timm and mmdet.
    """
    w = window_size
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')).flatten(1)  # 2, N
    rel = coords[:, :, None] - coords[:, None, :] + (w - 1)  # 2, N, N
    return rel[0] * (2 * w - 1) + rel[1]


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Split ``(B, H, W, C)`` maps, ``H`` and ``W`` multiples of the window, into ``(B * nW, w*w, C)`` windows.

    Windows are ordered row-major per image (the official order).
    """
    b, h, w, c = x.shape
    ws = window_size
    x = x.view(b, h // ws, ws, w // ws, ws, c)  # B, nWh, ws, nWw, ws, C
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)  # B*nW, ws*ws, C


def window_reverse(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, w*w, C)`` -> ``(B, H, W, C)``."""
    ws = window_size
    c = windows.shape[-1]
    x = windows.view(-1, height // ws, width // ws, ws, ws, c)  # B, nWh, nWw, ws, ws, C
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)  # B, H, W, C


def _num_blocks(size: int, block: int) -> int:
    """``ceil(size / block)``, written as one floor division so that symbolic sizes stay short expressions."""
    return (size + block - 1) // block


def shift_window_mask(height: int, width: int, window_size: int, shift_size: int,
                      device: torch.device | str | None = None) -> Tensor:
    """Which token pairs of each shifted window came from different regions of the map before the roll.

    Built from ``arange`` comparisons and one small matrix product, so it traces with symbolic sizes (no per-size
    Python tables).

    Args:
        height, width: the map size before padding (padding is right / bottom to multiples of the window).

    Returns:
        ``(nW, w*w, w*w)`` bool, True where attention must be masked (mmdet / official region labelling: rows and
        columns split at ``-window_size`` and ``-shift_size`` of the padded map).
    """
    ws = window_size
    hp, wp = _num_blocks(height, ws) * ws, _num_blocks(width, ws) * ws

    def regions(n: int) -> Tensor:  # 0, 1, 2 for [0, n-ws), [n-ws, n-shift), [n-shift, n)
        idx = torch.arange(n, device=device)
        return (idx >= n - ws).to(torch.uint8) + (idx >= n - shift_size).to(torch.uint8)

    region = regions(hp)[:, None] * 3 + regions(wp)[None, :]  # Hp, Wp
    region = region.view(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)  # nW, N
    # Pairs in the same region, as a product of one-hot labels: a matrix product is a materialised result for the
    # compiler, so the region arithmetic above runs once per token, not inside every softmax that reads the mask
    # (measured: 12x more time in the stage-1 softmax of a compiled Swin-T otherwise).
    one_hot = (region.unsqueeze(-1) == torch.arange(9, device=device)).float()  # nW, N, 9
    return torch.bmm(one_hot, one_hot.transpose(1, 2)) < 0.5  # nW, N, N


def window_token_index(height: int, width: int, window_size: int, shift_size: int,
                       device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Where the tokens of a ``height x width`` map sit in its padded, cyclically shifted windows, as indices.

    The windows are those of :func:`window_partition` applied to the map zero-padded bottom / right to multiples
    of the window and rolled by ``-shift_size`` along both axes (the layout of ``ShiftWindowMSA``).

    Returns:
        ``slot_token`` ``(nW*N,)``: for each window slot (windows row-major, then tokens row-major) the row-major
        index of its token in the ``H*W`` map, or ``H*W`` where the slot holds padding;
        ``token_window``, ``token_slot`` ``(H*W,)``: for each token, its window and its position in the window.
    """
    ws = window_size
    hp, wp = _num_blocks(height, ws) * ws, _num_blocks(width, ws) * ws
    rows = (torch.arange(hp, device=device) + shift_size) % hp  # map row shown at each padded, rolled row
    cols = (torch.arange(wp, device=device) + shift_size) % wp
    valid = (rows < height)[:, None] & (cols < width)[None, :]
    token = torch.where(valid, rows[:, None] * width + cols[None, :], height * width)  # Hp, Wp
    slot_token = token.view(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1)  # nW*N
    r = (torch.arange(height, device=device) - shift_size) % hp  # rolled row of each map row
    c = (torch.arange(width, device=device) - shift_size) % wp
    token_window = ((r // ws)[:, None] * (wp // ws) + (c // ws)[None, :]).reshape(-1)  # H*W
    token_slot = ((r % ws)[:, None] * ws + (c % ws)[None, :]).reshape(-1)  # H*W
    return slot_token, token_window, token_slot


def attend_in_gathered_windows(x: Tensor, hw: tuple[int, int], window_size: int, shift_size: int,
                               attend: Callable[[Tensor], Tensor]) -> Tensor:
    """Window attention over a ``(B, H*W, C)`` map in two gathers, for inference: the tokens into padded, shifted
    windows in one ``index_select`` (:func:`window_token_index`), ``attend`` (``(B*nW, N, C)`` windows ->
    ``(B*nW, heads, N, d)``), and the output, heads merged, back to the tokens in one indexing -- instead of up to
    nine layout copies (pad, two per roll, partition, head merge, reverse, crop). Returns ``(B, H*W, C)``, before
    the output projection. Its backward would be a scatter, which is slow on the CPU: training keeps the views."""
    b, length, c = x.shape
    ws = window_size
    slot_token, token_window, token_slot = window_token_index(hw[0], hw[1], ws, shift_size, x.device)
    if slot_token.shape[0] != length:  # padding: slots holding index H*W read a zero token
        x = F.pad(x, (0, 0, 0, 1))  # B, H*W + 1, C
    out = attend(x.index_select(1, slot_token).view(-1, ws * ws, c))  # B*nW, heads, N, d
    heads, n, d = out.shape[1:]
    out = out.view(b, -1, heads, n, d).transpose(2, 3)  # B, nW, N, heads, d (a view)
    return out[:, token_window, token_slot].view(b, length, c)  # B, H*W, C


def attend_in_window_views(x: Tensor, hw: tuple[int, int], window_size: int, shift_size: int,
                           attend: Callable[[Tensor], Tensor]) -> Tensor:
    """:func:`attend_in_windows` by pad, roll and partition with views and copies (cheap backward, and what the
    compiler fuses best): ``(B, H*W, C)`` -> ``(B, H*W, C)``, before the output projection."""
    b, _, c = x.shape
    h, w = hw
    ws, shift = window_size, shift_size
    hp, wp = _num_blocks(h, ws) * ws, _num_blocks(w, ws) * ws
    x = F.pad(x.view(b, h, w, c), (0, 0, 0, wp - w, 0, hp - h))  # B, Hp, Wp, C
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))  # B, Hp, Wp, C
    windows = window_partition(x, ws)  # B*nW, N, C
    x = attend(windows).transpose(1, 2).reshape(windows.shape)  # B*nW, N, C (heads merged)
    x = window_reverse(x, ws, hp, wp)  # B, Hp, Wp, C
    if shift:
        x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))  # B, Hp, Wp, C
    return _crop_tokens(x, h, w)  # B, H*W, C (padding dropped before the projection)


def attend_in_windows(x: Tensor, hw: tuple[int, int], window_size: int, shift_size: int,
                      attend: Callable[[Tensor], Tensor]) -> Tensor:
    """Window attention over a ``(B, H*W, C)`` map: ``attend`` (``(B*nW, N, C)`` windows of the map padded to whole
    windows and rolled by ``-shift_size`` -> ``(B*nW, heads, N, d)``), back to ``(B, H*W, C)`` with the heads
    merged, before the output projection. Eager inference takes :func:`attend_in_gathered_windows`; training,
    ``torch.compile`` and export take :func:`attend_in_window_views` (the gather's backward is a scatter, slow on
    the CPU). Both Swin families call it."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return attend_in_window_views(x, hw, window_size, shift_size, attend)
    return attend_in_gathered_windows(x, hw, window_size, shift_size, attend)


def resize_relative_position_bias_table(table: Tensor, window_size: int) -> Tensor:
    """Resize a ``((2w'-1)^2, heads)`` table to window ``w`` by bicubic interpolation over its ``(2w-1, 2w-1)`` grid.

    This is what mmdet and the official detection fork do when a window-12 (384 px) ImageNet checkpoint is loaded
    into a window-7 model.
    """
    length, heads = table.shape
    src = math.isqrt(length)
    if src * src != length:
        raise ValueError(f'a relative position bias table has a square number of rows, got {tuple(table.shape)}')
    dst = 2 * window_size - 1
    if src == dst:
        return table
    grid = table.float().t().reshape(1, heads, src, src)  # 1, heads, S, S
    grid = F.interpolate(grid, size=(dst, dst), mode='bicubic', align_corners=False)  # 1, heads, S', S'
    return grid.reshape(heads, dst * dst).t().contiguous().to(table.dtype)  # S'*S', heads


def resize_abs_pos_embed(pos_embed: Tensor, dst_hw: tuple[int, int], src_hw: tuple[int, int] | None = None) -> Tensor:
    """Resize an absolute position embedding to a ``dst_hw`` token grid, bicubic, as ``(1, H*W, C)``.

    Args:
        pos_embed: ``(1, L, C)`` (official classification code, mmdet, mmpretrain; ``src_hw`` is then the square
            grid unless given) or ``(1, C, H, W)`` (official detection fork).
        dst_hw: the token grid wanted.
    """
    if pos_embed.dim() == 4:  # 1, C, H, W
        grid = pos_embed
    elif pos_embed.dim() == 3:  # 1, L, C
        _, length, channels = pos_embed.shape
        if src_hw is None:
            side = math.isqrt(length)
            if side * side != length:
                raise ValueError(f'cannot infer the grid of an absolute position embedding of {length} tokens; '
                                 'pass src_hw')
            src_hw = (side, side)
        grid = pos_embed.reshape(1, src_hw[0], src_hw[1], channels).permute(0, 3, 1, 2)  # 1, C, H, W
    else:
        raise ValueError(f'absolute position embedding of shape {tuple(pos_embed.shape)}: expected (1, L, C) or '
                         '(1, C, H, W)')
    if tuple(grid.shape[-2:]) != tuple(dst_hw):
        grid = F.interpolate(grid, size=tuple(dst_hw), mode='bicubic', align_corners=False)  # 1, C, H', W'
    return grid.flatten(2).transpose(1, 2)  # 1, H'*W', C


def _crop_tokens(x: Tensor, height: int, width: int) -> Tensor:
    """``(B, Hp, Wp, C)`` -> the top-left ``height x width`` corner as ``(B, H*W, C)`` tokens.

    Eager mode reshapes (a view when nothing is cropped); under the compiler the crop is always a fresh copy, so
    that whether the padding is empty never becomes a guard (a recompilation per input size).
    """
    x = x[:, :height, :width]  # B, H, W, C
    if torch.compiler.is_compiling():
        x = x.clone(memory_format=torch.contiguous_format)
    return x.reshape(x.shape[0], height * width, x.shape[3])  # B, H*W, C


# ----------------------------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------------------------
def _explicit_products_are_faster(q: Tensor) -> bool:
    """Whether :func:`window_attention` writes the attention as explicit products for ``q`` (else one SDPA call).

    Measured per device, precision and mode on whole Swin-T steps (``tools/analysis/benchmark_backbones.py``):

    * CUDA: SDPA always -- fused kernels, also in training (the bias gets its gradient through them).
    * CPU under ``torch.compile``: explicit products -- inductor runs them as batched matrix products with the bias,
      the shift mask and the softmax fused into one kernel, where SDPA stays an opaque call of the CPU flash kernel.
    * CPU eager: explicit products while gradients are recorded (SDPA's math fallback adds a safe-softmax pass) and
      in bfloat16 (the flash kernel does not use the matrix units for 49-token windows); SDPA for float32
      inference.
    """
    if q.is_cuda:
        return False
    if torch.compiler.is_compiling() or torch.is_grad_enabled():
        return True
    return q.dtype != torch.float32


def window_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, shift_mask: Tensor | None, scale: float,
                     dropout_p: float = 0.0) -> Tensor:
    """``softmax(scale * q k^T + bias + shift_mask) v`` over all windows at once.

    Args:
        q, k, v: ``(B*nW, heads, N, d)``, the ``nW`` windows of each image consecutive.
        bias: ``(heads, N, N)`` relative position bias, shared by all windows.
        shift_mask: ``(nW, N, N)`` additive mask (0 or ``-inf``) of shifted windows, or None.

    Returns:
        ``(B*nW, heads, N, d)``.

    The explicit products add bias and mask by broadcasting over a ``(B, nW, heads, N, N)`` view; SDPA needs the
    mask materialised per window. :func:`_explicit_products_are_faster` picks the form.
    """
    bw, heads, n, _ = q.shape
    if _explicit_products_are_faster(q):
        attn = torch.matmul(q * scale, k.transpose(-2, -1))  # B*nW, heads, N, N
        if shift_mask is None:
            attn = attn + bias.to(attn.dtype)
        else:
            nw = shift_mask.shape[0]
            mask = (bias.unsqueeze(0) + shift_mask.unsqueeze(1)).to(attn.dtype)  # nW, heads, N, N
            attn = (attn.view(-1, nw, heads, n, n) + mask).view(bw, heads, n, n)
        attn = attn.softmax(dim=-1)
        return torch.matmul(F.dropout(attn, dropout_p) if dropout_p else attn, v)  # B*nW, heads, N, d
    mask = bias.to(q.dtype).unsqueeze(0)  # 1, heads, N, N
    if shift_mask is not None:
        nw = shift_mask.shape[0]
        mask = (mask + shift_mask.to(q.dtype).unsqueeze(1)).unsqueeze(0)  # 1, nW, heads, N, N
        mask = mask.expand(bw // nw, nw, heads, n, n).reshape(bw, heads, n, n)  # B*nW, heads, N, N
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, dropout_p=dropout_p)


class WindowMSA(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    One attention call for all windows (:func:`window_attention`) with the relative position bias (plus the shift
    mask of shifted windows) added to the scores. The output projection ``proj`` is applied by the caller, after the
    windows are merged back and the padding is dropped (it then runs on real tokens only).

    Args:
        embed_dims: channels ``C``.
        num_heads: heads; ``C`` must be divisible by it.
        window_size: side ``w`` of the square windows.
        qkv_bias: learn a bias for the query / key / value projection. Default: True.
        attn_drop_rate: dropout on the attention weights. Default: 0.
        proj_drop_rate: dropout after the output projection. Default: 0.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, qkv_bias: bool = True,
                 attn_drop_rate: float = 0.0, proj_drop_rate: float = 0.0) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (embed_dims // num_heads) ** -0.5
        self.attn_drop_rate = attn_drop_rate
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate) if proj_drop_rate > 0 else nn.Identity()

    def position_bias(self) -> Tensor:
        """The relative position bias, ``(heads, N, N)``."""
        n = self.window_size * self.window_size
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # N*N, heads
        # contiguous: the softmax that adds it then reads rows of N (vectorised), not a stride of ``heads``
        return bias.view(n, n, self.num_heads).permute(2, 0, 1).contiguous()  # heads, N, N

    def attend(self, windows: Tensor, shift_mask: Tensor | None = None) -> Tensor:
        """Attend within each window: ``(B*nW, N, C)`` tokens (windows of one image consecutive) and the optional
        ``(nW, N, N)`` additive shift mask -> ``(B*nW, heads, N, d)``, before the heads are merged."""
        bw, n, c = windows.shape
        heads = self.num_heads
        qkv = self.qkv(windows).view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)  # 3, B*nW, heads, N, d
        q, k, v = qkv.unbind(0)  # each B*nW, heads, N, d
        return window_attention(q, k, v, self.position_bias(), shift_mask, self.scale,
                                self.attn_drop_rate if self.training else 0.0)

    def forward(self, windows: Tensor, shift_mask: Tensor | None = None) -> Tensor:
        """:meth:`attend` with the heads merged: ``(B*nW, N, C)``, before the output projection."""
        out = self.attend(windows, shift_mask)  # B*nW, heads, N, d
        return out.transpose(1, 2).reshape(windows.shape)  # B*nW, N, C


class ShiftWindowMSA(nn.Module):
    """Window attention on a ``(B, H*W, C)`` map: pad, cyclic shift, partition, attend, and back, then project.

    Args:
        embed_dims, num_heads, window_size, qkv_bias, attn_drop_rate, proj_drop_rate: see :class:`WindowMSA`.
        shift_size: cyclic shift towards the top-left before partitioning; 0 for regular windows.
        drop_path_rate: stochastic depth on this residual branch.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, shift_size: int = 0, qkv_bias: bool = True,
                 attn_drop_rate: float = 0.0, proj_drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.w_msa = WindowMSA(embed_dims, num_heads, window_size, qkv_bias, attn_drop_rate, proj_drop_rate)
        self.drop = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor, hw: tuple[int, int], shift_mask: Tensor | None) -> Tensor:
        """``(B, H*W, C)`` normalised tokens -> ``(B, H*W, C)`` residual branch.

        ``shift_mask``: ``(nW, N, N)`` additive mask of the shifted windows (used when ``shift_size > 0``).
        """
        shift_mask = shift_mask if self.shift_size else None
        out = attend_in_windows(x, hw, self.window_size, self.shift_size,
                                lambda windows: self.w_msa.attend(windows, shift_mask))  # B, H*W, C
        return self.drop(self.w_msa.proj_drop(self.w_msa.proj(out)))


# ----------------------------------------------------------------------------------------------------------------
# Block and stage
# ----------------------------------------------------------------------------------------------------------------
class FFN(nn.Module):
    """Two-layer MLP with GELU, named as mmcv's ``FFN`` (``layers.0.0`` and ``layers.1``) for checkpoint parity."""

    def __init__(self, embed_dims: int, hidden_dims: int, drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, hidden_dims), nn.GELU(), drop),
            nn.Linear(hidden_dims, embed_dims),
            nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity())
        self.drop = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor, identity: Tensor) -> Tensor:
        return identity + self.drop(self.layers(x))


class SwinBlock(nn.Module):
    """``x + W-MSA(LN(x))`` then ``x + MLP(LN(x))``; the window attention is shifted when ``shift`` is True.

    Args:
        embed_dims, num_heads, window_size, qkv_bias, attn_drop_rate: see :class:`WindowMSA`.
        mlp_ratio: hidden width of the MLP over ``embed_dims``.
        shift: shift the windows by ``window_size // 2``.
        drop_rate: dropout after the attention projection and inside the MLP.
        drop_path_rate: stochastic depth of both residual branches.
        with_cp: recompute this block in backward instead of storing its activations.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, mlp_ratio: float = 4.0, shift: bool = False,
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = ShiftWindowMSA(embed_dims, num_heads, window_size, self.shift_size, qkv_bias, attn_drop_rate,
                                   drop_rate, drop_path_rate)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims, int(embed_dims * mlp_ratio), drop_rate, drop_path_rate)

    def _forward(self, x: Tensor, hw: tuple[int, int], shift_mask: Tensor | None) -> Tensor:
        x = x + self.attn(self.norm1(x), hw, shift_mask)
        return self.ffn(self.norm2(x), identity=x)

    def forward(self, x: Tensor, hw: tuple[int, int], shift_mask: Tensor | None = None) -> Tensor:
        """``(B, H*W, C)`` -> ``(B, H*W, C)``; ``shift_mask`` ``(nW, N, N)`` is used by shifted blocks only."""
        if self.with_cp and torch.is_grad_enabled():
            return cp.checkpoint(self._forward, x, hw, shift_mask, use_reentrant=False)
        return self._forward(x, hw, shift_mask)


class PatchMerging(nn.Module):
    """2x2 neighbourhood concatenation, LayerNorm, linear ``4C -> 2C``: halves the resolution.

    Channel order of the concatenation is ``nn.Unfold``'s (channel-major over the positions (0,0), (0,1), (1,0),
    (1,1)), as in mmdet / mmseg / mmpretrain; see :func:`official_to_unfold_order` for the official / timm order.
    Odd sides are zero-padded at the bottom / right.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels) if norm else nn.Identity()
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)
        # The gather is cheaper in position-major order (whole C-vectors are copied): the parameters, stored in
        # Unfold order, are permuted to it at each call instead (a few kB).
        c = in_channels
        order = torch.arange(4 * c).view(c, 4).t().flatten()  # position-major slot -> Unfold channel
        self.register_buffer('_position_major', order, persistent=False)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
        """``(B, H*W, C)`` -> ``(B, ceil(H/2)*ceil(W/2), 2C)`` and the new size."""
        b, _, c = x.shape
        h, w = hw
        h2, w2 = _num_blocks(h, 2), _num_blocks(w, 2)
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, 2 * w2 - w, 0, 2 * h2 - h))  # B, 2*H/2, 2*W/2, C (even sides)
        x = x.view(b, h2, 2, w2, 2, c).permute(0, 1, 3, 2, 4, 5)  # B, H/2, W/2, 2 (row), 2 (col), C
        x = x.reshape(b, h2 * w2, 4 * c)  # B, H/2*W/2, 4C  ((row * 2 + col) * C + c)
        order = self._position_major
        if isinstance(self.norm, nn.LayerNorm):
            x = F.layer_norm(x, (4 * c,), self.norm.weight[order], self.norm.bias[order], self.norm.eps)
        return F.linear(x, self.reduction.weight[:, order]), (h2, w2)


class SwinStage(nn.Module):
    """The blocks of one resolution (every second one shifted), then the optional patch merging."""

    def __init__(self, embed_dims: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 qkv_bias: bool, drop_rate: float, attn_drop_rate: float, path_rates: Sequence[float],
                 downsample: bool, patch_norm: bool, with_cp: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            SwinBlock(embed_dims, num_heads, window_size, mlp_ratio, i % 2 == 1, qkv_bias, drop_rate, attn_drop_rate,
                      path_rates[i], with_cp) for i in range(depth))
        self.downsample = PatchMerging(embed_dims, 2 * embed_dims, patch_norm) if downsample else None

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``(B, H*W, C)`` through the blocks (the patch merging is called by the model)."""
        shift_mask = None
        if len(self.blocks) > 1:  # one additive mask (nW, N, N) shared by the shifted blocks
            ws = self.window_size
            masked = shift_window_mask(hw[0], hw[1], ws, ws // 2, x.device)
            shift_mask = torch.zeros(masked.shape, device=x.device).masked_fill_(masked, float('-inf'))  # nW, N, N
        for block in self.blocks:
            x = block(x, hw, shift_mask)
        return x


class PatchEmbed(nn.Module):
    """Non-overlapping ``p x p`` convolution (the input is zero-padded bottom / right to multiples of ``p``), then
    LayerNorm when ``norm``."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int, norm: bool = True) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.projection = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims) if norm else nn.Identity()

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """``(B, C_in, H, W)`` -> ``(B, H/p * W/p, C)`` and the token grid size."""
        p = self.patch_size
        h, w = _num_blocks(x.shape[-2], p), _num_blocks(x.shape[-1], p)
        x = F.pad(x, (0, p * w - x.shape[-1], 0, p * h - x.shape[-2]))  # B, C_in, p*H/p, p*W/p
        x = self.projection(x)  # B, C, H/p, W/p
        hw = (h, w)
        return self.norm(x.flatten(2).transpose(1, 2)), hw  # B, H/p*W/p, C


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------
SWIN_ARCHS: dict[str, dict[str, Any]] = {
    'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'base': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    'large': dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}


def resolve_swin_arch(arch: str | Mapping[str, Any]) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """A preset name or an arch dict -> ``(embed_dims, depths, num_heads)``, checked (Swin V1 and V2 share them)."""
    if isinstance(arch, str):
        if arch.lower() not in SWIN_ARCHS:
            raise ValueError(f'arch={arch!r} is not a Swin preset; valid names are {", ".join(SWIN_ARCHS)}, '
                             'or a dict with embed_dims, depths and num_heads')
        arch = SWIN_ARCHS[arch.lower()]
    if not isinstance(arch, Mapping) or set(arch) != {'embed_dims', 'depths', 'num_heads'}:
        raise ValueError(f'arch must be one of {", ".join(SWIN_ARCHS)} or a dict with exactly the keys embed_dims, '
                         f'depths, num_heads; got {arch!r}')
    embed_dims, depths, num_heads = arch['embed_dims'], tuple(arch['depths']), tuple(arch['num_heads'])
    if not isinstance(embed_dims, int) or embed_dims < 1:
        raise ValueError(f'arch embed_dims must be a positive int, got {embed_dims!r}')
    if not depths or len(depths) != len(num_heads) or any(not isinstance(d, int) or d < 1 for d in depths):
        raise ValueError(f'arch depths must be positive ints, one per stage, as many as num_heads; got depths='
                         f'{depths}, num_heads={num_heads}')
    for i, heads in enumerate(num_heads):
        if not isinstance(heads, int) or heads < 1 or (embed_dims * 2 ** i) % heads:
            raise ValueError(f'arch num_heads[{i}]={heads!r} must be a positive int dividing the stage width '
                             f'{embed_dims * 2 ** i}')
    return embed_dims, depths, num_heads


@MODELS.register_module()
class SwinTransformer(PyramidBackbone):
    """Swin Transformer backbone: a four-level pyramid of NCHW feature maps for FPN-style necks (or five, with a
    fifth entry in ``depths`` / ``num_heads``, as mmdet's RTMDet Swin-B P6 builds with ``strides=(4, 2, 2, 2, 2)``).

    Configs reach it as ``type='mmswin.SwinTransformer'`` with
    ``custom_imports=dict(imports=['mmswin.models'], allow_failed_imports=False)``.

    Outputs: a tuple with one ``(B, C * 2**i, ceil(H / (4 * 2**i)), ceil(W / (4 * 2**i)))`` map per ``i`` in
    ``out_indices``, each through its own LayerNorm ``norm{i}`` -- channels ``out_channels``, strides
    ``out_strides`` (4, 8, 16, 32 with the default patch size). Any input size works: sides that are not multiples
    of the patch size, of 32 or of the window, or smaller than the window, are padded as mmdet does, and outputs
    equal those of mmdet's ``SwinTransformer`` on the same weights.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (see :data:`SWIN_ARCHS`) or a dict with ``embed_dims``
            (int), ``depths`` and ``num_heads`` (one int per stage). Default: ``'tiny'``.
        pretrain_img_size: the image size (int or (h, w)) the absolute position embedding is defined for; other
            input sizes get it resized bicubically. Only used with ``use_abs_pos_embed``. Default: 224.
        in_channels: input channels. Default: 3.
        patch_size: side of the non-overlapping patch embedding (the first stride). Default: 4.
        window_size: side of the attention windows. Default: 7.
        mlp_ratio: MLP hidden width over the stage width. Default: 4.0.
        qkv_bias: learn a bias for the query / key / value projection. Default: True.
        patch_norm: LayerNorm after the patch embedding and inside the patch merging. Default: True.
        drop_rate: dropout after the position embedding, the attention projection and inside the MLP.
            Default: 0.0.
        attn_drop_rate: dropout on the attention weights. Default: 0.0.
        drop_path_rate: stochastic depth; the rate rises linearly from 0 at the first block to this value at the
            last. Default: 0.1.
        out_indices: stages whose maps are returned, increasing. Stages after the last of them are not computed
            (their parameters then get no gradient). Default: (0, 1, 2, 3).
        use_abs_pos_embed: add a learned absolute position embedding after the patch embedding, resized to the
            input's token grid. Default: False.
        frozen_stages: parameters frozen (``requires_grad=False`` from construction on, modules kept in eval mode
            through ``train()``), with mmdet's meaning:
            ``-1`` nothing; ``0`` the patch embedding (projection and its norm) and the absolute position embedding;
            ``k >= 1`` additionally stages ``0 .. k-1`` -- their blocks *and* the patch merging that ends each of
            them (so ``k`` also freezes the layer producing stage ``k``'s input) -- and the output norms
            ``norm0 .. norm{k-1}``; ``num_stages`` (4) freezes everything. Default: -1.
        with_cp: gradient checkpointing of every block: same outputs and gradients, less memory, more time.
            Default: False.
        compile: ``True`` or a dict of ``torch.compile`` options: compile this backbone alone, in place (one graph,
            no break; automatic dynamic shapes across input sizes). See :func:`compile_in_place`. Default: False.
        float32_residual: under autocast, keep the residual stream (the tokens each block adds its attention and
            MLP outputs to) in float32: the branches still run in bfloat16 / float16 and are added to a float32
            stream (each stage's input is cast to float32). Without it the stream is rounded to bfloat16 at every
            add of all blocks, as in timm's and mmdet's Swin. Nothing changes in float32. Default: False.
        init_cfg: ``None`` (random initialisation: truncated normal std 0.02 for linear layers, the bias tables and
            the absolute embedding; ones / zeros for LayerNorms) or ``dict(type='Pretrained',
            checkpoint=PATH_OR_URL, strict=True)`` (see :meth:`PyramidBackbone.init_weights`). The layout (official
            Microsoft, timm, mmdet / mmseg detector or segmentor, mmpretrain, mmswin) is detected, converted to
            mmswin's, bias tables and the absolute embedding are resized to this model, and the load is strict:
            every key not filled and every key not used is reported in one :class:`CheckpointMismatchError`. Only
            ImageNet layouts may lack the output norms: those keep their identity initialisation, except that the
            final ``norm`` of official / timm checkpoints (the norm on the last stage's output) fills ``norm3``, as
            mmpretrain stores it. Classification heads are dropped. ``strict=False`` loads the fitting keys and
            logs the rest. Default: None.
        **mmdet_arguments: the argument names of mmdet's / mmseg's ``SwinTransformer``, so that their configs work
            with only ``type`` changed (each warns once, deprecated): ``embed_dims``, ``depths``, ``num_heads``
            (they form ``arch``), ``pretrained`` (a path: ``init_cfg`` Pretrained), ``convert_weights`` (ignored:
            every layout is converted), and ``strides``, ``qk_scale``, ``act_cfg``, ``norm_cfg``, accepted with
            their default values only (``(patch_size, 2, 2, 2)``, None, GELU, LN).

    Attributes:
        out_channels: channels of each output, aligned with the returned tuple.
        out_strides: stride of each output w.r.t. the input, aligned with the returned tuple.
        feature_info: timm-style ``dict(num_chs, reduction, module)`` for every stage (returned or not).
        num_features: channels of every stage.
    """

    family = 'swin'

    def __init__(self, arch: str | Mapping[str, Any] = 'tiny', pretrain_img_size: int | Sequence[int] = 224,
                 in_channels: int = 3, patch_size: int = 4, window_size: int = 7, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, patch_norm: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3), use_abs_pos_embed: bool = False,
                 frozen_stages: int = -1, with_cp: bool = False, compile: bool | dict = False,
                 float32_residual: bool = False, init_cfg: dict | None = None, **mmdet_arguments: Any) -> None:
        arch, init_cfg = _from_mmdet_arguments(mmdet_arguments, arch, init_cfg, patch_size)
        embed_dims, depths, num_heads = resolve_swin_arch(arch)
        num_stages = len(depths)
        pretrain_hw = _pair(pretrain_img_size, 'pretrain_img_size')
        for name, value in (('in_channels', in_channels), ('patch_size', patch_size), ('window_size', window_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        if not mlp_ratio > 0:
            raise ValueError(f'mlp_ratio must be positive, got {mlp_ratio!r}')
        out_indices = check_pyramid_arguments(
            'SwinTransformer', num_stages, out_indices, frozen_stages,
            '-1: nothing, 0: patch embedding, k: also stages 0..k-1', drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        super().__init__(init_cfg=init_cfg, float32_residual=float32_residual)

        self.arch = dict(embed_dims=embed_dims, depths=depths, num_heads=num_heads)
        self.num_stages = num_stages
        self.window_size = window_size
        self.patch_size = patch_size
        self.pretrain_hw = pretrain_hw
        self.out_indices = out_indices
        self.use_abs_pos_embed = use_abs_pos_embed
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp

        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size, patch_norm)
        self.pretrain_grid = (pretrain_hw[0] // patch_size, pretrain_hw[1] // patch_size)
        if use_abs_pos_embed:
            self.absolute_pos_embed = nn.Parameter(
                torch.zeros(1, self.pretrain_grid[0] * self.pretrain_grid[1], embed_dims))
        self.drop_after_pos = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

        rates = drop_path_rates(drop_path_rate, depths)
        self.num_features = tuple(embed_dims * 2 ** i for i in range(num_stages))
        self.stages = nn.ModuleList()
        for i in range(num_stages):
            self.stages.append(SwinStage(
                self.num_features[i], depths[i], num_heads[i], window_size, mlp_ratio, qkv_bias, drop_rate,
                attn_drop_rate, rates[i], i < num_stages - 1, patch_norm, with_cp))
        for i in out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

        self._set_levels(self.num_features, [patch_size * 2 ** i for i in range(num_stages)],
                         [f'stages.{i}' for i in range(num_stages)])
        self._finish_init(compile)

    # -- freezing -------------------------------------------------------------------------------------------------
    def _frozen_modules(self) -> list[nn.Module]:
        return self._stem_and_stages_frozen([self.patch_embed, self.drop_after_pos], self.stages)

    def _frozen_parameters(self) -> Iterator[nn.Parameter]:
        yield from super()._frozen_parameters()
        if self.frozen_stages >= 0 and self.use_abs_pos_embed:
            yield self.absolute_pos_embed

    # -- weights --------------------------------------------------------------------------------------------------
    def _init_default_weights(self) -> None:
        if self.use_abs_pos_embed:
            trunc_normal_(self.absolute_pos_embed, std=0.02)
        init_linears_and_norms(self)
        for module in self.modules():
            if isinstance(module, WindowMSA):
                trunc_normal_(module.relative_position_bias_table, std=0.02)

    def convert_checkpoint(self, state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str, list[str]]:
        """Convert a backbone state dict of any known layout to this model (pure: the input is not modified).

        Returns:
            The converted state dict (bias tables and the absolute embedding resized to this model; output norms of
            stages this model does not return dropped), the detected layout, and the glob patterns of keys the
            layout is documented not to carry.
        """
        layout = detect_swin_layout(state_dict)
        state = convert_swin_state_dict(state_dict, layout)
        own = self.state_dict()
        for key in list(state):
            if key.endswith('relative_position_bias_table') and key in own:
                want, got = own[key].shape, state[key].shape
                if got != want and got[1] == want[1]:
                    state[key] = resize_relative_position_bias_table(state[key], self.window_size)
        if 'absolute_pos_embed' in state and self.use_abs_pos_embed:
            pos = state['absolute_pos_embed']
            if pos.dim() in (3, 4) and pos.shape[0] == 1 and self.num_features[0] in (pos.shape[-1], pos.shape[1]):
                if pos.dim() == 4 or math.isqrt(pos.shape[1]) ** 2 == pos.shape[1]:
                    state['absolute_pos_embed'] = resize_abs_pos_embed(pos, self.pretrain_grid)
        allowed = split_output_norms(state, own, self.num_stages, self.out_indices)
        found, own = describe_swin_state_dict(state), describe_swin_state_dict(self.state_dict())
        description = f'{layout} layout, {found}' + ('' if found == own else f' -- the model is {own}')
        return state, description, allowed

    # -- contract -------------------------------------------------------------------------------------------------
    def describe_arch(self) -> str:
        return describe_swin_state_dict(self.state_dict())

    def exportable_side(self, side: int) -> bool:
        size = -(-side // self.patch_size)
        for _ in range(self.out_indices[-1] + 1):  # the stages computed
            if size <= self.window_size:  # one window along this side
                return False
            size = -(-size // 2)
        return True

    @property
    def export_rule(self) -> str:
        return (f'every Swin stage computed must hold at least two {self.window_size}x{self.window_size} windows '
                f'along each side (patch {self.patch_size}, {self.out_indices[-1] + 1} stages)')

    # -- forward --------------------------------------------------------------------------------------------------
    def _abs_pos_embed(self, hw: tuple[int, int]) -> Tensor:
        if hw == self.pretrain_grid:
            return self.absolute_pos_embed
        return resize_abs_pos_embed(self.absolute_pos_embed, hw, self.pretrain_grid)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """``(B, in_channels, H, W)`` -> tuple of ``(B, C_i, H_i, W_i)`` maps for ``out_indices``."""
        if x.dim() != 4:
            raise ValueError(f'SwinTransformer expects (B, C, H, W) images, got a tensor of shape {tuple(x.shape)}')
        x, hw = self.patch_embed(x)  # B, H/4*W/4, C
        if self.use_abs_pos_embed:
            x = x + self._abs_pos_embed(hw)
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages[:self.out_indices[-1] + 1]):
            x = stage(self._residual_stream(x), hw)  # B, H_i*W_i, C_i
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.view(-1, hw[0], hw[1], out.shape[-1]).permute(0, 3, 1, 2).contiguous())  # B, C, H, W
            if i < self.out_indices[-1]:
                x, hw = stage.downsample(x, hw)
        return tuple(outs)


_MMDET_DEFAULTS = dict(qk_scale=None, act_cfg=dict(type='GELU'), norm_cfg=dict(type='LN'))
_MMDET_RENAMES = dict(embed_dims="arch['embed_dims']", depths="arch['depths']", num_heads="arch['num_heads']",
                      pretrained="init_cfg=dict(type='Pretrained', checkpoint=...)", convert_weights='(not needed)',
                      strides='patch_size (then 2 per merging; the number of stages follows depths)',
                      qk_scale='(default only)',
                      act_cfg='(GELU only)', norm_cfg='(LN only)')


def _from_mmdet_arguments(kwargs: dict[str, Any], arch: str | Mapping[str, Any], init_cfg: Any,
                          patch_size: int) -> tuple[str | Mapping[str, Any], Any]:
    """mmdet's / mmseg's Swin arguments -> ``(arch, init_cfg)``; see ``**mmdet_arguments`` of SwinTransformer.

    Raises:
        TypeError: an argument that is neither ours nor mmdet's.
        ValueError: an mmdet argument with a value this implementation does not provide.
    """
    if not kwargs:
        return arch, init_cfg
    legacy = dict(kwargs)
    pop_renamed_arguments('SwinTransformer', dict(kwargs), _MMDET_RENAMES,
                          hint="mmdet's / mmseg's Swin arguments map to arch=dict(embed_dims=..., depths=..., "
                               "num_heads=...) and init_cfg=dict(type='Pretrained', checkpoint=...); weights of "
                               'every layout are converted without convert_weights')
    arch_keys = {'embed_dims', 'depths', 'num_heads'} & set(legacy)
    if arch_keys:
        base = dict(SWIN_ARCHS[arch.lower()]) if isinstance(arch, str) and arch.lower() in SWIN_ARCHS else dict(arch)
        arch = {**base, **{k: legacy[k] for k in arch_keys}}
    for name, default in _MMDET_DEFAULTS.items():
        value = legacy.get(name, default)
        same = value == default if default is None else isinstance(value, Mapping) and value.get('type') == \
            default['type'] and value.get('requires_grad', True)
        if not same:
            raise ValueError(f'SwinTransformer: {name}={value!r} is not supported (only {default!r})')
    if 'strides' in legacy:  # one entry per stage: the patch size, then 2 for every merging (4 or more stages)
        expected = (patch_size,) + (2,) * (len(resolve_swin_arch(arch)[1]) - 1)
        if tuple(legacy['strides']) != expected:
            raise ValueError(f'SwinTransformer: strides={legacy["strides"]!r}; only (patch_size, 2, ..., 2), one '
                             f'entry per stage, is supported: {expected} for this arch')
    if legacy.get('pretrained') is not None:
        if init_cfg is not None:
            raise ValueError('SwinTransformer: give either pretrained= or init_cfg=, not both')
        init_cfg = dict(type='Pretrained', checkpoint=legacy['pretrained'])
    return arch, init_cfg


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint layouts
# ----------------------------------------------------------------------------------------------------------------
SWIN_LAYOUTS = {
    'official': 'Microsoft Swin-Transformer release (layers.*, merging at the end of stage i, position-major order)',
    'timm': 'timm swin_* (layers.*, merging at the start of stage i+1, position-major order)',
    'mmdet': 'mmdet / mmseg detector or segmentor, or mmswin (stages.*, Unfold order, output norms norm0..)',
    'mmpretrain': 'ImageNet classifier in stages naming: mmpretrain, or converted by mmdet or by mmswin '
                  '(stages.*, Unfold order, final norm only)',
}
_DERIVED = re.compile(r'(^|\.)(relative_position_index|attn_mask|relative_coords_table)$')


def official_to_unfold_order(value: Tensor) -> Tensor:
    """Reorder a patch-merging reduction weight ``(O, 4C)`` or norm vector ``(4C,)`` from the official / timm
    position-major order ``[x(0,0) | x(1,0) | x(0,1) | x(1,1)]`` to ``nn.Unfold``'s channel-major order."""
    if value.dim() == 2:
        out, in4 = value.shape
        return value.reshape(out, 4, in4 // 4)[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(out, in4)
    return value.reshape(4, -1)[[0, 2, 1, 3]].transpose(0, 1).reshape(-1)


def unfold_to_official_order(value: Tensor) -> Tensor:
    """Inverse of :func:`official_to_unfold_order`."""
    if value.dim() == 2:
        out, in4 = value.shape
        return value.reshape(out, in4 // 4, 4)[:, :, [0, 2, 1, 3]].transpose(1, 2).reshape(out, in4)
    return value.reshape(-1, 4)[:, [0, 2, 1, 3]].transpose(0, 1).reshape(-1)


def detect_swin_layout(state_dict: Mapping[str, Any]) -> str:
    """Name the layout of a Swin backbone state dict (``backbone.`` prefix already stripped).

    Returns:
        One of ``'official'``, ``'timm'``, ``'mmdet'`` (also mmseg and mmswin), ``'mmpretrain'``.

    Raises:
        CheckpointMismatchError: no Swin Transformer layout fits; the message shows some of the keys found.
    """
    keys = [re.sub(r'^layers_(\d+)\.', r'layers.\1.', k) for k in state_dict]
    if any(re.match(r'stages\.\d+\.blocks\.\d+\.attn\.w_msa\.qkv\.weight$', k) for k in keys):
        level_norms = {int(m.group(1)) for k in keys if (m := re.match(r'norm(\d+)\.', k))}
        last = max(int(k.split('.')[1]) for k in keys if k.startswith('stages.'))
        return 'mmdet' if level_norms - {last} else 'mmpretrain'
    if any(re.match(r'layers\.\d+\.blocks\.\d+\.attn\.qkv\.weight$', k) for k in keys):
        merging = {int(m.group(1)) for k in keys if (m := re.match(r'layers\.(\d+)\.downsample\.', k))}
        return 'timm' if merging and 0 not in merging else 'official'
    sample = ', '.join(list(state_dict)[:6])
    raise CheckpointMismatchError("the checkpoint is not of a Swin Transformer in any known layout (official "
                                  "'layers.0.blocks.0.attn.qkv.weight', timm, mmdet / mmseg / mmswin / mmpretrain "
                                  "'stages.0.blocks.0.attn.w_msa.qkv.weight'); its "
                                  f"{len(state_dict)} keys begin with: {sample}")


def describe_swin_state_dict(state_dict: Mapping[str, Tensor]) -> str:
    """The arch a Swin state dict in mmswin's layout holds, in words: ``"arch 'base' (embed_dims 128, depths
    (2, 2, 18, 2), heads (4, 8, 16, 32), window 7)"`` (the preset name when one fits)."""
    embed = state_dict.get('patch_embed.projection.weight')
    blocks: dict[int, set[int]] = {}
    heads: dict[int, int] = {}
    window = None
    for key, value in state_dict.items():
        m = re.match(r'stages\.(\d+)\.blocks\.(\d+)\.attn\.w_msa\.relative_position_bias_table$', key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            heads[int(m.group(1))] = value.shape[1]
            window = (math.isqrt(value.shape[0]) + 1) // 2
    depths = tuple(len(blocks[i]) for i in sorted(blocks))
    arch = dict(embed_dims=embed.shape[0] if embed is not None else None, depths=depths,
                num_heads=tuple(heads[i] for i in sorted(heads)))
    name = next((n for n, a in SWIN_ARCHS.items() if a == arch), None)
    text = f'embed_dims {arch["embed_dims"]}, depths {depths}, heads {arch["num_heads"]}, window {window}'
    return f"arch '{name}' ({text})" if name else f'({text})'


def convert_swin_state_dict(state_dict: Mapping[str, Tensor], layout: str | None = None) -> dict[str, Tensor]:
    """Convert a Swin backbone state dict of any known layout to mmswin's (= mmdet's key names and merging order).

    Pure: returns a new dict. Classification heads and derived buffers (``relative_position_index``,
    ``attn_mask``) are dropped; the final ``norm`` of ImageNet layouts becomes the last stage's output norm
    (``norm3`` for four stages). Keys of no known role are kept, so that a strict load reports them.

    Args:
        state_dict: backbone keys (``backbone.`` already stripped, see ``read_state_dict``).
        layout: as returned by :func:`detect_swin_layout`; detected when None.
    """
    layout = layout or detect_swin_layout(state_dict)
    if layout not in SWIN_LAYOUTS:
        raise ValueError(f'layout={layout!r}; valid layouts are {", ".join(SWIN_LAYOUTS)}')
    state = {re.sub(r'^layers_(\d+)\.', r'layers.\1.', k): v for k, v in state_dict.items()}
    stage_ids = [int(m.group(1)) for k in state if (m := re.match(r'(?:layers|stages)\.(\d+)\.', k))]
    last = max(stage_ids, default=0)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if _DERIVED.search(key) or key.startswith('head.') or key.startswith('head_'):
            continue
        new = key
        if layout in ('official', 'timm'):
            new = new.replace('patch_embed.proj.', 'patch_embed.projection.')
            new = re.sub(r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.', r'stages.\1.blocks.\2.attn.w_msa.', new)
            new = new.replace('.mlp.fc1.', '.ffn.layers.0.0.').replace('.mlp.fc2.', '.ffn.layers.1.')
            m = re.match(r'layers\.(\d+)\.downsample\.(reduction|norm)\.(weight|bias)$', new)
            if m:
                stage = int(m.group(1)) - (1 if layout == 'timm' else 0)
                new = f'stages.{stage}.downsample.{m.group(2)}.{m.group(3)}'
                value = official_to_unfold_order(value)
            new = re.sub(r'^layers\.', 'stages.', new)
        if new.startswith('norm.'):
            new = f'norm{last}.' + new[5:]
        out[new] = value
    return out
