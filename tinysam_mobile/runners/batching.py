"""Fitting any batch of prompts onto fixed-shape decoders: one prompt of num_points points, or
batch_size prompts of batch_points points (everything mode)."""

from typing import Callable

import numpy as np

from ..utils.prompts import PAD_LABEL

Decode = Callable[..., tuple[np.ndarray, np.ndarray]]


def pad_point_axis(coords: np.ndarray, labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, N, 2) / (B, N) -> (B, count, ...) padded with (0, 0) / label -1."""
    b, n = labels.shape
    if n > count:
        raise ValueError(f"{n} points do not fit a decoder of {count}")
    return (np.concatenate([coords, np.zeros((b, count - n, 2), np.float32)], 1),
            np.concatenate([labels, np.full((b, count - n), PAD_LABEL, np.float32)], 1))


def pad_batch(array: np.ndarray, size: int) -> np.ndarray:
    """Repeat the last entry so the batch axis reaches `size` (the extra results are dropped)."""
    return np.concatenate([array, np.repeat(array[-1:], size - len(array), 0)]) if len(array) < size else array


def decode_in_batches(runner, embedding, point_coords, point_labels, mask_input, has_mask_input,
                      single: Decode, batched: Decode) -> tuple[np.ndarray, np.ndarray]:
    """Prompts of at most runner.batch_points points go through `batched` runner.batch_size at a time;
    others one by one through `single` (runner.num_points points)."""
    coords = np.asarray(point_coords, np.float32)
    labels = np.asarray(point_labels, np.float32)
    masks = np.asarray(mask_input, np.float32)
    has_mask = np.asarray(has_mask_input, np.float32)
    total = len(labels)
    results = []
    if total > 1 and labels.shape[1] <= runner.batch_points:
        coords, labels = pad_point_axis(coords, labels, runner.batch_points)
        for start in range(0, total, runner.batch_size):
            part = slice(start, start + runner.batch_size)
            logits, iou = batched(embedding, *(pad_batch(a[part], runner.batch_size)
                                               for a in (coords, labels, masks, has_mask)))
            count = min(runner.batch_size, total - start)
            results.append((logits[:count], iou[:count]))
    else:
        coords, labels = pad_point_axis(coords, labels, runner.num_points)
        for i in range(total):
            results.append(single(embedding, coords[i:i + 1], labels[i:i + 1], masks[i:i + 1], has_mask[i:i + 1]))
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])
