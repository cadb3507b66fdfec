"""Element-wise ops with numpy broadcasting: binary arithmetic and comparisons, unary math, cast, select."""

import numpy as np
import torch

from ..registry import register
from .common import as_torch

BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.true_divide, "pow": np.power,
    "maximum": np.maximum, "minimum": np.minimum, "floor_div": np.floor_divide, "mod": np.mod,
    "equal": np.equal, "not_equal": np.not_equal, "greater": np.greater, "greater_equal": np.greater_equal,
    "less": np.less, "less_equal": np.less_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}

UNARY = {
    "abs": np.abs, "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan, "atanh": np.arctanh,
    "ceil": np.ceil, "cos": np.cos, "cosh": np.cosh, "exp": np.exp, "exp2": np.exp2, "floor": np.floor,
    "round": np.round,  # half to even, as coremltools' constant folding
    "sign": np.sign, "sin": np.sin, "sinh": np.sinh, "sqrt": np.sqrt, "square": np.square, "tan": np.tan,
    "tanh": np.tanh, "logical_not": np.logical_not,
}


def _binary(ufunc):
    def op(x, y):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return ufunc(x, y)
    return op


def _unary(ufunc):
    def op(x):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return ufunc(x)
    return op


for _name, _ufunc in BINARY.items():
    register(_name)(_binary(_ufunc))
for _name, _ufunc in UNARY.items():
    register(_name)(_unary(_ufunc))


@register("erf")
def erf(x):
    return torch.erf(as_torch(x)).numpy()


@register("rsqrt")
def rsqrt(x, epsilon=1e-12):
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(x + epsilon)


@register("inverse")
def inverse(x, epsilon=1e-4):
    with np.errstate(divide="ignore"):
        return 1.0 / (x + epsilon)


@register("log")
def log(x, epsilon=1e-45):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x + epsilon)


@register("clip")
def clip(x, alpha, beta):
    return np.minimum(np.maximum(x, alpha), beta)


@register("threshold")
def threshold(x, alpha):
    return np.maximum(x, alpha)


@register("cast", "identity", promote_fp16=False)
def cast(x, dtype=None):
    """The executor converts to the declared output dtype: a cast op has nothing left to do."""
    return x


@register("select")
def select(cond, a, b):
    return np.where(cond, a, b)
