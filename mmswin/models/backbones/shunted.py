"""Shunted Transformer (Ren et al., "Shunted Self-Attention via Multi-Scale Token Aggregation", CVPR 2022) as a
dense-prediction backbone for mmdet / mmseg.

The network computes the official release's function on the official weights: the module and parameter names are
the released checkpoints' (``patch_embed1.conv.0.weight``, ``block3.5.attn.kv1.weight``, ``norm4.bias``), so an
ImageNet file loads with nothing but its classifier ``head.*`` dropped, and the four pyramid levels are the outputs
of the official per-stage norms ``norm1..norm4``. Differences from the official code are in speed only: both token
aggregation branches and the last stage use ``F.scaled_dot_product_attention`` (see :func:`attention`) and the head
split is done with views.

Layout of this file: typed helpers -> attention -> MLP -> block -> embeddings -> model -> checkpoint conversion ->
arch table.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from timm.layers import DropPath
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmswin.models.backbones.base import (PyramidBackbone, check_pyramid_arguments, drop_path_rates,
                                          pop_renamed_arguments)
from mmswin.models.pretrained import CheckpointMismatchError
from mmswin.registry import MODELS

__all__ = ['ShuntedTransformer', 'ShuntedAttention', 'ShuntedMlp', 'ShuntedBlock', 'ShuntedStem', 'OverlapPatchEmbed',
           'convert_shunted_checkpoint', 'infer_shunted_arch', 'SHUNTED_ARCHS']

HW = tuple[int, int]

MIN_INPUT_SIZE = 32  # the smallest input whose every aggregation branch keeps at least one token


# ----------------------------------------------------------------------------------------------------------------
# typed helpers
# ----------------------------------------------------------------------------------------------------------------
def tokens_to_map(x: Tensor, hw: HW) -> Tensor:
    """``(B, H*W, C)`` tokens -> ``(B, C, H, W)`` map, as a view (channels-last strides, no copy)."""
    B, N, C = x.shape
    return x.transpose(1, 2).view(B, C, hw[0], hw[1])  # B, C, H, W


def map_to_tokens(x: Tensor) -> tuple[Tensor, HW]:
    """``(B, C, H, W)`` map -> ``(B, H*W, C)`` tokens (a view when ``x`` has channels-last strides) and ``(H, W)``."""
    B, C, H, W = x.shape
    return x.flatten(2).transpose(1, 2), (H, W)  # B, H*W, C


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(B, N, heads*d)`` -> ``(B, heads, N, d)`` as a strided view; channel ``head*d + i`` is head ``head``."""
    B, N, C = x.shape
    return x.view(B, N, heads, C // heads).transpose(1, 2)  # B, heads, N, d


def merge_heads(x: Tensor) -> Tensor:
    """``(B, heads, N, d)`` -> ``(B, N, heads*d)``."""
    B, h, N, d = x.shape
    return x.transpose(1, 2).reshape(B, N, h * d)  # B, N, C


def _onednn_conv_gelu_available() -> bool:
    """Whether this torch has oneDNN's fused convolution + pointwise op (x86 and ARM builds with mkldnn)."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_convolution_pointwise')
    except (AttributeError, RuntimeError):
        return False


_ONEDNN_CONV_GELU = _onednn_conv_gelu_available()


def _fused_cpu_inference(x: Tensor) -> bool:
    """oneDNN's fused convolution + GELU applies: float32 CPU inference without autocast, run eagerly (not compiled,
    exported or traced, whose graphs must stay portable and which fuse by themselves)."""
    return (_ONEDNN_CONV_GELU and x.device.type == 'cpu' and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and torch.backends.mkldnn.enabled and not torch.is_autocast_enabled('cpu')
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())  # is_compiling: export too


def plus_depthwise_conv(x: Tensor, hw: HW, conv: nn.Conv2d, gelu: bool = False) -> Tensor:
    """``x + conv(x)`` (``gelu(x + conv(x))`` with ``gelu``) for ``(B, H*W, C)`` tokens and a ``k x k`` depth-wise
    ``conv`` (stride 1, padding ``k // 2``) -> ``(B, H*W, C)``.

    In float32 it is one convolution whose centre taps are raised by one: the same sum without a separate add over
    the ``(B, H*W, C)`` tensor, in forward and backward -- the largest elementwise pass of Shunted's blocks. In
    float32 CPU inference the GELU runs inside oneDNN's convolution too (bit-identical, one pass fewer). Under
    autocast it stays an explicit add: a centre tap of ``1 + w`` in bfloat16 would lose ``w``'s low bits.
    """
    if torch.is_autocast_enabled(x.device.type) or x.dtype != torch.float32:
        y = x + map_to_tokens(conv(tokens_to_map(x, hw)))[0]
        return F.gelu(y) if gelu else y
    k = conv.kernel_size[0] // 2
    weight = conv.weight + F.pad(conv.weight.new_ones(conv.weight.shape[0], 1, 1, 1), (k, k, k, k))
    if gelu and _fused_cpu_inference(x):
        out = torch.ops.mkldnn._convolution_pointwise(tokens_to_map(x, hw), weight, conv.bias, list(conv.padding),
                                                      [1, 1], [1, 1], conv.groups, 'gelu', [None], 'none')
        return map_to_tokens(out)[0]  # B, H*W, C
    out = map_to_tokens(F.conv2d(tokens_to_map(x, hw), weight, conv.bias, 1, conv.padding, 1, conv.groups))[0]
    return F.gelu(out) if gelu else out  # B, H*W, C


def attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """``softmax(q k^T / sqrt(d)) v`` for ``(B, heads, N, d)`` queries and ``(B, heads, M, d)`` keys / values.

    ``F.scaled_dot_product_attention`` (fused kernels, no ``N x M`` matrix kept), except where the explicit
    products measured faster: float32 CUDA tensors when TF32 matrix products are allowed
    (``torch.backends.cuda.matmul.allow_tf32``; the fused float32 kernels do not use TF32), and bfloat16 on the CPU
    (Shunted-S, batch 2 at 384, 1 thread: training step 0.81x, eval 0.94x of SDPA's time).
    """
    if q.is_cuda and q.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return explicit_attention(q, k, v, dropout_p)
    if not q.is_cuda and q.dtype == torch.bfloat16:
        return explicit_attention(q, k, v, dropout_p)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """:func:`attention` as two matrix products and a softmax (the ``(B, heads, N, M)`` weights are materialised)."""
    attn = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1)).softmax(dim=-1)  # B, heads, N, M
    return torch.matmul(F.dropout(attn, dropout_p) if dropout_p else attn, v)  # B, heads, N, d


def _official_init(m: nn.Module) -> None:
    """The official initialisation: normal (std 0.02) linears, unit LayerNorms, He-normal (fan-out) convs.

    The official code calls timm's ``trunc_normal_(w, std=.02)``, whose bounds are the default absolute +-2, i.e.
    100 standard deviations: the distribution is a plain normal, drawn here without the slow ``erfinv`` pass.
    """
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------------------------
# attention
# ----------------------------------------------------------------------------------------------------------------
class ShuntedAttention(nn.Module):
    """Shunted self-attention.

    With ``sr_ratio > 1`` the keys and values come from two token aggregations of the input map -- strided convs
    ``sr1`` (kernel = stride = ``sr_ratio``) and ``sr2`` (``sr_ratio // 2``), each followed by LayerNorm (eps 1e-5)
    and GELU. Each branch's ``kv`` linear gives ``[k | v]`` of ``C/2`` channels, ``heads/2`` heads of ``d = C/heads``;
    ``v`` is enhanced by a 3x3 depth-wise ``local_conv`` over its ``(C/2, H/r, W/r)`` map *before* attention. The
    first ``heads/2`` query heads attend to branch 1, the others to branch 2.
    With ``sr_ratio == 1`` a single ``kv`` linear serves all heads and ``local_conv(v)`` is added *after* attention.

    Args:
        embed_dims: channels ``C``.
        num_heads: heads; even when ``sr_ratio > 1``.
        sr_ratio: spatial reduction of branch 1 (1, or an even number). Default: 1.
        qkv_bias: bias of the ``q`` and ``kv`` linears. Default: True.
        attn_drop_rate: dropout on the attention probabilities. Default: 0.
        proj_drop_rate: dropout after ``proj``. Default: 0.
    """

    def __init__(self, embed_dims: int, num_heads: int, sr_ratio: int = 1, qkv_bias: bool = True,
                 attn_drop_rate: float = 0.0, proj_drop_rate: float = 0.0) -> None:
        super().__init__()
        dim = embed_dims
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.sr_ratio = sr_ratio
        self.attn_drop_rate = attn_drop_rate
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        if sr_ratio > 1:
            self.act = nn.GELU()
            self.sr1 = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm1 = nn.LayerNorm(dim, eps=1e-5)
            self.sr2 = nn.Conv2d(dim, dim, kernel_size=sr_ratio // 2, stride=sr_ratio // 2)
            self.norm2 = nn.LayerNorm(dim, eps=1e-5)
            self.kv1 = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv2 = nn.Linear(dim, dim, bias=qkv_bias)
            self.local_conv1 = nn.Conv2d(dim // 2, dim // 2, 3, padding=1, groups=dim // 2)
            self.local_conv2 = nn.Conv2d(dim // 2, dim // 2, 3, padding=1, groups=dim // 2)
        else:
            self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
            self.local_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def _aggregated_branch(self, q: Tensor, x_map: Tensor, sr: nn.Conv2d, norm: nn.LayerNorm, kv: nn.Linear,
                           local_conv: nn.Conv2d) -> Tensor:
        """One aggregation branch: ``q (B, heads/2, N, d)``, ``x_map (B, C, H, W)`` -> ``(B, N, heads/2, d)``."""
        half = self.embed_dims // 2
        xb, hw_b = map_to_tokens(sr(x_map))  # B, Nb, C;  Hb = floor(H / r)
        k, v = kv(self.act(norm(xb))).split(half, dim=-1)  # B, Nb, C/2 each
        v = plus_depthwise_conv(v, hw_b, local_conv)  # v + local_conv(v): B, Nb, C/2
        heads = self.num_heads // 2
        out = attention(q, split_heads(k, heads), split_heads(v, heads),  # B, heads/2, N, d
                        dropout_p=self.attn_drop_rate if self.training else 0.0)
        return out.transpose(1, 2)  # B, N, heads/2, d

    def forward(self, x: Tensor, hw: HW) -> Tensor:
        """``x``: ``(B, H*W, C)`` tokens of an ``hw = (H, W)`` map -> ``(B, H*W, C)``."""
        B, N, C = x.shape
        q = split_heads(self.q(x), self.num_heads)  # B, heads, N, d
        if self.sr_ratio > 1:
            x_map = tokens_to_map(x, hw)  # B, C, H, W
            h2 = self.num_heads // 2
            out1 = self._aggregated_branch(q[:, :h2], x_map, self.sr1, self.norm1, self.kv1, self.local_conv1)
            out2 = self._aggregated_branch(q[:, h2:], x_map, self.sr2, self.norm2, self.kv2, self.local_conv2)
            out = torch.cat([out1, out2], dim=2).view(B, N, C)  # B, N, heads, d -> B, N, C
        else:
            k, v = self.kv(x).split(C, dim=-1)  # B, N, C each
            out = attention(q, split_heads(k, self.num_heads), split_heads(v, self.num_heads),  # B, heads, N, d
                            dropout_p=self.attn_drop_rate if self.training else 0.0)
            local = map_to_tokens(self.local_conv(tokens_to_map(v, hw)))[0]  # B, N, C
            out = merge_heads(out) + local
        return self.proj_drop(self.proj(out))


# ----------------------------------------------------------------------------------------------------------------
# MLP
# ----------------------------------------------------------------------------------------------------------------
class DWConv(nn.Module):
    """3x3 depth-wise conv over a token map (kept as a module so the checkpoint key is ``mlp.dwconv.dwconv``)."""

    def __init__(self, embed_dims: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)

    def forward(self, x: Tensor, hw: HW) -> Tensor:
        return map_to_tokens(self.dwconv(tokens_to_map(x, hw)))[0]  # B, N, C


class ShuntedMlp(nn.Module):
    """``fc1 -> GELU(y + dwconv(y)) -> fc2`` with dropout after the activation and after ``fc2``.

    Args:
        embed_dims: input and output channels.
        hidden_dims: channels of ``fc1``'s output.
        drop_rate: dropout rate. Default: 0.
    """

    def __init__(self, embed_dims: int, hidden_dims: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.dwconv = DWConv(hidden_dims)
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: Tensor, hw: HW) -> Tensor:
        y = self.fc1(x)  # B, N, hidden
        y = self.drop(plus_depthwise_conv(y, hw, self.dwconv.dwconv, gelu=True))  # GELU(y + dwconv(y))
        return self.drop(self.fc2(y))


# ----------------------------------------------------------------------------------------------------------------
# block
# ----------------------------------------------------------------------------------------------------------------
class ShuntedBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, LayerNorms with eps 1e-6, stochastic depth
    on both branches.

    Args:
        embed_dims: channels.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP over ``embed_dims``.
        sr_ratio: see :class:`ShuntedAttention`.
        qkv_bias: bias of ``q`` / ``kv``. Default: True.
        drop_rate: dropout after ``proj`` and in the MLP. Default: 0.
        attn_drop_rate: dropout on attention probabilities. Default: 0.
        drop_path_rate: stochastic depth rate. Default: 0.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: int, sr_ratio: int, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = ShuntedAttention(embed_dims, num_heads, sr_ratio, qkv_bias, attn_drop_rate, drop_rate)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.mlp = ShuntedMlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate)

    def forward(self, x: Tensor, hw: HW) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))


# ----------------------------------------------------------------------------------------------------------------
# embeddings
# ----------------------------------------------------------------------------------------------------------------
class ShuntedStem(nn.Module):
    """``patch_embed1``: 7x7/2 conv-norm-ReLU, ``num_conv`` x (3x3 conv-norm-ReLU), 2x2/2 conv with bias, then
    LayerNorm (eps 1e-5) over the tokens. ``conv`` indices follow the official ``nn.Sequential``.

    Args:
        num_conv: extra 3x3 convs (0 / 1 / 2 for T / S / B).
        in_channels: image channels. Default: 3.
        embed_dims: output channels. Default: 64.
        norm_cfg: the stem's norm layers, built by mmcv's ``build_norm_layer``. Default: ``dict(type='BN')``.
    """

    def __init__(self, num_conv: int, in_channels: int = 3, embed_dims: int = 64,
                 norm_cfg: dict | None = None) -> None:
        super().__init__()
        dim = embed_dims
        norm_cfg = dict(type='BN', requires_grad=True) if norm_cfg is None else norm_cfg
        layers: list[nn.Module] = []
        for i in range(num_conv + 1):
            layers += [nn.Conv2d(in_channels if i == 0 else dim, dim, 7 if i == 0 else 3, stride=2 if i == 0 else 1,
                                 padding=3 if i == 0 else 1, bias=False),
                       build_norm_layer(norm_cfg, dim)[1], nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(dim, dim, kernel_size=2, stride=2))
        self.conv = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: Tensor) -> tuple[Tensor, HW]:
        x, hw = map_to_tokens(self.conv(x))  # B, H/4*W/4, C
        return self.norm(x), hw


class OverlapPatchEmbed(nn.Module):
    """Stages 2-4: ``proj`` 3x3/2 conv (padding 1, bias), then LayerNorm (eps 1e-5) over the tokens."""

    def __init__(self, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dims, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(embed_dims, eps=1e-5)

    def forward(self, x: Tensor) -> tuple[Tensor, HW]:
        x, hw = map_to_tokens(self.proj(x))  # B, H/2*W/2, C
        return self.norm(x), hw


# ----------------------------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------------------------
@MODELS.register_module()
class ShuntedTransformer(PyramidBackbone):
    """Shunted Transformer backbone: four NCHW feature maps of strides 4 / 8 / 16 / 32.

    Level ``i`` is the output of the official stage norm ``norm{i+1}`` (64 / 128 / 256 / 512 channels for the paper's
    archs). Any input of at least 32x32 is accepted; sizes not divisible by 32 are rounded down exactly as the
    official network rounds them (no padding): a 97x131 input gives 24x33, 12x17, 6x9 and 3x5 maps.

    Args:
        arch: ``'tiny'`` / ``'small'`` / ``'base'`` (``'t'`` / ``'s'`` / ``'b'``), the paper's T / S / B; or a dict
            with ``depths`` and ``num_conv`` (extra stem convs) and optionally ``embed_dims``, ``num_heads``,
            ``mlp_ratios``, ``sr_ratios`` (default the paper's). Default: ``'tiny'``.
        in_channels: image channels. Default: 3.
        out_indices: levels to return, increasing. Default: ``(0, 1, 2, 3)``.
        qkv_bias: bias of the ``q`` / ``kv`` linears. Default: True.
        drop_rate: dropout after attention projections and in the MLPs. Default: 0.
        attn_drop_rate: dropout on attention probabilities. Default: 0.
        drop_path_rate: stochastic depth, rising linearly over all blocks from 0 to this. Default: 0.1.
        norm_cfg: norm layers of the convolutional stem (``patch_embed1``), built by mmcv's ``build_norm_layer``:
            ``dict(type='SyncBN')`` for synchronized statistics. Default: ``dict(type='BN', requires_grad=True)``.
        norm_eval: keep the stem's batch-norm layers in eval mode (running statistics frozen) during training, as
            small detection batches need. Their affine parameters still train unless frozen. Default: True.
        frozen_stages: parts whose parameters never require grad and which stay in eval mode: ``-1`` nothing;
            ``0`` the stem ``patch_embed1``; ``k`` in 1..4 the patch embeddings, blocks and output norms of stages
            1..k (``patch_embed1..k``, ``block1..k``, ``norm1..k``). Default: -1.
        with_cp: gradient checkpointing of every block (saves memory, costs a recomputation). Default: False.
        compile: ``True`` or a dict of ``torch.compile`` options: compile this backbone alone, in place (see
            :func:`~mmswin.models.backbones.base.compile_in_place`). Default: False.
        float32_residual: under autocast, keep the residual stream in float32 (each stage's input is cast to
            float32; the blocks' low-precision branch outputs are added to it). Nothing changes in float32.
            Default: False.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads an official ImageNet file (state dict
            at the top level or under ``model`` / ``state_dict``; ``head.*`` dropped) or an mmdet / mmseg checkpoint
            of this backbone (``backbone.`` prefix) through :meth:`PyramidBackbone.init_weights`; every missing or
            unused key is an error unless ``strict=False`` is added. ``None``: the official random initialisation.
            Default: None.
        in_chans: the official code's name of ``in_channels`` (deprecated).
    """

    family = 'shunted'
    min_input_size = MIN_INPUT_SIZE

    def __init__(self, arch: str | dict = 'tiny', in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, norm_cfg: dict | None = None,
                 norm_eval: bool = True, frozen_stages: int = -1, with_cp: bool = False, compile: bool | dict = False,
                 float32_residual: bool = False, init_cfg: dict | None = None, **renamed: Any) -> None:
        in_channels = pop_renamed_arguments('ShuntedTransformer', renamed, {'in_chans': 'in_channels'}).get(
            'in_channels', in_channels)
        super().__init__(init_cfg=init_cfg, float32_residual=float32_residual)
        settings = _resolve_arch(arch)
        self.arch_settings = settings
        self.depths: tuple[int, ...] = settings['depths']
        self.embed_dims: tuple[int, ...] = settings['embed_dims']
        self.num_conv: int = settings['num_conv']
        self.num_stages = 4
        self.out_indices = check_pyramid_arguments(
            'ShuntedTransformer', self.num_stages, out_indices, frozen_stages,
            '-1 nothing, 0 the stem, k stages 1..k', drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

        rates = drop_path_rates(drop_path_rate, self.depths)
        for i in range(4):
            dim = self.embed_dims[i]
            embed = ShuntedStem(self.num_conv, in_channels, dim, norm_cfg) if i == 0 else \
                OverlapPatchEmbed(self.embed_dims[i - 1], dim)
            blocks = nn.ModuleList(
                ShuntedBlock(dim, settings['num_heads'][i], settings['mlp_ratios'][i], settings['sr_ratios'][i],
                             qkv_bias, drop_rate, attn_drop_rate, rates[i][j])
                for j in range(self.depths[i]))
            self.add_module(f'patch_embed{i + 1}', embed)
            self.add_module(f'block{i + 1}', blocks)
            self.add_module(f'norm{i + 1}', nn.LayerNorm(dim, eps=1e-6))

        self._set_levels(self.embed_dims, (4, 8, 16, 32), [f'norm{i + 1}' for i in range(4)])
        self._finish_init(compile)

    # -- freezing -----------------------------------------------------------------------------------------------
    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        mods: list[nn.Module] = [self.patch_embed1]
        for i in range(1, self.frozen_stages + 1):
            mods += [getattr(self, f'patch_embed{i}'), getattr(self, f'block{i}'), getattr(self, f'norm{i}')]
        return mods

    def train(self, mode: bool = True) -> ShuntedTransformer:
        """Switch mode, keeping frozen parts and (with ``norm_eval``) the stem's batch norms in eval mode."""
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.patch_embed1.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # -- weights ------------------------------------------------------------------------------------------------
    def _init_default_weights(self) -> None:
        self.apply(_official_init)

    def convert_checkpoint(self, state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str, list[str]]:
        """Official / mmswin Shunted state dict -> this model (``head.*`` dropped); the layout names the arch found.

        Raises:
            CheckpointMismatchError: not a Shunted state dict (e.g. a Swin or ResNet one).
        """
        state = convert_shunted_checkpoint(state_dict)
        ckpt_arch = infer_shunted_arch(state)
        own = dict(depths=self.depths, num_conv=self.num_conv)
        layout = f'Shunted layout, {_describe_arch(ckpt_arch)}'
        if ckpt_arch != own:
            layout += f' -- the model is {_describe_arch(own)}'
        return state, layout, ['patch_embed1.conv.*.num_batches_tracked']

    # -- contract -----------------------------------------------------------------------------------------------
    def describe_arch(self) -> str:
        return _describe_arch(dict(depths=self.depths, num_conv=self.num_conv))

    def exportable_side(self, side: int) -> bool:
        size = side
        for layer in self.patch_embed1.conv:
            if isinstance(layer, nn.Conv2d):
                size = _conv_out(size, layer)
        for i in range(max(self.out_indices) + 1):
            if i > 0:
                size = _conv_out(size, getattr(self, f'patch_embed{i + 1}').proj)
            sizes = [size]
            for block in getattr(self, f'block{i + 1}'):
                if block.attn.sr_ratio > 1:
                    sizes += [_conv_out(size, block.attn.sr1), _conv_out(size, block.attn.sr2)]
            if min(sizes) < 2:  # a one-token side
                return False
        return True

    @property
    def export_rule(self) -> str:
        return 'every Shunted attention must keep at least two tokens along each side after its token aggregation'

    # -- forward ------------------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """``(N, C_in, H, W)`` with ``H, W >= 32`` -> the maps of ``out_indices``, each ``(N, C_i, H_i, W_i)``."""
        if x.ndim != 4 or x.shape[-2] < self.min_input_size or x.shape[-1] < self.min_input_size:
            raise ValueError(f'ShuntedTransformer takes (N, C, H, W) images of at least {self.min_input_size}x'
                             f'{self.min_input_size} pixels (its stage-1 aggregation reduces by 32), got shape '
                             f'{tuple(x.shape)}')
        B = x.shape[0]
        outs: dict[int, Tensor] = {}
        last = max(self.out_indices)
        for i in range(last + 1):
            tokens, hw = getattr(self, f'patch_embed{i + 1}')(x)  # B, H_i*W_i, C_i
            tokens = self._residual_stream(tokens)
            for blk in getattr(self, f'block{i + 1}'):
                if self.with_cp and torch.is_grad_enabled():
                    tokens = cp.checkpoint(blk, tokens, hw, use_reentrant=False)
                else:
                    tokens = blk(tokens, hw)
            tokens = getattr(self, f'norm{i + 1}')(tokens)
            x = tokens.view(B, hw[0], hw[1], -1).permute(0, 3, 1, 2)  # B, C_i, H_i, W_i (channels-last view)
            if i in self.out_indices:
                outs[i] = x.contiguous()
        return tuple(outs[i] for i in self.out_indices)


# ----------------------------------------------------------------------------------------------------------------
# checkpoint conversion
# ----------------------------------------------------------------------------------------------------------------
_SHUNTED_KEY = re.compile(r'^(patch_embed[1-4]|block[1-4]|norm[1-4])\.')
_BLOCK_KEY = re.compile(r'^block([1-4])\.(\d+)\.')
_STEM_BN_KEY = re.compile(r'^patch_embed1\.conv\.(\d+)\.running_var$')


def _looks_like(keys: Sequence[str]) -> str:
    joined = ' '.join(keys)
    if 'relative_position_bias_table' in joined:
        return 'a Swin Transformer checkpoint'
    if re.search(r'(^| )(layer[1-4]|conv1|bn1)\.', joined):
        return 'a ResNet-style checkpoint'
    return 'not a Shunted Transformer checkpoint'


def convert_shunted_checkpoint(state_dict: Mapping[str, Tensor], source: str = 'the checkpoint') -> dict[str, Tensor]:
    """Official / mmswin Shunted state dict -> mmswin's layout (the same key names) without the classifier.

    Pure: the input is not modified. The official names are kept as mmswin's layout, so the conversion only drops
    ``head.*`` and checks that the keys are Shunted keys.

    Raises:
        CheckpointMismatchError: no Shunted key at all (e.g. a Swin or ResNet state dict), naming sample keys.
    """
    state = {k: v for k, v in state_dict.items() if not k.startswith('head.')}
    if not any(_SHUNTED_KEY.match(k) for k in state):
        sample = sorted(state)[:6]
        raise CheckpointMismatchError(
            f'{source} is {_looks_like(sorted(state))}: none of its {len(state)} keys is a Shunted Transformer key '
            f'(patch_embed1..4.*, block1..4.*, norm1..4.*); first keys: {", ".join(sample)}')
    return state


def infer_shunted_arch(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Depths and extra stem convs of a Shunted state dict in mmswin's layout."""
    depths = [0, 0, 0, 0]
    for k in state_dict:
        m = _BLOCK_KEY.match(k)
        if m:
            stage, j = int(m.group(1)) - 1, int(m.group(2))
            depths[stage] = max(depths[stage], j + 1)
    num_bn = sum(1 for k in state_dict if _STEM_BN_KEY.match(k))
    if num_bn == 0:  # a stem without running statistics: count its 3x3 convs instead
        num_bn = 1 + sum(1 for k, v in state_dict.items()
                         if k.startswith('patch_embed1.conv.') and k.endswith('.weight') and v.ndim == 4
                         and v.shape[-1] == 3)
    return dict(depths=tuple(depths), num_conv=num_bn - 1)


def _conv_out(size: int, conv: nn.Conv2d) -> int:
    """The output side of ``conv`` for an input side ``size``."""
    k, s, p, d = conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0]
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _describe_arch(arch: Mapping[str, Any]) -> str:
    name = next((n for n, s in SHUNTED_ARCHS.items() if len(n) > 1 and s['depths'] == tuple(arch['depths'])
                 and s['num_conv'] == arch['num_conv']), None)
    text = f'depths {list(arch["depths"])}, {arch["num_conv"]} extra stem convs'
    return f"arch '{name}' ({text})" if name else text


# ----------------------------------------------------------------------------------------------------------------
# arch table
# ----------------------------------------------------------------------------------------------------------------
_PAPER_DEFAULTS: dict[str, tuple[int, ...]] = dict(
    embed_dims=(64, 128, 256, 512), num_heads=(2, 4, 8, 16), mlp_ratios=(8, 8, 4, 4), sr_ratios=(8, 4, 2, 1))

SHUNTED_ARCHS: dict[str, dict[str, Any]] = {}
for _names, _depths, _num_conv in ((('tiny', 't'), (1, 2, 4, 1), 0), (('small', 's'), (2, 4, 12, 1), 1),
                                   (('base', 'b'), (3, 4, 24, 2), 2)):
    for _name in _names:
        SHUNTED_ARCHS[_name] = dict(depths=_depths, num_conv=_num_conv, **_PAPER_DEFAULTS)


def _resolve_arch(arch: str | Mapping[str, Any]) -> dict[str, Any]:
    """An arch name or dict -> the full, validated settings."""
    if isinstance(arch, str):
        if arch.lower() not in SHUNTED_ARCHS:
            raise ValueError(f"arch must be one of {sorted(n for n in SHUNTED_ARCHS if len(n) > 1)} (or 't', 's', "
                             f"'b'), or a dict with depths and num_conv; got {arch!r}")
        return dict(SHUNTED_ARCHS[arch.lower()])
    if not isinstance(arch, Mapping):
        raise ValueError(f'arch must be a name or a dict, got {type(arch).__name__}')
    required, optional = {'depths', 'num_conv'}, set(_PAPER_DEFAULTS)
    if not required <= set(arch) or set(arch) - required - optional:
        raise ValueError(f'an arch dict needs keys {sorted(required)} and may set {sorted(optional)}; '
                         f'got {sorted(arch)}')
    settings = {k: tuple(arch.get(k, v)) for k, v in _PAPER_DEFAULTS.items()}
    settings['depths'] = tuple(arch['depths'])
    settings['num_conv'] = int(arch['num_conv'])
    for k in ('depths', *_PAPER_DEFAULTS):
        if len(settings[k]) != 4 or any(not isinstance(v, int) or v < 1 for v in settings[k]):
            raise ValueError(f'arch {k} must be 4 positive ints, got {arch.get(k)!r}')
    if settings['num_conv'] < 0:
        raise ValueError(f'arch num_conv must be >= 0, got {arch["num_conv"]!r}')
    for i, (dim, heads, sr) in enumerate(zip(settings['embed_dims'], settings['num_heads'], settings['sr_ratios'])):
        if dim % heads:
            raise ValueError(f'arch embed_dims[{i}]={dim} is not divisible by num_heads[{i}]={heads}')
        if sr > 1 and (sr % 2 or heads % 2):
            raise ValueError(f'arch stage {i + 1} has sr_ratio {sr}: shunted attention needs sr_ratio 1 or even, '
                             f'and an even num_heads (got {heads})')
    return settings
