"""Calibration samples for full-integer LiteRT models: real photos and generated scenes with prompts.

The encoder sees the pixel images; the decoder sees the float encoder's embeddings of those images with
points, boxes and multi-point prompts (also with a mask prompt from a first pass), and everything-mode
batches of single points.
"""

from typing import Any, Callable, Optional

import numpy as np

from ..calibration.dataset import default_images, folder_images, sample_prompts
from ..utils.prompts import PAD_LABEL
from ..utils.amg import grid_in_pixels
from ..utils.transforms import normalized_to_pixels, preprocess, resized_shape
from .config import ConvertConfig

DEFAULT_IMAGE_COUNT = 8  # TinySAM's paper calibrates on 8 images
PROMPTS_PER_IMAGE = 6

Sample = dict[str, np.ndarray]


def calibration_images(config: ConvertConfig) -> list[tuple[np.ndarray, Optional[np.ndarray]]]:
    """(RGB image, instance masks or None) pairs: the user's folder, else built-in photos and scenes."""
    if config.calibration_images is not None:
        return [(rgb, None) for rgb in folder_images(config.calibration_images, DEFAULT_IMAGE_COUNT)]
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
                    run_decoder: Callable[[Sample], np.ndarray], seed: int = 0) -> dict[str, list[Sample]]:
    """Samples for the 'decode' and 'decode_batch' signatures; run_decoder (float model) supplies the
    low-res logits that later samples feed back as mask prompts."""
    rng = np.random.default_rng(seed)
    low = img_size // 4
    single, batched = [], []
    for (rgb, masks), embedding in zip(images, embeddings):
        coords, labels = sample_prompts(rng, rgb.shape[:2], masks, PROMPTS_PER_IMAGE, config.num_points, img_size)
        for c, l in zip(coords, labels):
            sample = {"image_embeddings": embedding, "point_coords": c[None], "point_labels": l[None],
                      "mask_input": np.zeros((1, 1, low, low), np.float32), "has_mask_input": np.zeros(1, np.float32)}
            single.append(sample)
            logits = run_decoder(sample)
            single.append({**sample, "mask_input": logits[:, :1], "has_mask_input": np.ones(1, np.float32)})
        grid_coords, grid_labels = grid_points(config.everything_batch, resized_shape(*rgb.shape[:2], img_size))
        batched.append({"image_embeddings": embedding, "point_coords": grid_coords, "point_labels": grid_labels,
                        "mask_input": np.zeros((config.everything_batch, 1, low, low), np.float32),
                        "has_mask_input": np.zeros(config.everything_batch, np.float32)})
    return {"decode": single, "decode_batch": batched}


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
