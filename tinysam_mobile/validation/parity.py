"""Run a backend and FP32 PyTorch on the same images and prompts, and compare what users get.

Both sides are TinySamPredictor as a user calls it (set_image on the photo, predict with points and a
box in its pixels): the same preprocessing, exactly the prompt's tokens on each side (a decoder that
padded them would be measured as it behaves), upscaling to the image's size and the threshold. Every
mask of every prompt (3 per prompt) is compared by IoU, overall and per prompt-token count.
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..calibration.dataset import sample_user_prompts
from ..predictor import TinySamPredictor
from ..utils.prompts import DEFAULT_MAX_TOKENS, DEFAULT_PROMPTS_PER_IMAGE
from .metrics import cosine, mask_ious, summarize

# Minimum mean mask IoU against FP32 PyTorch, per precision (int8-xnnpack: int8 encoder activations, as w8a8;
# w8a16: integer-only too, so the NPU bar of w8a8).
THRESHOLDS = {"fp32": 0.995, "fp16": 0.99, "int8": 0.98, "w8a8": 0.95, "w8a16": 0.95, "int8-xnnpack": 0.95}


@dataclass(frozen=True)
class ParityConfig:
    prompts_per_image: int = DEFAULT_PROMPTS_PER_IMAGE
    seed: int = 0


class HalfSwap:
    """One runner's encoder with another's decoder, to see which half of an artifact loses accuracy."""

    def __init__(self, encoder_runner, decoder_runner) -> None:
        self.name = f"{encoder_runner.name} encoder + {decoder_runner.name} decoder"
        self.img_size, self.batch_size = decoder_runner.img_size, decoder_runner.batch_size
        self.min_tokens, self.max_tokens = decoder_runner.min_tokens, decoder_runner.max_tokens
        self.encode, self.decode = encoder_runner.encode, decoder_runner.decode


def measure_parity(runner, reference, images: list[tuple[np.ndarray, Optional[np.ndarray]]],
                   config: ParityConfig = ParityConfig(), on_image: Callable[[], None] = lambda: None) -> dict:
    """images: (RGB, instance masks or None); prompts come from the masks when given (scenes). Prompts
    run through every shape the runner takes (up to its max_tokens, or DEFAULT_MAX_TOKENS), in turn
    across the images."""
    rng = np.random.default_rng(config.seed)
    max_tokens = runner.max_tokens or DEFAULT_MAX_TOKENS
    cosines, max_errors, ious, iou_errors = [], [], [], []
    by_tokens: dict[int, list[float]] = defaultdict(list)
    predictor, expected = TinySamPredictor(runner), TinySamPredictor(reference)
    for index, (rgb, masks) in enumerate(images):
        predictor.set_image(rgb)
        expected.set_image(rgb)
        cosines.append(cosine(predictor.embedding, expected.embedding))
        max_errors.append(float(np.abs(predictor.embedding - expected.embedding).max()))
        prompts = sample_user_prompts(rng, rgb.shape[:2], masks, config.prompts_per_image, max_tokens,
                                      first=index * config.prompts_per_image)
        for prompt in prompts:
            got, got_iou, _ = predictor.predict(prompt.points, prompt.labels, prompt.box)
            want, want_iou, _ = expected.predict(prompt.points, prompt.labels, prompt.box)
            prompt_ious = mask_ious(got, want)
            ious.extend(prompt_ious)
            by_tokens[prompt.tokens].extend(prompt_ious)
            iou_errors.extend(np.abs(got_iou - want_iou))
        on_image()
    return {
        "images": len(images),
        "prompts": len(images) * config.prompts_per_image,
        "embedding_cosine": summarize(cosines),
        "embedding_max_abs_error": float(max(max_errors)),
        "mask_iou": summarize(ious),
        "mask_iou_by_tokens": {tokens: summarize(values) for tokens, values in sorted(by_tokens.items())},
        "iou_prediction_abs_error": {"mean": float(np.mean(iou_errors)), "max": float(np.max(iou_errors))},
    }
