"""Closeness of one backend's outputs to the reference's: embeddings, masks, IoU predictions."""

import numpy as np
from pycocotools import mask as mask_utils


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Summed by numpy's pairwise sum, not BLAS, whose result depends on its thread count: the same in
    every process (a Ray worker runs BLAS on one thread)."""
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(np.sum(a * b) / max(np.sqrt(np.sum(a * a) * np.sum(b * b)), 1e-12))


def mask_ious(masks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """IoU of each boolean (H, W) mask with its reference mask (pycocotools); two empty masks agree (1)."""
    encode = lambda m: mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))  # noqa: E731
    out = []
    for mask, ref in zip(masks, reference):
        if not mask.any() and not ref.any():
            out.append(1.0)
        else:
            out.append(float(mask_utils.iou([encode(mask)], [encode(ref)], [0])[0, 0]))
    return np.array(out)


def summarize(values: "list[float] | np.ndarray") -> dict[str, float]:
    values = np.asarray(values, np.float64)
    p5, p25, median, p75 = np.percentile(values, [5, 25, 50, 75])
    return {"mean": float(values.mean()), "min": float(values.min()), "p5": float(p5), "p25": float(p25),
            "median": float(median), "p75": float(p75), "max": float(values.max()), "count": int(values.size)}
