"""linear, matmul, conv and conv_transpose (1-D, 2-D and 3-D), through torch's CPU kernels."""

import math

import torch
import torch.nn.functional as F

from ..registry import register
from .common import as_torch

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@register("linear")
def linear(x, weight, bias=None):
    return F.linear(as_torch(x), as_torch(weight), None if bias is None else as_torch(bias)).numpy()


@register("matmul")
def matmul(x, y, transpose_x=False, transpose_y=False):
    a, b = as_torch(x), as_torch(y)
    if transpose_x:
        a = a.transpose(-1, -2)
    if transpose_y:
        b = b.transpose(-1, -2)
    return torch.matmul(a, b).numpy()


def conv_padding(pad_type: str, pad, spatial: tuple, kernel: tuple, strides, dilations) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim for MIL's valid / custom / same / same_lower."""
    if pad_type == "valid":
        return [(0, 0)] * len(spatial)
    if pad_type == "custom":
        return [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(spatial))]
    if pad_type not in ("same", "same_lower"):
        raise ValueError(f"unknown pad_type {pad_type!r}")
    pairs = []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        effective = (k - 1) * d + 1
        total = max(0, (math.ceil(size / s) - 1) * s + effective - size)
        small, large = total // 2, total - total // 2
        pairs.append((large, small) if pad_type == "same_lower" else (small, large))
    return pairs


def conv_settings(x, strides, dilations):
    dims = x.ndim - 2
    strides = [1] * dims if strides is None else [int(s) for s in strides]
    dilations = [1] * dims if dilations is None else [int(d) for d in dilations]
    return dims, strides, dilations


@register("conv")
def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    dims, strides, dilations = conv_settings(x, strides, dilations)
    pairs = conv_padding(pad_type, pad, x.shape[2:], weight.shape[2:], strides, dilations)
    t = as_torch(x)
    if any(before != after for before, after in pairs):
        t = F.pad(t, [p for pair in reversed(pairs) for p in pair])  # F.pad lists the last dim first
        pairs = [(0, 0)] * dims
    out = CONV[dims](t, as_torch(weight), None if bias is None else as_torch(bias), strides,
                     [before for before, _ in pairs], dilations, int(groups))
    return out.numpy()


@register("conv_transpose")
def conv_transpose(x, weight, bias=None, pad=None, output_shape=None, pad_type="valid", strides=None,
                   dilations=None, groups=1):
    """The full transposed convolution, cropped by the padding, then fitted to output_shape if given
    (positions beyond the full result receive no input: only the bias)."""
    dims, strides, dilations = conv_settings(x, strides, dilations)
    full = CONV_TRANSPOSE[dims](as_torch(x), as_torch(weight), None, strides, 0, 0, int(groups), dilations)
    if pad_type == "same":  # output = input * stride; the smaller half of the crop goes first (TF's rule)
        crop = [(k - 1) * d + 1 - s for k, s, d in zip(weight.shape[2:], strides, dilations)]
        pairs = [(max(c, 0) // 2, max(c, 0) - max(c, 0) // 2) for c in crop]
    else:
        pairs = conv_padding(pad_type, pad, x.shape[2:], weight.shape[2:], strides, dilations)
    out = full[(slice(None), slice(None)) + tuple(slice(b, size - a) for (b, a), size in zip(pairs, full.shape[2:]))]
    if output_shape is not None:
        target = [int(s) for s in output_shape[2:]]
        out = F.pad(out, [p for size, want in zip(reversed(out.shape[2:]), reversed(target)) for p in (0, want - size)])
    if bias is not None:
        out = out + as_torch(bias).reshape([-1] + [1] * dims)
    return out.numpy()
