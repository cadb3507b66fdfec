"""Calibration samples for full-integer LiteRT models: real photos and generated scenes with prompts.

The encoder sees the pixel images; the decoder sees the float encoder's embeddings of those images with
prompts of every token count (points, boxes, both; also with a mask prompt from a first pass), each
through its own signature, and everything-mode batches of single points.
"""

from typing import Any, Callable, Optional

import numpy as np

from ..calibration.dataset import default_images, folder_images, sample_user_prompts
from ..utils.prompts import PAD_LABEL, encode_prompts, prompt_shapes
from ..utils.amg import grid_in_pixels
from ..utils.transforms import normalized_to_pixels, preprocess, resized_shape
from .config import ConvertConfig, token_counts
from .export_modules import BATCH_SIGNATURE, token_signature

DEFAULT_IMAGE_COUNT = 8  # TinySAM's paper calibrates on 8 images

Sample = dict[str, np.ndarray]


def calibration_images(config: ConvertConfig, img_size: int) -> list[tuple[np.ndarray, Optional[np.ndarray]]]:
    """(RGB image, instance masks or None) pairs: the user's folder, else built-in photos and scenes."""
    if config.calibration_images is not None:
        return [(rgb, None) for rgb in folder_images(config.calibration_images, DEFAULT_IMAGE_COUNT, img_size)]
    return default_images(DEFAULT_IMAGE_COUNT)


def encoder_samples(images, img_size: int) -> list[Sample]:
    return [{"image": normalized_to_pixels(preprocess(rgb, img_size)[0])} for rgb, _ in images]


def grid_points(batch: int, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Everything-mode prompts: `batch` points on a regular grid over the image, each padded by one point."""
    points = grid_in_pixels(int(np.ceil(np.sqrt(batch))), input_size)[:batch]
    coords = np.zeros((batch, 2, 2), np.float32)
    coords[:, 0] = points
    labels = np.tile(np.array([[1.0, PAD_LABEL]], np.float32), (batch, 1))
    return coords, labels


def decoder_samples(images, embeddings: list[np.ndarray], config: ConvertConfig, img_size: int,
                    run_decoder: Callable[[str, Sample], np.ndarray], seed: int = 0) -> dict[str, list[Sample]]:
    """Samples for every decoder signature: on each image one prompt of every shape (point count, box)
    that fits config.max_tokens, to its exact-token signature, once without and once with the mask
    prompt of the first pass; and a grid batch to 'decode_batch'. run_decoder(signature, sample) (float
    model) supplies the low-res logits that the second pass feeds back."""
    rng = np.random.default_rng(seed)
    low = img_size // 4
    samples: dict[str, list[Sample]] = {token_signature(t): [] for t in token_counts(config)}
    samples[BATCH_SIGNATURE] = []
    shapes = len(prompt_shapes(config.max_tokens))
    for (rgb, masks), embedding in zip(images, embeddings):
        for prompt in sample_user_prompts(rng, rgb.shape[:2], masks, shapes, config.max_tokens):
            coords, labels = encode_prompts(prompt.points, prompt.labels, prompt.box, rgb.shape[:2], img_size)
            signature = token_signature(prompt.tokens)
            sample = {"image_embeddings": embedding, "point_coords": coords, "point_labels": labels,
                      "mask_input": np.zeros((1, 1, low, low), np.float32), "has_mask_input": np.zeros(1, np.float32)}
            logits = run_decoder(signature, sample)
            samples[signature] += [sample, {**sample, "mask_input": logits[:, :1], "has_mask_input": np.ones(1, np.float32)}]
        grid_coords, grid_labels = grid_points(config.everything_batch, resized_shape(*rgb.shape[:2], img_size))
        samples[BATCH_SIGNATURE].append({
            "image_embeddings": embedding, "point_coords": grid_coords, "point_labels": grid_labels,
            "mask_input": np.zeros((config.everything_batch, 1, low, low), np.float32),
            "has_mask_input": np.zeros(config.everything_batch, np.float32)})
    return samples


def override_ranges(qsvs: dict[str, Any], ranges: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Replace calibrated activation ranges by given ones ({tensor name: (min, max)}): the hook through
    which externally searched scales (TinySAM PTQ) or fixed ranges (the 0-255 pixel input) enter."""
    out = dict(qsvs)
    for name, (low, high) in ranges.items():
        if name not in out:
            raise KeyError(f"no calibrated tensor named {name!r}")
        shape = np.asarray(out[name]["min"]).shape
        out[name] = {**out[name], "min": np.full(shape, low, np.float32), "max": np.full(shape, high, np.float32)}
    return out
