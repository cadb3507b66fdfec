"""Plain options objects for conversion, passed to each target's pure `convert` function."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DEFAULT_NUM_POINTS = 8       # interactive decoder: several clicks + a box + padding
DEFAULT_EVERYTHING_BATCH = 64  # batched decoder: single-point prompts per call in everything mode
EVERYTHING_POINTS = 2  # each everything-mode prompt: the grid point plus the padding point SAM appends


@dataclass(frozen=True)
class ConvertConfig:
    target: str
    precision: str
    num_points: int = DEFAULT_NUM_POINTS
    everything_batch: int = DEFAULT_EVERYTHING_BATCH
    scales: Optional[Path] = None            # TinySAM PTQ scales file (tinysam-mobile calibrate)
    calibration_images: Optional[Path] = None  # folder of images for activation ranges (w8a8)
    compute_precision: str = "fp16"          # CoreML only: fp16 (default) or fp32
