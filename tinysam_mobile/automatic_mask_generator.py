"""Segment everything: TinySAM's hierarchical generator and SAM's dense grid, over any runner.

Both encode the image once, decode single-point prompts in batches (one positive point plus the
padding point, exactly the predictor's single-click prompt) and share every filter:
predicted IoU > pred_iou_thresh, stability >= stability_score_thresh, one box NMS, optional removal
of small holes and islands. The hierarchical generator first decodes a coarse grid, marks what its
confident masks cover (logit > high_score_thresh) and decodes only the uncovered lattice points.

Speed without changing results: the IoU filter runs on the decoder's outputs before any mask is
upsampled (it does not depend on the masks), so only survivors are upsampled, scored and kept, as
run-length encodings. Stability stays on the upsampled logits, where SAM computes it. A runner with
`decode_filtered` (PyTorch) goes further: it predicts the IoUs of every prompt without computing masks
and decodes in full only the prompts some of whose masks can pass.
"""

import time
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Optional

import numpy as np
import torch

from .errors import TinySamError
from .modeling import TinySam
from .predictor import TinySamPredictor
from .runners import Runner
from .utils import amg
from .utils.prompts import PAD_LABEL, token_count
from .utils.transforms import MASK_THRESHOLD, apply_coords, upscale_logits

OUTPUT_MODES = ("binary_mask", "coco_rle")
# Upsampled logits of one chunk of surviving masks stay below this many bytes.
UPSAMPLE_BUDGET_BYTES = 256 << 20

Progress = Callable[[int, int], None]  # (prompts decoded so far, prompts planned so far)


@dataclass(frozen=True)
class EverythingConfig:
    """Parameters of both generators; the defaults are the public TinySAM / SAM ones."""

    points_per_side: int = 32  # dense grid side; the hierarchical lattice is this fine, its first round 4x coarser
    points_per_batch: int = 64  # prompts per decoder call
    pred_iou_thresh: float = 0.88  # keep masks whose predicted IoU is above this (0 disables)
    stability_score_thresh: float = 0.95  # keep masks at least this stable (0 disables)
    stability_score_offset: float = 1.0  # logit offset of the stability score's two cuts
    box_nms_thresh: float = 0.7  # box IoU above which the lower-scored mask is dropped
    high_score_thresh: float = 8.5  # hierarchical: logit above which a round-1 mask covers a pixel
    min_mask_region_area: int = 0  # fill holes / drop islands smaller than this many pixels (0 disables)
    output_mode: str = "binary_mask"  # segmentation as a bool HxW array, or "coco_rle" (JSON-ready)

    def __post_init__(self) -> None:
        if self.points_per_side < amg.ROUND1_DIVISOR:
            raise TinySamError(f"points_per_side must be at least {amg.ROUND1_DIVISOR}, got {self.points_per_side}")
        if self.points_per_batch < 1:
            raise TinySamError(f"points_per_batch must be at least 1, got {self.points_per_batch}")
        if self.output_mode not in OUTPUT_MODES:
            raise TinySamError(f"output_mode must be one of {', '.join(OUTPUT_MODES)}, got {self.output_mode!r}")
        if self.min_mask_region_area < 0:
            raise TinySamError("min_mask_region_area must not be negative")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise TinySamError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


@dataclass
class MaskCandidates:
    """Masks that passed the per-mask filters, as parallel arrays (masks as COCO RLE)."""

    rles: list = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))  # XYXY inclusive
    iou: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    stability: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (x, y) prompt in image pixels

    def __len__(self) -> int:
        return len(self.rles)

    def select(self, index: np.ndarray) -> "MaskCandidates":
        return MaskCandidates([self.rles[i] for i in index], self.boxes[index], self.iou[index],
                              self.stability[index], self.points[index])

    @staticmethod
    def concat(parts: list["MaskCandidates"]) -> "MaskCandidates":
        if not parts:
            return MaskCandidates()
        return MaskCandidates(
            [rle for part in parts for rle in part.rles],
            *(np.concatenate([getattr(part, f.name) for part in parts]) for f in fields(MaskCandidates)[1:]),
        )


@dataclass
class GenerateStats:
    """What the last generate() call did."""

    prompts_per_round: list[int] = field(default_factory=list)
    decoder_calls: int = 0
    prompts_with_masks: int = 0  # prompts whose masks were decoded (runners with decode_filtered skip the rest)
    encode_s: float = 0.0
    masks_s: float = 0.0  # decoding, filtering and encoding the masks
    total_s: float = 0.0
    cpu_s: float = 0.0  # process CPU time of the whole call (all threads): robust on a shared machine

    @property
    def prompts(self) -> int:
        return sum(self.prompts_per_round)


class _MaskGenerator:
    """Shared machinery; subclasses choose which points are prompted (`_candidates`)."""

    def __init__(self, model_or_runner: "TinySam | Runner", config: Optional[EverythingConfig] = None,
                 **overrides: Any) -> None:
        """model_or_runner: a TinySam (run through PyTorch) or any Runner. config: an EverythingConfig;
        keyword overrides replace single fields (e.g. pred_iou_thresh=0.8)."""
        try:
            self.config = replace(config or EverythingConfig(), **overrides)
        except TypeError as exc:
            raise TinySamError(f"unknown generator option: {exc}") from None
        self.predictor = TinySamPredictor(model_or_runner)
        self.stats = GenerateStats()

    def generate(self, image: Any, progress: Optional[Progress] = None) -> list[dict[str, Any]]:
        """Masks of everything in `image` (path, PIL image or RGB array), best predicted IoU first.

        Each record: segmentation (bool HxW, or COCO RLE with output_mode="coco_rle"), area (pixels),
        bbox (XYWH in SAM's convention: W = x1 - x0 of the inclusive pixel box), predicted_iou,
        point_coords ([[x, y]], the prompt in image pixels) and stability_score.
        """
        self.stats = GenerateStats()
        start, cpu_start = time.perf_counter(), time.process_time()
        self.predictor.set_image(image)
        self.stats.encode_s = time.perf_counter() - start
        progress = progress or (lambda done, planned: None)
        candidates = self._candidates(progress)
        progress(self.stats.prompts, self.stats.prompts)
        records = self._postprocess(candidates)
        self.stats.total_s = time.perf_counter() - start
        self.stats.cpu_s = time.process_time() - cpu_start
        self.stats.masks_s = self.stats.total_s - self.stats.encode_s
        return records

    def _candidates(self, progress: Progress) -> MaskCandidates:
        raise NotImplementedError

    def _decode_points(self, points: np.ndarray, progress: Progress, planned: int,
                       covered: Optional[np.ndarray] = None) -> MaskCandidates:
        """Decode (N, 2) pixel points in batches; keep the masks that pass the IoU and stability filters.
        With `covered` (H, W bool), OR into it where kept masks exceed high_score_thresh."""
        self.stats.prompts_per_round.append(len(points))
        done = sum(self.stats.prompts_per_round[:-1])
        batch = self.config.points_per_batch
        parts = []
        for first in range(0, len(points), batch):
            chunk = points[first:first + batch]
            parts.append(self._decode_batch(chunk, covered))
            progress(done + first + len(chunk), planned)
        return MaskCandidates.concat(parts)

    def _decode_batch(self, points: np.ndarray, covered: Optional[np.ndarray]) -> MaskCandidates:
        cfg, predictor, runner = self.config, self.predictor, self.predictor.runner
        n = len(points)
        tokens = token_count(1, has_box=False)  # the point and SAM's padding point, as the predictor builds them
        coords = np.zeros((n, tokens, 2), np.float32)
        coords[:, 0] = apply_coords(points, predictor.original_size, runner.img_size)
        labels = np.full((n, tokens), PAD_LABEL, np.float32)
        labels[:, 0] = 1.0
        low_res_side = predictor.embedding.shape[-1] * 4
        decode_filtered = getattr(runner, "decode_filtered", None)
        if decode_filtered is not None and cfg.pred_iou_thresh > 0:
            # The runner leaves out prompts whose every mask fails the IoU filter, without their masks.
            index, low_res, iou = decode_filtered(predictor.embedding, coords, labels, cfg.pred_iou_thresh)
            points = points[index]
        else:
            low_res, iou = runner.decode(predictor.embedding, coords, labels,
                                         np.zeros((n, 1, low_res_side, low_res_side), np.float32),
                                         np.zeros(n, np.float32))
        self.stats.decoder_calls += 1
        self.stats.prompts_with_masks += len(points)

        # Masks in prompt-major order (3 per prompt); the IoU filter needs no upsampled mask.
        mask_points = np.repeat(points, iou.shape[1], axis=0)
        low_res = low_res.reshape(-1, low_res_side, low_res_side)
        iou = iou.reshape(-1)
        keep = np.flatnonzero(iou > cfg.pred_iou_thresh) if cfg.pred_iou_thresh > 0 else np.arange(iou.size)

        h, w = predictor.original_size
        per_chunk = max(1, UPSAMPLE_BUDGET_BYTES // (4 * h * w))
        parts = []
        for first in range(0, len(keep), per_chunk):
            index = keep[first:first + per_chunk]
            logits = torch.from_numpy(upscale_logits(low_res[None, index], predictor.input_size,
                                                     predictor.original_size, runner.img_size)[0])
            stability = amg.stability_scores(logits, MASK_THRESHOLD, cfg.stability_score_offset).numpy()
            stable = (stability >= cfg.stability_score_thresh if cfg.stability_score_thresh > 0
                      else np.ones(len(index), bool))
            logits = logits[torch.from_numpy(stable)]
            if covered is not None and len(logits):
                covered |= (logits > cfg.high_score_thresh).any(0).numpy()
            masks = logits > MASK_THRESHOLD
            parts.append(MaskCandidates(amg.encode_rle(masks.numpy()), amg.masks_to_boxes(masks).numpy(),
                                        iou[index][stable], stability[stable], mask_points[index][stable]))
        return MaskCandidates.concat(parts)

    def _postprocess(self, candidates: MaskCandidates) -> list[dict[str, Any]]:
        cfg = self.config
        candidates = candidates.select(amg.box_nms(candidates.boxes, candidates.iou, cfg.box_nms_thresh))
        if cfg.min_mask_region_area > 0:
            candidates = self._remove_small_regions(candidates)
        rles, areas = candidates.rles, amg.rle_areas(candidates.rles)
        if cfg.output_mode == "binary_mask":
            segmentations = list(amg.decode_rle(rles, self.predictor.original_size))
        else:
            segmentations = rles
        boxes = amg.box_xyxy_to_xywh(candidates.boxes)
        return [
            {
                "segmentation": segmentations[i],
                "area": int(areas[i]),
                "bbox": boxes[i].tolist(),
                "predicted_iou": float(candidates.iou[i]),
                "point_coords": [candidates.points[i].tolist()],
                "stability_score": float(candidates.stability[i]),
            }
            for i in range(len(candidates))
        ]

    def _remove_small_regions(self, candidates: MaskCandidates) -> MaskCandidates:
        """SAM's clean-up: fill small holes, drop small islands, then NMS again preferring untouched masks."""
        if not len(candidates):
            return candidates
        masks = amg.decode_rle(candidates.rles, self.predictor.original_size)
        unchanged = np.ones(len(masks), bool)
        for i, mask in enumerate(masks):
            for mode in ("holes", "islands"):
                mask, changed = amg.remove_small_regions(mask, self.config.min_mask_region_area, mode)
                unchanged[i] &= not changed
            masks[i] = mask
        changed = np.flatnonzero(~unchanged)
        boxes = candidates.boxes.copy()
        boxes[changed] = amg.masks_to_boxes(torch.from_numpy(masks[changed])).numpy()
        rles = list(candidates.rles)
        for i, rle in zip(changed, amg.encode_rle(masks[changed])):
            rles[i] = rle
        cleaned = MaskCandidates(rles, boxes, candidates.iou, candidates.stability, candidates.points)
        return cleaned.select(amg.box_nms(boxes, unchanged.astype(np.float32), self.config.box_nms_thresh))


class TinySamDenseMaskGenerator(_MaskGenerator):
    """SAM's automatic mask generator without crops: a points_per_side^2 grid at ((i + 0.5) / n)."""

    def _candidates(self, progress: Progress) -> MaskCandidates:
        points = amg.grid_in_pixels(self.config.points_per_side, self.predictor.original_size)
        return self._decode_points(points, progress, planned=len(points))


class TinySamHierarchicalMaskGenerator(_MaskGenerator):
    """TinySAM's hierarchical strategy (paper section 3.3, public defaults).

    Round 1 decodes a (points_per_side / 4)^2 grid; pixels where a kept mask's logit exceeds
    high_score_thresh count as covered. Round 2 decodes the points of the points_per_side lattice
    around the round-1 points that are not covered. Both rounds' masks go through one NMS.
    """

    def _candidates(self, progress: Progress) -> MaskCandidates:
        size, side = self.predictor.original_size, self.config.points_per_side
        round1 = amg.grid_in_pixels(side // amg.ROUND1_DIVISOR, size)
        lattice = amg.hierarchy_candidates(round1, size, side)
        covered = np.zeros(size, bool)
        first = self._decode_points(round1, progress, planned=len(round1) + len(lattice), covered=covered)
        round2 = lattice[~amg.covered_at(covered, lattice)]
        second = self._decode_points(round2, progress, planned=len(round1) + len(round2))
        return MaskCandidates.concat([first, second])
