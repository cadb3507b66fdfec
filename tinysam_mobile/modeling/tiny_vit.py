"""TinyViT-5M image encoder as TinySAM (and MobileSAM) configure it.

Module names and parameter shapes follow the official checkpoint key for key. Two things differ
from the public code on purpose:
- the relative-position bias is gathered from the live ``attention_biases`` parameter on every
  forward pass, so there is no eval-mode cache that could hold stale (pre-load) values;
- window partitioning stays within 4-D tensors (mobile NPUs and delegates reject rank > 5).
"""

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d, MatMul

HEAD_DIM = 32  # every attention head in TinyViT-5M is 32 wide


class Conv2dBN(nn.Sequential):
    """Conv (no bias) followed by BatchNorm, named ``c`` and ``bn`` as in the checkpoint."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False))
        bn = nn.BatchNorm2d(out_ch)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.zeros_(bn.bias)
        self.add_module("bn", bn)


class PatchEmbed(nn.Module):
    """Two stride-2 Conv-BN layers: 3 -> 32 -> 64 channels, 1/4 resolution."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            Conv2dBN(3, embed_dim // 2, 3, 2, 1), nn.GELU(), Conv2dBN(embed_dim // 2, embed_dim, 3, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block of stage 0 (NCHW in and out)."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = Conv2dBN(dim, hidden, 1)
        self.act1 = nn.GELU()
        self.conv2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2dBN(hidden, dim, 1, bn_weight_init=0.0)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.conv1(x))
        y = self.act2(self.conv2(y))
        return self.act3(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """1x1 expand, depthwise 3x3 (stride 2, or 1 into the 320-wide last stage), 1x1 (NCHW)."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = Conv2dBN(dim, out_dim, 1)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.conv3(x)


def relative_offset_index(window_size: int) -> torch.Tensor:
    """(N, N) index into the bias table for N = window^2 tokens: |drow| * window + |dcol|.

    TinyViT numbers offsets in order of first appearance while scanning point pairs from (0, 0),
    which is exactly this row-major formula.
    """
    rows = torch.arange(window_size).repeat_interleave(window_size)
    cols = torch.arange(window_size).repeat(window_size)
    return (rows[:, None] - rows[None, :]).abs() * window_size + (cols[:, None] - cols[None, :]).abs()


class Attention(nn.Module):
    """Multi-head self-attention inside one window, with a learned relative-position bias."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = HEAD_DIM ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, num_heads * HEAD_DIM * 3)
        self.proj = nn.Linear(num_heads * HEAD_DIM, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        self.register_buffer("attention_bias_idxs", relative_offset_index(window_size), persistent=False)
        self.qk_matmul = MatMul()
        self.av_matmul = MatMul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windows, tokens, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(windows, tokens, self.num_heads, 3 * HEAD_DIM)
        q, k, v = qkv.split(HEAD_DIM, dim=3)  # per head laid out as [q_h | k_h | v_h]
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        attn = self.qk_matmul(q, k.transpose(-2, -1)) * self.scale + bias
        out = self.av_matmul(attn.softmax(dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(windows, tokens, self.num_heads * HEAD_DIM))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of window -> (B * nH * nW, window^2, C), 4-D at most."""
    b, h, w, c = x.shape
    x = x.reshape(b * (h // window), window, w // window, window * c).transpose(1, 2)
    return x.reshape(-1, window * window, c)


def window_unpartition(windows: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    c = windows.shape[-1]
    x = windows.reshape(b * (h // window), w // window, window, window * c).transpose(1, 2)
    return x.reshape(b, h, w, c)


class TinyViTBlock(nn.Module):
    """x + attn(windows(x)); depthwise Conv-BN (no residual); x + mlp(x). Channels-last I/O."""

    def __init__(self, dim: int, num_heads: int, window_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws = self.window_size
        pad_h, pad_w = (-h) % ws, (-w) % ws
        # Padded tokens are zeros and are not masked out of the attention, as in TinyViT.
        y = F.pad(x, (0, 0, 0, pad_w, 0, pad_h)) if pad_h or pad_w else x
        y = window_unpartition(self.attn(window_partition(y, ws)), ws, b, h + pad_h, w + pad_w)
        x = x + y[:, :h, :w]
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class ConvLayer(nn.Module):
    def __init__(self, dim: int, out_dim: int, depth: int, expand_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = PatchMerging(dim, out_dim, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class BasicLayer(nn.Module):
    """A TinyViT stage, channels-last; optional PatchMerging at its end."""

    def __init__(self, dim: int, out_dim: int | None, depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, merge_stride: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TinyViTBlock(dim, num_heads, window_size, mlp_ratio) for _ in range(depth))
        self.downsample = PatchMerging(dim, out_dim, merge_stride) if out_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        if self.downsample is not None:
            x = self.downsample(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x


class TinyViT(nn.Module):
    """TinyViT-5M backbone + SAM neck. Input (B, 3, S, S) normalised, output (B, 256, S/16, S/16)."""

    def __init__(self, embed_dims: Sequence[int] = (64, 128, 160, 320), depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (2, 4, 5, 10), window_sizes: Sequence[int] = (7, 7, 14, 7),
                 mlp_ratio: float = 4.0, mbconv_expand_ratio: float = 4.0, out_chans: int = 256,
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(embed_dims[0])
        layers: list[nn.Module] = [ConvLayer(embed_dims[0], embed_dims[1], depths[0], mbconv_expand_ratio)]
        for i in range(1, len(embed_dims)):
            last = i == len(embed_dims) - 1
            out_dim = None if last else embed_dims[i + 1]
            # MobileSAM keeps 1/16 resolution: the merge into the widest stage does not downsample.
            stride = 1 if i == len(embed_dims) - 2 else 2
            layers.append(BasicLayer(embed_dims[i], out_dim, depths[i], num_heads[i], window_sizes[i],
                                     mlp_ratio, stride))
        self.layers = nn.ModuleList(layers)
        # Classification head of the ImageNet-pretrained TinyViT: unused, kept so checkpoints load strictly.
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, 1, bias=False), LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False), LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers[0](self.patch_embed(x)).permute(0, 2, 3, 1)
        for layer in self.layers[1:]:
            x = layer(x)
        return self.neck(x.permute(0, 3, 1, 2))
