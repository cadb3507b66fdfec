"""Fitting any batch of prompts onto fixed-shape decoders: one prompt of exactly its token count, or
batch_size prompts of batch_points tokens (everything mode)."""

from typing import Callable

import numpy as np

from ..errors import PromptError

Decode = Callable[..., tuple[np.ndarray, np.ndarray]]


def pad_batch(array: np.ndarray, size: int) -> np.ndarray:
    """Repeat the last entry so the batch axis reaches `size` (the extra results are dropped)."""
    return np.concatenate([array, np.repeat(array[-1:], size - len(array), 0)]) if len(array) < size else array


def check_token_count(tokens: int, min_tokens: int, max_tokens: int) -> None:
    if not min_tokens <= tokens <= max_tokens:
        raise PromptError(f"a prompt of {tokens} tokens (points, then 2 box corners or 1 padding point): the "
                          f"decoder takes {min_tokens} to {max_tokens}")


def decode_in_batches(runner, embedding, point_coords, point_labels, mask_input, has_mask_input,
                      single: Decode, batched: Decode) -> tuple[np.ndarray, np.ndarray]:
    """Several prompts of exactly runner.batch_points tokens go through `batched` runner.batch_size at a
    time; others one by one through `single`, at their own token count (never padded: a padding token
    changes the masks), which must lie in runner.min_tokens..runner.max_tokens."""
    coords = np.asarray(point_coords, np.float32)
    labels = np.asarray(point_labels, np.float32)
    masks = np.asarray(mask_input, np.float32)
    has_mask = np.asarray(has_mask_input, np.float32)
    total, tokens = labels.shape
    results = []
    if total > 1 and tokens == runner.batch_points:
        for start in range(0, total, runner.batch_size):
            part = slice(start, start + runner.batch_size)
            logits, iou = batched(embedding, *(pad_batch(a[part], runner.batch_size)
                                               for a in (coords, labels, masks, has_mask)))
            count = min(runner.batch_size, total - start)
            results.append((logits[:count], iou[:count]))
    else:
        check_token_count(tokens, runner.min_tokens, runner.max_tokens)
        for i in range(total):
            results.append(single(embedding, coords[i:i + 1], labels[i:i + 1], masks[i:i + 1], has_mask[i:i + 1]))
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])
