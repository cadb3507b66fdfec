"""Helpers shared by the op families."""

from typing import Optional, Sequence

import numpy as np
import torch


def as_torch(x) -> torch.Tensor:
    """Zero-copy view of a numpy value as a torch tensor (torch kernels are multi-threaded)."""
    return torch.from_numpy(np.ascontiguousarray(x))


def axes_list(axes: Optional[Sequence[int]], rank: int) -> list[int]:
    """MIL axes (negative allowed, None = all) -> sorted non-negative axes."""
    if axes is None:
        return list(range(rank))
    return sorted(int(a) % rank for a in np.atleast_1d(axes))


def broadcast_along(param: np.ndarray, rank: int, axis: Optional[int]) -> np.ndarray:
    """A scalar or a vector laid along `axis` -> an array that broadcasts against rank-`rank` data."""
    param = np.asarray(param)
    if param.ndim == 0 or axis is None:
        return param
    shape = [1] * rank
    shape[int(axis) % rank] = param.size
    return param.reshape(shape)
