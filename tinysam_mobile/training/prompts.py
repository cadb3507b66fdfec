"""Prompts sampled from ground-truth masks, in the layout the deployed decoder receives.

Every prompt of one kind has the same number of slots, as encode_prompts builds them at inference:
clicks then one padding point; box corners alone; clicks then the box corners. A few extra padding
slots are sometimes added, as fixed-shape mobile decoders pad to their point count.
"""

import numpy as np

from ..utils.prompts import BOX_LABELS, PAD_LABEL

# Ambiguous prompts (a single click) are supervised best-of-3; the rest on all three tokens.
KINDS = ("point", "box", "points")


def random_pixel(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """(x, y) of a uniformly drawn True pixel, at its centre as users click."""
    ys, xs = np.nonzero(mask)
    i = rng.integers(len(ys))
    return np.array([xs[i] + 0.5, ys[i] + 0.5], np.float32)


def noisy_box(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Tight box (x0, y0, x1, y1) jittered by up to 10% of its side (20 px at most), as SAM trains."""
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    side = np.array([box[2] - box[0], box[3] - box[1]] * 2, np.float32)
    jitter = rng.normal(0, 0.1, 4) * side
    box = box + np.clip(jitter, -20, 20)
    h, w = mask.shape
    return np.clip(box, 0, [w, h, w, h]).astype(np.float32)


def first_prompt(rng: np.random.Generator, kind: str, mask: np.ndarray, clicks: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(coords (N, 2), labels (N,)) of one prompt for `mask`; `clicks` is the click count of "points"."""
    if kind == "point":
        return np.stack([random_pixel(rng, mask), np.zeros(2, np.float32)]), np.array([1.0, PAD_LABEL], np.float32)
    if kind == "box":
        return noisy_box(rng, mask).reshape(2, 2), np.array(BOX_LABELS, np.float32)
    # Several clicks: at least one inside, the others inside or (negative) just outside.
    outside = ~mask
    coords, labels = [random_pixel(rng, mask)], [1.0]
    for _ in range(clicks - 1):
        positive = rng.random() < 0.6 or not outside.any()
        coords.append(random_pixel(rng, mask if positive else _near(outside, mask)))
        labels.append(1.0 if positive else 0.0)
    coords.append(np.zeros(2, np.float32))
    labels.append(PAD_LABEL)
    return np.stack(coords), np.array(labels, np.float32)


def _near(outside: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Background pixels inside the object's box grown by half its size (where negatives help)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    dy, dx = (ys.max() - ys.min()) // 2 + 2, (xs.max() - xs.min()) // 2 + 2
    region = np.zeros_like(mask)
    region[max(0, ys.min() - dy): ys.max() + dy + 1, max(0, xs.min() - dx): xs.max() + dx + 1] = True
    near = region & outside
    return near if near.any() else outside


def correction_click(rng: np.random.Generator, predicted: np.ndarray, mask: np.ndarray
                     ) -> tuple[np.ndarray, float]:
    """SAM's next click: uniformly in the error region, positive in a missed part, else negative."""
    errors = predicted ^ mask
    if not errors.any():
        return random_pixel(rng, mask), 1.0
    xy = random_pixel(rng, errors)
    return xy, float(mask[int(xy[1]), int(xy[0])])


def add_click(coords: np.ndarray, labels: np.ndarray, xy: np.ndarray, label: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Put a new click after the existing clicks (before any box corners or padding)."""
    at = int(np.sum((labels == 0) | (labels == 1)))
    return np.insert(coords, at, xy, axis=0), np.insert(labels, at, label)
