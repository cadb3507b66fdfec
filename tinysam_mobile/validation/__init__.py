"""Parity of converted artifacts against FP32 PyTorch (`tinysam-mobile validate`)."""

from .parity import THRESHOLDS, HalfSwap, ParityConfig, measure_parity

__all__ = ["THRESHOLDS", "HalfSwap", "ParityConfig", "measure_parity"]
