"""Run a backend and FP32 PyTorch on the same images and prompts, and compare what users get.

Each image goes through the whole pipeline on both sides (preprocess, encoder, decoder, upscaling to
the original size, threshold): every mask of every prompt (3 per prompt) is compared by IoU.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..calibration.dataset import sample_prompts
from ..utils.transforms import MASK_THRESHOLD, preprocess, upscale_logits
from .metrics import cosine, mask_ious, summarize

# Minimum mean mask IoU against FP32 PyTorch, per precision (int8-xnnpack: int8 encoder activations, as w8a8;
# w8a16: integer-only too, so the NPU bar of w8a8).
THRESHOLDS = {"fp32": 0.995, "fp16": 0.99, "int8": 0.98, "w8a8": 0.95, "w8a16": 0.95, "int8-xnnpack": 0.95}


@dataclass(frozen=True)
class ParityConfig:
    prompts_per_image: int = 12
    num_points: int = 4   # for runners of any point count; fixed-shape runners get their own count
    seed: int = 0


class HalfSwap:
    """One runner's encoder with another's decoder, to see which half of an artifact loses accuracy;
    prompts are padded to the artifact's point count either way (padding points are decoder tokens)."""

    def __init__(self, encoder_runner, decoder_runner, num_points: Optional[int]) -> None:
        self.name = f"{encoder_runner.name} encoder + {decoder_runner.name} decoder"
        self.img_size, self.num_points, self.batch_size = decoder_runner.img_size, num_points, decoder_runner.batch_size
        self.encode, self.decode = encoder_runner.encode, decoder_runner.decode


def measure_parity(runner, reference, images: list[tuple[np.ndarray, Optional[np.ndarray]]],
                   config: ParityConfig = ParityConfig(), on_image: Callable[[], None] = lambda: None) -> dict:
    """images: (RGB, instance masks or None); prompts come from the masks when given (scenes)."""
    rng = np.random.default_rng(config.seed)
    size = reference.img_size
    # Padding points are decoder tokens too: both sides must see the prompt padded the same way.
    num_points = runner.num_points or config.num_points
    cosines, max_errors, ious, iou_errors = [], [], [], []
    for rgb, masks in images:
        tensor, input_size = preprocess(rgb, size)
        embedding, ref_embedding = runner.encode(tensor), reference.encode(tensor)
        cosines.append(cosine(embedding, ref_embedding))
        max_errors.append(float(np.abs(embedding - ref_embedding).max()))
        coords, labels = sample_prompts(rng, rgb.shape[:2], masks, config.prompts_per_image, num_points, size)
        low = size // 4
        no_mask = (np.zeros((len(labels), 1, low, low), np.float32), np.zeros(len(labels), np.float32))
        logits, iou = runner.decode(embedding, coords, labels, *no_mask)
        ref_logits, ref_iou = reference.decode(ref_embedding, coords, labels, *no_mask)
        upscale = lambda x: upscale_logits(x, input_size, rgb.shape[:2], size) > MASK_THRESHOLD  # noqa: E731
        ious.extend(mask_ious(upscale(logits).reshape(-1, *rgb.shape[:2]),
                              upscale(ref_logits).reshape(-1, *rgb.shape[:2])))
        iou_errors.extend(np.abs(iou - ref_iou).ravel())
        on_image()
    return {
        "images": len(images),
        "prompts": len(images) * config.prompts_per_image,
        "embedding_cosine": summarize(cosines),
        "embedding_max_abs_error": float(max(max_errors)),
        "mask_iou": summarize(ious),
        "iou_prediction_abs_error": {"mean": float(np.mean(iou_errors)), "max": float(np.max(iou_errors))},
    }
