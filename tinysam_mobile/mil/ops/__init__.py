"""Numpy / torch implementations of MIL ops, one small function per op, grouped by family.

Importing this package fills the registry; OPS maps each MIL op type to its implementation.
"""

from ..registry import OPS
from . import activation, compression, elementwise, linear, normalization, reduction, tensor  # noqa: F401  (registration)

__all__ = ["OPS"]
