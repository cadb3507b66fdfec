"""Parity of converted artifacts against FP32 PyTorch (`tinysam-mobile validate`)."""

from .parity import THRESHOLDS, HalfSwap, ParityConfig, image_parity, measure_parity, summarize_parity

__all__ = ["THRESHOLDS", "HalfSwap", "ParityConfig", "image_parity", "measure_parity", "summarize_parity"]
