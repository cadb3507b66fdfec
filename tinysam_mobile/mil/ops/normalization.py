"""layer_norm (any axes), batch_norm and instance_norm (channel axis 1)."""

import torch.nn.functional as F

from ..registry import register
from .common import as_torch, axes_list


@register("layer_norm")
def layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    """Normalise over `axes` (biased variance); gamma/beta have the shape of x at those axes."""
    axes = axes_list(axes, x.ndim)
    trailing = list(range(x.ndim - len(axes), x.ndim))
    t = as_torch(x).movedim(axes, trailing)
    out = F.layer_norm(t, t.shape[len(t.shape) - len(axes):], None if gamma is None else as_torch(gamma),
                       None if beta is None else as_torch(beta), float(epsilon))
    return out.movedim(trailing, axes).numpy()


@register("batch_norm")
def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    return F.batch_norm(as_torch(x), as_torch(mean), as_torch(variance),
                        None if gamma is None else as_torch(gamma), None if beta is None else as_torch(beta),
                        training=False, eps=float(epsilon)).numpy()


@register("instance_norm")
def instance_norm(x, gamma=None, beta=None, epsilon=1e-5):
    return F.instance_norm(as_torch(x), weight=None if gamma is None else as_torch(gamma),
                           bias=None if beta is None else as_torch(beta), eps=float(epsilon)).numpy()
