"""Op-for-op reference of the official Shunted Transformer (Ren et al., CVPR 2022), written from
/work/shared/docs/shunted.md.

It is the yardstick for mmswin's ``ShuntedTransformer``: the same parameter names as the released ImageNet
checkpoints (``patch_embed1.conv.0.weight``, ``block3.5.attn.kv1.weight``, ``norm4.bias``, ``head.weight``, ...) and
the plain computation -- explicit ``q @ k^T``, softmax, ``@ v`` -- with the official reshapes, eps values and
floor sizes. Nothing here is optimised on purpose: the benchmarks of ``tools/analysis`` time mmswin against it, and
the tests (``tests/test_shunted.py``) check mmswin's outputs against it.

``ShuntedReference.forward_pyramid`` returns the outputs of the per-stage norms ``norm1..norm4`` as NCHW maps;
``forward`` is the classifier (mean over the last stage's tokens, then ``head``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ['ShuntedReference', 'ARCHS', 'build_reference', 'randomize_']

ARCHS: dict[str, dict] = {
    't': dict(depths=(1, 2, 4, 1), num_conv=0),
    's': dict(depths=(2, 4, 12, 1), num_conv=1),
    'b': dict(depths=(3, 4, 24, 2), num_conv=2),
}
DIMS = (64, 128, 256, 512)
HEADS = (2, 4, 8, 16)
MLP_RATIOS = (8, 8, 4, 4)
SR_RATIOS = (8, 4, 2, 1)


def _drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class RefDWConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        B, N, C = x.shape
        y = self.dwconv(x.transpose(1, 2).reshape(B, C, H, W))  # B, C, H, W
        return y.reshape(B, C, N).transpose(1, 2)  # B, N, C


class RefMlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = RefDWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        y = self.fc1(x)
        y = self.act(y + self.dwconv(y, H, W))  # the residual sits inside the activation
        y = self.drop(y)
        return self.drop(self.fc2(y))


class RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int, sr: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.dim, self.heads, self.sr = dim, heads, sr
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=True)
        if sr > 1:
            self.act = nn.GELU()
            self.sr1 = nn.Conv2d(dim, dim, kernel_size=sr, stride=sr)
            self.norm1 = nn.LayerNorm(dim)  # eps 1e-5
            self.sr2 = nn.Conv2d(dim, dim, kernel_size=sr // 2, stride=sr // 2)
            self.norm2 = nn.LayerNorm(dim)
            self.kv1 = nn.Linear(dim, dim, bias=True)
            self.kv2 = nn.Linear(dim, dim, bias=True)
            self.local_conv1 = nn.Conv2d(dim // 2, dim // 2, 3, 1, 1, groups=dim // 2)
            self.local_conv2 = nn.Conv2d(dim // 2, dim // 2, 3, 1, 1, groups=dim // 2)
        else:
            self.kv = nn.Linear(dim, dim * 2, bias=True)
            self.local_conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _branch(self, q: Tensor, x: Tensor, sr_conv: nn.Conv2d, norm: nn.LayerNorm, kv: nn.Linear,
                local_conv: nn.Conv2d, Hb: int, Wb: int) -> Tensor:
        B, h2, N, d = q.shape  # h2 = heads / 2
        C = self.dim
        xb = sr_conv(x)  # B, C, Hb, Wb  (floor sizes, no padding)
        xb = self.act(norm(xb.reshape(B, C, -1).permute(0, 2, 1)))  # B, Nb, C
        kvb = kv(xb).reshape(B, -1, 2, h2, d).permute(2, 0, 3, 1, 4)  # 2, B, h2, Nb, d
        k, v = kvb[0], kvb[1]
        attn = (q @ k.transpose(-2, -1)) * self.scale  # B, h2, N, Nb
        attn = self.attn_drop(attn.softmax(dim=-1))
        v_map = v.transpose(1, 2).reshape(B, -1, C // 2).transpose(1, 2).reshape(B, C // 2, Hb, Wb)
        v = v + local_conv(v_map).reshape(B, h2, d, -1).transpose(-1, -2)  # B, h2, Nb, d
        return (attn @ v).transpose(1, 2).reshape(B, N, C // 2)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        B, N, C = x.shape
        h, d = self.heads, C // self.heads
        q = self.q(x).reshape(B, N, h, d).permute(0, 2, 1, 3)  # B, h, N, d
        if self.sr > 1:
            x_map = x.permute(0, 2, 1).reshape(B, C, H, W)
            x1 = self._branch(q[:, :h // 2], x_map, self.sr1, self.norm1, self.kv1, self.local_conv1,
                              H // self.sr, W // self.sr)
            x2 = self._branch(q[:, h // 2:], x_map, self.sr2, self.norm2, self.kv2, self.local_conv2,
                              H * 2 // self.sr, W * 2 // self.sr)
            out = torch.cat([x1, x2], dim=-1)
        else:
            kv = self.kv(x).reshape(B, -1, 2, h, d).permute(2, 0, 3, 1, 4)
            k, v = kv[0], kv[1]  # B, h, N, d
            attn = (q @ k.transpose(-2, -1)) * self.scale
            attn = self.attn_drop(attn.softmax(dim=-1))
            v_map = v.transpose(1, 2).reshape(B, N, C).transpose(1, 2).reshape(B, C, H, W)
            out = (attn @ v).transpose(1, 2).reshape(B, N, C) + \
                self.local_conv(v_map).reshape(B, C, N).transpose(1, 2)  # local term after attention
        return self.proj_drop(self.proj(out))


class RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int, sr: int, drop: float, attn_drop: float,
                 drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, heads, sr, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = RefMlp(dim, dim * mlp_ratio, drop)
        self.drop_path = drop_path

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        x = x + _drop_path(self.attn(self.norm1(x), H, W), self.drop_path, self.training)
        return x + _drop_path(self.mlp(self.norm2(x), H, W), self.drop_path, self.training)


class RefStem(nn.Module):
    """``patch_embed1``: 7x7/2 conv-BN-ReLU, ``num_conv`` x (3x3 conv-BN-ReLU), 2x2/2 conv, LayerNorm."""

    def __init__(self, num_conv: int, dim: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, dim, 7, 2, 3, bias=False), nn.BatchNorm2d(dim), nn.ReLU(True)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(True)]
        layers.append(nn.Conv2d(dim, dim, 2, 2))
        self.conv = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim)  # eps 1e-5

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        x = self.conv(x)
        _, _, H, W = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class RefPatchEmbed(nn.Module):
    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_dim, dim, 3, 2, 1)
        self.norm = nn.LayerNorm(dim)  # eps 1e-5

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        x = self.proj(x)
        _, _, H, W = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class ShuntedReference(nn.Module):
    def __init__(self, depths: tuple[int, ...], num_conv: int, num_classes: int = 1000, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        cur = 0
        for i in range(4):
            embed = RefStem(num_conv, DIMS[0]) if i == 0 else RefPatchEmbed(DIMS[i - 1], DIMS[i])
            blocks = nn.ModuleList(
                RefBlock(DIMS[i], HEADS[i], MLP_RATIOS[i], SR_RATIOS[i], drop_rate, attn_drop_rate, dpr[cur + j])
                for j in range(depths[i]))
            cur += depths[i]
            setattr(self, f'patch_embed{i + 1}', embed)
            setattr(self, f'block{i + 1}', blocks)
            setattr(self, f'norm{i + 1}', nn.LayerNorm(DIMS[i], eps=1e-6))
        self.head = nn.Linear(DIMS[3], num_classes) if num_classes > 0 else nn.Identity()

    def forward_pyramid(self, x: Tensor) -> list[Tensor]:
        B = x.shape[0]
        outs = []
        for i in range(4):
            x, H, W = getattr(self, f'patch_embed{i + 1}')(x)
            for blk in getattr(self, f'block{i + 1}'):
                x = blk(x, H, W)
            x = getattr(self, f'norm{i + 1}')(x)
            x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()  # B, C, H, W
            outs.append(x)
        return outs

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_pyramid(x)[-1].flatten(2).mean(-1))


def build_reference(arch: str, **kwargs) -> ShuntedReference:
    """``arch`` in 't' | 's' | 'b' (also 'tiny' | 'small' | 'base')."""
    return ShuntedReference(**ARCHS[arch[0].lower()], **kwargs)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter and BatchNorm statistic with seeded, non-trivial values (so that parity tests exercise
    every weight, including biases and norm affines that an init would leave at 0 / 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():  # in place: no new allocations
            if not t.is_floating_point():
                continue
            if name.endswith('running_var'):
                t.uniform_(0.5, 1.5, generator=g)
            elif name.endswith('running_mean'):
                t.normal_(0.0, 0.1, generator=g)
            elif t.ndim == 1 and ('norm' in name or '.conv.' in name) and name.endswith('weight'):
                t.normal_(1.0, 0.2, generator=g)
            else:
                t.normal_(0.0, t[0].numel() ** -0.5 if t.ndim > 1 else 0.1, generator=g)
    return model
