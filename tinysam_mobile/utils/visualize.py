"""Pictures people would rather look at than read: masks over photos, prompts marked."""

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .files import atomic_path

MASK_COLOR = (30, 144, 255)


def distinct_colors(n: int, seed: int = 0) -> np.ndarray:
    """n saturated colours, deterministic."""
    rng = np.random.default_rng(seed)
    hues = (np.arange(n) * 0.618033988749895 + rng.random()) % 1.0
    hsv = np.stack([hues * 255, np.full(n, 200), np.full(n, 255)], axis=1).astype(np.uint8)
    return np.asarray(Image.fromarray(hsv[None]).convert("HSV").convert("RGB"))[0] if n else np.zeros((0, 3), np.uint8)


def _edges(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def overlay_masks(image: np.ndarray, masks: Sequence[np.ndarray], colors: Optional[np.ndarray] = None,
                  alpha: float = 0.5) -> np.ndarray:
    """Blend each boolean HxW mask in its colour over the RGB image, with a solid outline."""
    out = image.astype(np.float32)
    colors = distinct_colors(len(masks)) if colors is None else colors
    for mask, color in zip(masks, colors):
        mask = np.asarray(mask, bool)
        out[mask] = out[mask] * (1 - alpha) + np.asarray(color, np.float32) * alpha
        out[_edges(mask)] = color
    return out.clip(0, 255).astype(np.uint8)


def draw_prompts(image: np.ndarray, point_coords: Optional[np.ndarray] = None,
                 point_labels: Optional[np.ndarray] = None, box: Optional[np.ndarray] = None) -> np.ndarray:
    """Discs: green for foreground points, red for background, a box outline."""
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    radius = max(3, round(max(image.shape[:2]) / 120))
    if box is not None:
        draw.rectangle([float(v) for v in box], outline=(0, 255, 0), width=max(2, radius // 2))
    if point_coords is not None:
        for (x, y), label in zip(point_coords, point_labels):
            fill = (0, 220, 0) if label == 1 else (230, 0, 0)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill, outline=(255, 255, 255))
    return np.asarray(pil)


def save_png(array: np.ndarray, path: "str | Path") -> None:
    """Write a PNG atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
