"""Turning user prompts into the decoder's contract: (x, y) points with labels in the input frame.

Label convention (SAM's ONNX decoder): -1 padding, 0 negative point, 1 positive point,
2 box top-left, 3 box bottom-right.
"""

from typing import Optional

import numpy as np

from ..errors import PromptError
from .transforms import apply_coords

PAD_LABEL = -1.0
BOX_LABELS = (2.0, 3.0)
# A prompt's decoder tokens are its points, then 2 box corners or 1 padding point (token_count); decoders
# take exactly that many, from MIN_PROMPT_TOKENS (an empty point list) to their maximum.
MIN_PROMPT_TOKENS = 1
DEFAULT_MAX_TOKENS = 10  # 8 points and a box, or 9 points


def check_prompts(point_coords: Optional[np.ndarray], point_labels: Optional[np.ndarray],
                  box: Optional[np.ndarray], original_size: tuple[int, int]) -> None:
    """Raise PromptError for prompts that are malformed or fall outside the image."""
    h, w = original_size
    if point_coords is None and box is None:
        raise PromptError("give at least one point or a box")
    if point_coords is not None:
        if point_labels is None:
            raise PromptError("point_labels are required with point_coords")
        coords, labels = np.asarray(point_coords, np.float64), np.asarray(point_labels)
        if coords.ndim != 2 or coords.shape[1] != 2 or labels.shape != (coords.shape[0],):
            raise PromptError(f"expected point_coords (N, 2) and point_labels (N,), got {coords.shape}, {labels.shape}")
        if not set(np.unique(labels).tolist()) <= {0, 1}:
            raise PromptError("point labels must be 1 (foreground) or 0 (background)")
        for x, y in coords:
            if not (0 <= x <= w and 0 <= y <= h):
                raise PromptError(f"point ({x:g}, {y:g}) is outside the {w}x{h} image")
    if box is not None:
        b = np.asarray(box, np.float64).reshape(-1)
        if b.shape != (4,):
            raise PromptError(f"a box is 4 numbers X0,Y0,X1,Y1, got {b.size}")
        x0, y0, x1, y1 = b
        if not (x0 < x1 and y0 < y1):
            raise PromptError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) must have x0 < x1 and y0 < y1")
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise PromptError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) reaches outside the {w}x{h} image")


def token_count(point_count: int, has_box: bool) -> int:
    """Decoder tokens of a prompt as the reference builds it: its points, then two box corners or one
    padding point."""
    return point_count + (2 if has_box else 1)


def token_range(max_tokens: int) -> range:
    """Every prompt-token count a decoder of at most max_tokens takes."""
    return range(MIN_PROMPT_TOKENS, max_tokens + 1)


def prompt_shapes(max_tokens: int) -> list[tuple[int, bool]]:
    """Every (point count, box) whose tokens fit max_tokens: 0 to max_tokens - 1 points without a box
    (0: an empty point list), 0 to max_tokens - 2 with one."""
    return ([(k, False) for k in range(max_tokens)] + [(k, True) for k in range(max_tokens - 1)])


# validate and report: one prompt of every shape a default decoder takes, per image
DEFAULT_PROMPTS_PER_IMAGE = len(prompt_shapes(DEFAULT_MAX_TOKENS))


def encode_prompts(point_coords: Optional[np.ndarray], point_labels: Optional[np.ndarray],
                   box: Optional[np.ndarray], original_size: tuple[int, int], target: int,
                   max_tokens: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """User prompts in original-image pixels -> (coords (1, T, 2), labels (1, T)) float32, exactly the
    tokens SAM's predictor builds: points first, then the two box corners, or without a box one (0, 0)
    point with label -1. Nothing else is padded: every padding token takes part in the decoder's
    attention and changes the masks. max_tokens: the most a decoder takes (more is refused)."""
    check_prompts(point_coords, point_labels, box, original_size)
    coords, labels = [], []
    if point_coords is not None:
        coords.append(apply_coords(np.asarray(point_coords, np.float32), original_size, target))
        labels.append(np.asarray(point_labels, np.float32))
    if box is not None:
        coords.append(apply_coords(np.asarray(box, np.float32).reshape(2, 2), original_size, target))
        labels.append(np.array(BOX_LABELS, np.float32))
    else:
        coords.append(np.zeros((1, 2), np.float32))
        labels.append(np.array([PAD_LABEL], np.float32))
    coords_arr, labels_arr = np.concatenate(coords), np.concatenate(labels)
    if max_tokens is not None and len(labels_arr) > max_tokens:
        raise PromptError(f"{len(labels_arr)} prompt tokens (points, then 2 box corners or 1 padding point) exceed "
                          f"the decoder's {max_tokens}")
    return coords_arr[None], labels_arr[None]


def pad_points(coords: np.ndarray, labels: np.ndarray, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (N, 2) / (N,) to num_points with (0, 0) and label -1, so prompts of several lengths stack into
    one batch (training, PTQ calibration); padded prompts decode differently from exact ones."""
    n = coords.shape[0]
    if n > num_points:
        raise PromptError(f"{n} prompt points (box corners and padding included) exceed {num_points}")
    pad = num_points - n
    return (np.concatenate([coords, np.zeros((pad, 2), np.float32)]),
            np.concatenate([labels, np.full(pad, PAD_LABEL, np.float32)]))


POINT_FEATURES_FORMULA = ("point_features = concat(sin(a), cos(a)) over the last axis, "
                          "a = 2 * pi * ((2 * (xy + 0.5) / input_size - 1) @ gaussian_matrix)")


def point_features(coords: np.ndarray, gaussian_matrix: np.ndarray, input_size: int) -> np.ndarray:
    """Decoder points (..., 2) in the input frame -> their Fourier features (..., 2K) float32, the prompt
    encoder's first step (POINT_FEATURES_FORMULA), for decoders that take features instead of coordinates
    (the full-integer LiteRT decoder: sin / cos have no integer kernels). gaussian_matrix (2, K)."""
    normalized = 2 * ((np.asarray(coords, np.float32) + 0.5) / input_size) - 1
    angles = 2 * np.pi * (normalized @ np.asarray(gaussian_matrix, np.float32))
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)
