"""Activations (iOS15 and iOS17 definitions) and softmax."""

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import register
from .common import as_torch

GELU_MODES = ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION")


@register("relu")
def relu(x):
    return np.maximum(x, 0)


@register("relu6")
def relu6(x):
    return np.clip(x, 0, 6)


@register("leaky_relu")
def leaky_relu(x, alpha=0.01):
    return np.where(x >= 0, x, alpha * x)


@register("elu")
def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


@register("sigmoid")
def sigmoid(x):
    return torch.sigmoid(as_torch(x)).numpy()


@register("sigmoid_hard")
def sigmoid_hard(x, alpha=0.2, beta=0.5):
    return np.clip(alpha * x + beta, 0, 1)


@register("silu")
def silu(x):
    return F.silu(as_torch(x)).numpy()


@register("softplus")
def softplus(x):
    return F.softplus(as_torch(x)).numpy()


@register("gelu")
def gelu(x, mode="EXACT"):
    if mode not in GELU_MODES:
        raise ValueError(f"unknown gelu mode {mode!r}")
    t = as_torch(x)
    if mode == "SIGMOID_APPROXIMATION":
        return (t * torch.sigmoid(1.702 * t)).numpy()
    return F.gelu(t, approximate="tanh" if mode == "TANH_APPROXIMATION" else "none").numpy()


@register("softmax")
def softmax(x, axis=-1):
    return torch.softmax(as_torch(x), dim=int(axis)).numpy()
