"""reduce_* over `axes` (None = all, negative allowed) with keep_dims, and arg-reductions."""

import numpy as np

from ..registry import register
from .common import axes_list

def log_sum_exp(x, axis, keepdims):
    peak = np.max(x, axis=axis, keepdims=True)
    out = peak + np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


REDUCE = {
    "reduce_mean": np.mean, "reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min,
    "reduce_prod": np.prod,
    "reduce_sum_square": lambda x, axis, keepdims: np.sum(np.square(x), axis=axis, keepdims=keepdims),
    "reduce_l1_norm": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda x, axis, keepdims: np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims)),
    "reduce_log_sum": lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum_exp": lambda x, axis, keepdims: log_sum_exp(x, axis, keepdims),
}


def _reduce(fn):
    def op(x, axes=None, keep_dims=False):
        return fn(x, axis=tuple(axes_list(axes, x.ndim)), keepdims=bool(keep_dims))
    return op


for _name, _fn in REDUCE.items():
    register(_name)(_reduce(_fn))


def _arg_reduce(fn):
    def op(x, axis=-1, keep_dims=False, output_dtype=None):
        out = fn(x, axis=int(axis))
        return np.expand_dims(out, int(axis)) if keep_dims else out
    return op


register("reduce_argmax")(_arg_reduce(np.argmax))
register("reduce_argmin")(_arg_reduce(np.argmin))
