"""Plain options objects for conversion, passed to each target's pure `convert` function."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import TinySamError
from ..utils.prompts import DEFAULT_MAX_TOKENS, token_range
DEFAULT_EVERYTHING_BATCH = 64  # batched decoder: single-point prompts per call in everything mode
EVERYTHING_POINTS = 2  # each everything-mode prompt: the grid point plus the padding point SAM appends
# What the weight-int8 precisions (ONNX and ExecuTorch int8) quantize besides the linear layers, and which
# linear layers they leave float: dynamic activations take one range per tensor, which the encoder's
# convolution stages and the decoder's image-to-token attention (4,096 image positions) cannot share. The
# sweeps are beside converters/onnx.py's FLOAT_DECODER_WEIGHTS and NECK_WEIGHT_PREFIX.
NECK_MODULE = "image_encoder.neck"
IMAGE_TO_TOKEN_SCOPE = "cross_attn_image_to_token"
# The layers whose inputs static W8A8 (CoreML w8a8) leaves float, their weights int8: the encoder's
# convolution stage, patch merging and local (depthwise) convolutions. One per-tensor int8 range cannot hold
# their inputs' outliers (held-out values up to 4.8x the searched range). A one-off development sweep in
# PyTorch fake-quant (demo model, 1024, TinySAM PTQ scales, 8 held-out images x 4 prompts, matmul operands
# float as in CoreML): every conv / linear input int8 0.796, these 27 float 0.974, int8 weights alone 0.983.
ENCODER_CONV_STAGES = r"image_encoder\.(patch_embed|layers\.0)\.|\.downsample\."  # conv stage, patch merging
W8A8_FLOAT_INPUTS = re.compile(ENCODER_CONV_STAGES + r"|\.local_conv\.")
# The layers CoreML palettes below 8 bits keep at 8 bits (3.3% of the palettized weights): the encoder's
# convolution stage and patch merging. A one-off development sweep (demo model, 1024, 8 held-out images x 4
# prompts, uniform per-channel weights as a proxy for the palettes, activations float) lost the most there:
# only the convolution stage at 6 bits 0.942, only patch merging 0.966, every other group >= 0.980; all at 6
# bits 0.935, all but these 0.969.
WIDE_PALETTE_LAYERS = re.compile(ENCODER_CONV_STAGES)
WIDE_PALETTE_BITS = 8


@dataclass(frozen=True)
class ConvertConfig:
    target: str
    precision: str
    max_tokens: int = DEFAULT_MAX_TOKENS
    everything_batch: int = DEFAULT_EVERYTHING_BATCH
    scales: Optional[Path] = None            # TinySAM PTQ scales file (tinysam-mobile calibrate)
    calibration_images: Optional[Path] = None  # folder of images for activation ranges (w8a8)
    compute_precision: str = "fp16"          # CoreML only: fp16 (default) or fp32
    backend: str = "xnnpack"                 # ExecuTorch only: the delegate, xnnpack or coreml
    palette: Optional[str] = None            # CoreML palettize*: kmeans | sensitive-kmeans | ptq-grid

    def __post_init__(self) -> None:
        if self.max_tokens < 3 or self.everything_batch < 1:  # 3: a point and a box
            raise TinySamError("--max-tokens must be at least 3 and --everything-batch at least 1")


def token_counts(config: ConvertConfig) -> range:
    """Every prompt-token count the interactive decoder takes."""
    return token_range(config.max_tokens)
