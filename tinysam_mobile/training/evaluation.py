"""Quality on held-out generated scenes: mask IoU for 1 click, 3 clicks and a box; IoU-head calibration.

Scenes come from seeds at EVAL_SEED_START and above, which training never draws. Prompts are fixed per
scene: the click is the object's innermost pixel (farthest from its outline), the two extra clicks are
drawn inside the object from the scene's seed, the box is the tight box. Each prompt keeps the mask with
the highest predicted IoU, as the apps do; masks are compared at the scene's full resolution.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..data import SceneConfig, generate_scene
from ..data.scenes import SHAPES
from ..predictor import TinySamPredictor
from .train import EVAL_SEED_START

PROMPTS = ("point", "points3", "box")


@dataclass(frozen=True)
class EvalConfig:
    scenes: int = 40
    seed_start: int = EVAL_SEED_START
    height: int = 480
    width: int = 640


def innermost_pixel(mask: np.ndarray) -> np.ndarray:
    """(x, y) centre of the pixel farthest from the mask's outline (the image border counts as outline);
    among equally far pixels (the ridge of an elongated shape) the one nearest to their mean."""
    from scipy.ndimage import distance_transform_edt

    distance = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    ys, xs = np.nonzero(distance >= distance.max())
    nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    return np.array([xs[nearest] + 0.5, ys[nearest] + 0.5], np.float32)


def eval_prompts(rng: np.random.Generator, mask: np.ndarray) -> dict[str, tuple]:
    """{prompt name: (point_coords, point_labels, box)} in the predictor's original-pixel convention."""
    centre = innermost_pixel(mask)
    ys, xs = np.nonzero(mask)
    picks = rng.choice(len(ys), 2)
    extra = np.stack([xs[picks] + 0.5, ys[picks] + 0.5], axis=1).astype(np.float32)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    return {
        "point": (centre[None], np.ones(1, np.float32), None),
        "points3": (np.concatenate([centre[None], extra]), np.ones(3, np.float32), None),
        "box": (None, None, box),
    }


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# Visible share of the image that separates the size classes of the breakdown: tiny < 0.2% (e.g. an occluded
# sliver), small < 1%, medium < 5%, large.
SIZE_CLASSES = (("tiny", 0.002), ("small", 0.01), ("medium", 0.05), ("large", float("inf")))


@dataclass
class ObjectScore:
    """One held-out object: its kind, visible share of the image, and how each prompt kind did."""
    shape: str
    area: float
    kept: dict[str, float]  # prompt kind -> IoU of the mask with the highest predicted IoU
    best_point: float  # one click, the best of the three masks
    predicted: list[float]  # predicted IoU of every output mask of every prompt
    true: list[float]  # their true IoU


def size_class(area: float) -> str:
    return next(name for name, upper in SIZE_CLASSES if area < upper)


def score_objects(predictor: TinySamPredictor, config: EvalConfig = EvalConfig(),
                  on_scene: Optional[Callable[[int], None]] = None) -> list[ObjectScore]:
    scores = []
    for index in range(config.scenes):
        seed = config.seed_start + index
        scene = generate_scene(seed, SceneConfig(height=config.height, width=config.width))
        predictor.set_image(scene.image)
        rng = np.random.default_rng(seed)
        for mask, shape in zip(scene.masks, scene.shapes):
            score = ObjectScore(shape, float(mask.mean()), {}, 0.0, [], [])
            for name, (coords, labels, box) in eval_prompts(rng, mask).items():
                masks, iou_pred, _ = predictor.predict(coords, labels, box, multimask_output=True)
                ious = [mask_iou(m, mask) for m in masks]
                score.kept[name] = ious[int(np.argmax(iou_pred))]
                score.predicted.extend(iou_pred.tolist())
                score.true.extend(ious)
                if name == "point":
                    score.best_point = max(ious)
            scores.append(score)
        if on_scene is not None:
            on_scene(index + 1)
    return scores


def summarize(scores: list[ObjectScore], scenes: int) -> dict[str, Optional[float]]:
    """Mean IoU of the kept mask per prompt kind, the best-of-3 ("oracle") mean for one click, and the
    Pearson correlation of predicted and true IoU over every output mask of every prompt."""
    results = {f"miou_{name}": float(np.mean([s.kept[name] for s in scores])) for name in PROMPTS}
    results["miou_point_best_of_3"] = float(np.mean([s.best_point for s in scores]))
    predicted = [value for s in scores for value in s.predicted]
    true = [value for s in scores for value in s.true]
    # Undefined (None) when either side is constant, e.g. a model that never predicts any pixel.
    constant = np.std(predicted) == 0 or np.std(true) == 0
    results["iou_correlation"] = None if constant else float(np.corrcoef(predicted, true)[0, 1])
    results["objects"] = len(scores)
    results["scenes"] = scenes
    return results


def breakdown(scores: list[ObjectScore]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean kept-mask IoU per prompt kind, grouped by shape kind and by size class: where a model fails."""
    groups = {"shape": {}, "size": {}}
    for score in scores:
        groups["shape"].setdefault(score.shape, []).append(score)
        groups["size"].setdefault(size_class(score.area), []).append(score)
    order = {"shape": SHAPES, "size": [name for name, _ in SIZE_CLASSES]}
    return {by: {name: {"objects": len(members[name]),
                        **{f"miou_{kind}": float(np.mean([s.kept[kind] for s in members[name]])) for kind in PROMPTS}}
                 for name in order[by] if name in members}
            for by, members in groups.items()}


def evaluate_scenes(predictor: TinySamPredictor, config: EvalConfig = EvalConfig(),
                    on_scene: Optional[Callable[[int], None]] = None) -> dict[str, Optional[float]]:
    """summarize() of every object of config.scenes held-out scenes."""
    return summarize(score_objects(predictor, config, on_scene), config.scenes)
