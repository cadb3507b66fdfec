"""Weight decompression (constexpr_*, evaluated once at load) and activation quantize / dequantize.

The constexpr ops reuse the decompress functions coremltools defines next to each op: they are
the library's statement of the format (bit packing, LUT grouping, block-wise scales) that the
compression APIs write. The iOS16 and iOS18 variants share op names and differ in their inputs.
"""

import numpy as np
from coremltools.converters.mil.mil.ops.defs.iOS16 import constexpr_ops as ios16
from coremltools.converters.mil.mil.ops.defs.iOS18 import compression as ios18

from ..registry import register
from .common import broadcast_along


@register("constexpr_affine_dequantize", promote_fp16=False)
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    return ios16.constexpr_affine_dequantize.decompress(quantized_data, zero_point, scale, int(axis))


@register("constexpr_lut_to_dense", promote_fp16=False)
def constexpr_lut_to_dense(indices, lut, shape=None, vector_axis=None):
    if shape is not None:  # iOS16: one palette, indices bit-packed into uint8
        return ios16.constexpr_lut_to_dense.decompress(lut, indices, shape)
    return ios18.constexpr_lut_to_dense.decompress(indices, lut, None if vector_axis is None else int(vector_axis))


@register("constexpr_sparse_to_dense", promote_fp16=False)
def constexpr_sparse_to_dense(nonzero_data, mask, shape=None):
    if shape is not None:  # iOS16: bit-packed uint8 mask plus the dense shape
        return ios16.constexpr_sparse_to_dense.decompress(nonzero_data, mask, shape)
    return ios18.constexpr_sparse_to_dense.decompress(nonzero_data, mask)


@register("constexpr_blockwise_shift_scale", promote_fp16=False)
def constexpr_blockwise_shift_scale(data, scale, offset=None):
    return ios18.constexpr_blockwise_shift_scale.decompress(data, scale, offset)


@register("quantize")
def quantize(input, scale, output_dtype, zero_point=None, axis=None):
    """clip(round_half_even(x / scale) + zero_point) into int8 or uint8."""
    info = np.iinfo(np.dtype(output_dtype))
    scale = broadcast_along(scale, input.ndim, axis)
    offset = 0 if zero_point is None else broadcast_along(zero_point, input.ndim, axis).astype(np.float32)
    return np.clip(np.round(input / scale) + offset, info.min, info.max)


@register("dequantize")
def dequantize(input, scale, zero_point=None, axis=None):
    """scale * (q - zero_point), scale and zero point scalars or laid along axis."""
    offset = 0 if zero_point is None else broadcast_along(zero_point, input.ndim, axis).astype(np.float32)
    return (input.astype(np.float32) - offset) * broadcast_along(scale, input.ndim, axis)
