"""Building blocks of "segment everything": prompt grids, mask scoring and filtering, box NMS, RLE.

Pure functions on numpy / torch arrays, shared by the dense and the hierarchical generator.
Semantics follow SAM's automatic mask generator and TinySAM's hierarchical one (REFERENCE.md 5).
"""

from typing import Any

import numpy as np
import torch
from scipy import ndimage

# Round-2 offsets around each round-1 point, in lattice strides (dx, dy), in the public generator's
# order: the 3x3 block minus the point itself, then the +2 column, the +2 row and the +2 corner.
# +2 exists only where it stays inside the image.
HIERARCHY_OFFSETS = np.array(
    [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
    + [(2, dy) for dy in (-1, 0, 1)] + [(dx, 2) for dx in (-1, 0, 1)] + [(2, 2)]
)
# Round 2 is points_per_side / ROUND1_DIVISOR times denser than round 1 (the offsets above span it).
ROUND1_DIVISOR = 4


def point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) (x, y) points at ((i + 0.5) / n, (j + 0.5) / n) in [0, 1]^2, x varying fastest."""
    ticks = (np.arange(n_per_side) + 0.5) / n_per_side
    xs, ys = np.meshgrid(ticks, ticks)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def grid_in_pixels(n_per_side: int, image_size: tuple[int, int]) -> np.ndarray:
    """point_grid scaled to an image of size (h, w): (x, y) pixel coordinates."""
    h, w = image_size
    return point_grid(n_per_side) * np.array([w, h], dtype=np.float64)


def hierarchy_strides(image_size: tuple[int, int], points_per_side: int) -> tuple[int, int]:
    """(x, y) strides of the round-2 lattice: side // points_per_side as in the public code (so its
    results are reproduced for every size), but at least one pixel so tiny images still get a lattice."""
    h, w = image_size
    return max(w // points_per_side, 1), max(h // points_per_side, 1)


def hierarchy_candidates(round1_points: np.ndarray, image_size: tuple[int, int], points_per_side: int
                         ) -> np.ndarray:
    """Round-2 candidate points (M, 2) (x, y) in pixels, before the coverage test.

    Around each round-1 point: the offsets HIERARCHY_OFFSETS times the strides. For sides divisible by
    points_per_side this is the lattice j * side / points_per_side, j = 1 .. points_per_side - 1,
    minus the round-1 points. Unlike the public code it drops points outside the image and repeats
    (both only happen on images narrower than 4 * points_per_side pixels).
    """
    h, w = image_size
    stride = np.array(hierarchy_strides(image_size, points_per_side), dtype=np.float64)
    candidates = (round1_points[:, None, :] + HIERARCHY_OFFSETS[None] * stride).reshape(-1, 2)
    x, y = candidates[:, 0], candidates[:, 1]
    inside = (x >= 0) & (y >= 0) & (x < w) & (y < h)
    candidates = candidates[inside]
    # Keep the first occurrence of each point and drop those that repeat a round-1 point.
    both = np.concatenate([round1_points, candidates])
    _, first = np.unique(both, axis=0, return_index=True)
    fresh = np.sort(first[first >= len(round1_points)]) - len(round1_points)
    return candidates[fresh]


def covered_at(covered: np.ndarray, points: np.ndarray) -> np.ndarray:
    """covered (H, W) bool looked up at the pixels holding the (x, y) points (coordinates floored)."""
    cols, rows = points[:, 0].astype(np.int64), points[:, 1].astype(np.int64)
    return covered[rows, cols]


def stability_scores(logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """IoU of (logits > threshold + offset) and (logits > threshold - offset) per mask, (N, H, W) -> (N,).

    The first mask lies inside the second, so the IoU is a ratio of pixel counts. An empty low-cut mask
    gives NaN, which fails every threshold comparison (as in SAM).
    """
    inner = (logits > mask_threshold + offset).sum((-1, -2), dtype=torch.int32)
    outer = (logits > mask_threshold - offset).sum((-1, -2), dtype=torch.int32)
    return inner / outer


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) int64 XYXY boxes of inclusive pixel indices; (0, 0, 0, 0) when empty."""
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros(0, 4, dtype=torch.int64)
    rows, cols = masks.any(2), masks.any(1)

    def extent(hit: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(size).expand_as(hit)
        first = torch.where(hit, index, size).amin(1)
        last = torch.where(hit, index, -1).amax(1)
        return first, last

    x0, x1 = extent(cols, w)
    y0, y1 = extent(rows, h)
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    return torch.where(rows.any(1, keepdim=True), boxes, 0)


def box_xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """SAM's record convention: width = x1 - x0 and height = y1 - y0 of the inclusive XYXY box."""
    boxes = np.asarray(boxes).copy()
    boxes[..., 2:] -= boxes[..., :2]
    return boxes


def box_iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """Pairwise IoU (N, N) of XYXY boxes, with torchvision's arithmetic (areas without +1, float32)."""
    b = np.asarray(boxes, dtype=np.float32)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (np.minimum(b[:, None, 2:], b[None, :, 2:]) - np.maximum(b[:, None, :2], b[None, :, :2])).clip(min=0)
    inter = wh[..., 0] * wh[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area[:, None] + area[None, :] - inter)


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS (torchvision.ops.nms semantics): indices of the kept boxes, best score first.

    Visits boxes by decreasing score (ties keep their input order) and drops every later box whose IoU
    with a kept one exceeds iou_threshold.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    overlaps = box_iou_matrix(np.asarray(boxes)[order]) > iou_threshold
    suppressed = np.zeros(len(order), dtype=bool)
    for i in range(len(order)):
        if not suppressed[i]:
            suppressed[i + 1:] |= overlaps[i, i + 1:]
    return order[~suppressed]


def _coco_mask():
    # Imported when RLEs are used, not with the package: the trainer (which imports the package) also
    # runs on GPU machines that carry only torch, numpy, Pillow, safetensors and scikit-image.
    from pycocotools import mask

    return mask


def encode_rle(masks: np.ndarray) -> list[dict[str, Any]]:
    """(N, H, W) bool -> COCO compressed RLEs (pycocotools), counts as str so they serialise to JSON."""
    if len(masks) == 0:
        return []
    rles = _coco_mask().encode(np.asfortranarray(np.moveaxis(masks, 0, -1).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def decode_rle(rles: list[dict[str, Any]], image_size: tuple[int, int]) -> np.ndarray:
    """COCO RLEs -> (N, H, W) bool (inverse of encode_rle)."""
    if not rles:
        return np.zeros((0, *image_size), dtype=bool)
    return np.moveaxis(_coco_mask().decode(list(rles)), -1, 0).astype(bool)


def rle_areas(rles: list[dict[str, Any]]) -> np.ndarray:
    return _coco_mask().area(list(rles)).astype(np.int64) if rles else np.zeros(0, np.int64)


def rle_iou_matrix(rles_a: list[dict[str, Any]], rles_b: list[dict[str, Any]]) -> np.ndarray:
    """Pairwise mask IoU (len(a), len(b)) computed by pycocotools on the RLEs."""
    if not rles_a or not rles_b:
        return np.zeros((len(rles_a), len(rles_b)))
    return np.asarray(_coco_mask().iou(list(rles_a), list(rles_b), [0] * len(rles_b))).reshape(len(rles_a), len(rles_b))


def remove_small_regions(mask: np.ndarray, min_area: int, mode: str) -> tuple[np.ndarray, bool]:
    """SAM's clean-up: mode 'holes' fills holes, 'islands' drops islands smaller than min_area pixels
    (8-connected regions). If every island is small, the largest stays. Returns (mask, changed)."""
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    fill_holes = mode == "holes"
    regions, count = ndimage.label(mask ^ fill_holes, structure=np.ones((3, 3)))
    sizes = np.bincount(regions.ravel(), minlength=count + 1)[1:]
    small = np.flatnonzero(sizes < min_area) + 1
    if small.size == 0:
        return mask, False
    if fill_holes:
        return mask | np.isin(regions, small), True
    keep = np.setdiff1d(np.arange(1, count + 1), small)
    if keep.size == 0:
        keep = np.array([np.argmax(sizes) + 1])
    return np.isin(regions, keep), True
