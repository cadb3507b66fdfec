"""Parity of converted artifacts against FP32 PyTorch (`tinysam-mobile validate`)."""

from .parity import THRESHOLDS, ParityConfig, measure_parity

__all__ = ["THRESHOLDS", "ParityConfig", "measure_parity"]
