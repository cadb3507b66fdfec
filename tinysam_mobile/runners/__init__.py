"""Backends behind one small interface: the glue never knows which one runs the network."""

from .base import Runner
from .torch_runner import TorchRunner

__all__ = ["Runner", "TorchRunner"]
