"""Data-movement ops: reshape, transpose, slicing, concat / split / stack, gather, pad, tile, ...

They never change values, so fp16 tensors pass through them unpromoted.
"""

import numpy as np

from ..registry import register
from .common import axes_list

PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


@register("reshape", promote_fp16=False)
def reshape(x, shape):
    """0 copies the matching dim of x counting from the right (iOS17; the same as iOS15 whenever
    len(shape) == rank), 1 where x has no such dim; -1 is inferred."""
    shape = [int(s) for s in np.atleast_1d(shape)]
    offset = len(shape) - x.ndim
    resolved = [(x.shape[i - offset] if 0 <= i - offset < x.ndim else 1) if s == 0 else s
                for i, s in enumerate(shape)]
    return x.reshape(resolved)


@register("transpose", promote_fp16=False)
def transpose(x, perm):
    return np.transpose(x, [int(p) for p in perm])


@register("expand_dims", promote_fp16=False)
def expand_dims(x, axes):
    rank = x.ndim + len(np.atleast_1d(axes))
    return np.expand_dims(x, tuple(int(a) % rank for a in np.atleast_1d(axes)))


@register("squeeze", promote_fp16=False)
def squeeze(x, axes=None):
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(axes_list(axes, x.ndim)))


@register("slice_by_index", promote_fp16=False)
def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    """x[begin:end:stride] per axis with Python semantics for negative values; masks ignore begin
    (begin_mask) or end (end_mask); squeeze_mask takes the single index begin and drops the axis."""
    rank = x.ndim
    stride = np.ones(rank, int) if stride is None else stride
    begin_mask = np.zeros(rank, bool) if begin_mask is None else begin_mask
    end_mask = np.zeros(rank, bool) if end_mask is None else end_mask
    squeeze_mask = np.zeros(rank, bool) if squeeze_mask is None else squeeze_mask
    index = []
    for i in range(rank):
        if squeeze_mask[i]:
            index.append(int(begin[i]))
        else:
            index.append(slice(None if begin_mask[i] else int(begin[i]), None if end_mask[i] else int(end[i]),
                               int(stride[i])))
    return x[tuple(index)]


@register("slice_by_size", promote_fp16=False)
def slice_by_size(x, begin, size):
    """size -1 = up to the end of the axis; a negative begin counts from the end."""
    index = []
    for axis, (start, length) in enumerate(zip(begin, size)):
        start = int(start) % x.shape[axis] if start < 0 else int(start)
        index.append(slice(start, None if length == -1 else start + int(length)))
    return x[tuple(index)]


@register("concat", promote_fp16=False, variadic=("values",))
def concat(values, axis, interleave=False):
    """interleave: slices of equal size taken in turn from each input along axis."""
    axis = int(axis)
    if not interleave:
        return np.concatenate(values, axis=axis)
    stacked = np.stack(values, axis=(axis % values[0].ndim) + 1)
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return stacked.reshape(shape)


@register("split", promote_fp16=False)
def split(x, axis, num_splits=None, split_sizes=None):
    axis = int(axis)
    if split_sizes is None:
        return tuple(np.split(x, int(num_splits), axis=axis))
    return tuple(np.split(x, np.cumsum([int(s) for s in split_sizes])[:-1], axis=axis))


@register("stack", promote_fp16=False, variadic=("values",))
def stack(values, axis):
    return np.stack(values, axis=int(axis))


@register("gather", promote_fp16=False)
def gather(x, indices, axis=0, batch_dims=0, validate_indices=False):
    """Output dims D[:axis] + N[batch_dims:] + D[axis+1:]; the first batch_dims dims pair up x and
    indices. Negative indices count from the end (allowed up to iOS16)."""
    axis, batch_dims = int(axis) % x.ndim, int(batch_dims)
    indices = np.asarray(indices).astype(np.int64)
    if validate_indices and ((indices < 0) | (indices >= x.shape[axis])).any():
        raise IndexError(f"gather index out of range [0, {x.shape[axis]})")
    if batch_dims == 0:
        return np.take(x, indices, axis=axis)
    batch_shape = x.shape[:batch_dims]
    flat_x = x.reshape((-1,) + x.shape[batch_dims:])
    flat_indices = indices.reshape((-1,) + indices.shape[batch_dims:])
    out = np.stack([np.take(xb, ib, axis=axis - batch_dims) for xb, ib in zip(flat_x, flat_indices)])
    return out.reshape(batch_shape + out.shape[1:])


@register("gather_along_axis", promote_fp16=False)
def gather_along_axis(x, indices, axis=0, validate_indices=False):
    axis = int(axis)
    indices = np.asarray(indices).astype(np.int64)
    indices = np.where(indices < 0, indices + x.shape[axis], indices)
    return np.take_along_axis(x, indices, axis=axis)


@register("pad", promote_fp16=False)
def pad(x, pad, mode="constant", constant_val=0.0):
    """pad = [before, after] pairs for the last len(pad) / 2 dims."""
    pad = [int(p) for p in pad]
    padded_dims = len(pad) // 2
    width = [(0, 0)] * (x.ndim - padded_dims) + [(pad[2 * i], pad[2 * i + 1]) for i in range(padded_dims)]
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=np.asarray(constant_val, dtype=x.dtype))
    return np.pad(x, width, mode=PAD_MODES[mode])


@register("tile", promote_fp16=False)
def tile(x, reps):
    return np.tile(x, [int(r) for r in reps])


@register("reverse", promote_fp16=False)
def reverse(x, axes=None):
    return np.flip(x, axis=tuple(axes_list(axes, x.ndim)))


@register("shape", promote_fp16=False)
def shape(x):
    return np.array(x.shape, dtype=np.int32)


@register("fill")
def fill(shape, value=0.0):
    return np.full([int(s) for s in shape], value)


@register("fill_like")
def fill_like(ref_tensor, value=0.0):
    """ref_tensor's shape, value's dtype (the MIL spec's fill_like)."""
    value = np.asarray(value)
    return np.full(np.shape(ref_tensor), value, dtype=value.dtype)


@register("range_1d")
def range_1d(start, end, step):
    return np.arange(start, end, step)
