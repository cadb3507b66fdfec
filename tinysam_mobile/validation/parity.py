"""Run a backend and FP32 PyTorch on the same images and prompts, and compare what users get.

Both sides are TinySamPredictor as a user calls it (set_image on the photo, predict with points and a
box in its pixels): the same preprocessing, exactly the prompt's tokens on each side (a decoder that
padded them would be measured as it behaves), upscaling to the image's size and the threshold. Every
mask of every prompt (3 per prompt) is compared by IoU, overall and per prompt-token count.
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from ..calibration.dataset import UserPrompt, sample_user_prompts
from ..predictor import TinySamPredictor
from ..utils.prompts import DEFAULT_MAX_TOKENS, DEFAULT_PROMPTS_PER_IMAGE
from .metrics import cosine, mask_ious, summarize

# Minimum mean mask IoU against FP32 PyTorch, per precision (int8-xnnpack: int8 encoder activations, as w8a8;
# w8a16: integer-only too, so the NPU bar of w8a8).
THRESHOLDS = {"fp32": 0.995, "fp16": 0.99, "int8": 0.98, "w8a8": 0.95, "w8a16": 0.95, "int8-xnnpack": 0.95,
              "palettize8": 0.98, "palettize6": 0.97}


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


def image_parity(predictor: TinySamPredictor, expected: TinySamPredictor, rgb: np.ndarray,
                 prompts: list[UserPrompt]) -> dict:
    """One image's raw figures (JSON-ready): embedding cosine and maximum error, per prompt its token
    count and the IoU of each of its masks with the reference's, and every IoU-prediction error."""
    predictor.set_image(rgb)
    expected.set_image(rgb)
    figures = {"embedding_cosine": cosine(predictor.embedding, expected.embedding),
               "embedding_max_abs_error": float(np.abs(predictor.embedding - expected.embedding).max()),
               "prompt_tokens": [], "mask_iou": [], "iou_prediction_abs_error": []}
    for prompt in prompts:
        got, got_iou, _ = predictor.predict(prompt.points, prompt.labels, prompt.box)
        want, want_iou, _ = expected.predict(prompt.points, prompt.labels, prompt.box)
        figures["prompt_tokens"].append(prompt.tokens)
        figures["mask_iou"].append(mask_ious(got, want).tolist())
        figures["iou_prediction_abs_error"].extend(np.abs(got_iou - want_iou).tolist())
    return figures


def summarize_parity(per_image: Iterable[dict]) -> dict:
    """image_parity's figures of many images (any iterable, read once) -> the report's summary."""
    cosines, max_errors, ious, iou_errors = [], [], [], []
    by_tokens: dict[int, list[float]] = defaultdict(list)
    images = prompts = 0
    for figures in per_image:
        images += 1
        prompts += len(figures["prompt_tokens"])
        cosines.append(figures["embedding_cosine"])
        max_errors.append(figures["embedding_max_abs_error"])
        for tokens, prompt_ious in zip(figures["prompt_tokens"], figures["mask_iou"]):
            ious.extend(prompt_ious)
            by_tokens[tokens].extend(prompt_ious)
        iou_errors.extend(figures["iou_prediction_abs_error"])
    return {
        "images": images,
        "prompts": prompts,
        "embedding_cosine": summarize(cosines),
        "embedding_max_abs_error": float(max(max_errors)),
        "mask_iou": summarize(ious),
        "mask_iou_by_tokens": {tokens: summarize(values) for tokens, values in sorted(by_tokens.items())},
        "iou_prediction_abs_error": {"mean": float(np.mean(iou_errors)), "max": float(np.max(iou_errors))},
    }


def measure_parity(runner, reference, images: list[tuple[np.ndarray, Optional[np.ndarray]]],
                   config: ParityConfig = ParityConfig(), on_image: Callable[[], None] = lambda: None) -> dict:
    """images: (RGB, instance masks or None); prompts come from the masks when given (scenes). Prompts
    run through every shape the runner takes (up to its max_tokens, or DEFAULT_MAX_TOKENS), in turn
    across the images."""
    rng = np.random.default_rng(config.seed)
    max_tokens = runner.max_tokens or DEFAULT_MAX_TOKENS
    predictor, expected = TinySamPredictor(runner), TinySamPredictor(reference)
    per_image = []
    for index, (rgb, masks) in enumerate(images):
        prompts = sample_user_prompts(rng, rgb.shape[:2], masks, config.prompts_per_image, max_tokens,
                                      first=index * config.prompts_per_image)
        per_image.append(image_parity(predictor, expected, rgb, prompts))
        on_image()
    return summarize_parity(per_image)
