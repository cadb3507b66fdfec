"""Held-out evaluation: prompt placement, IoU arithmetic, the command's input checks."""

import subprocess
import sys

import numpy as np
import pytest

from tinysam_mobile.predictor import TinySamPredictor
from tinysam_mobile.training.evaluation import (EvalConfig, ObjectScore, breakdown, eval_prompts, evaluate_scenes,
                                                innermost_pixel, mask_iou, size_class, summarize)


def test_innermost_pixel_is_the_centre_of_a_rectangle_and_avoids_the_hole_of_a_ring():
    mask = np.zeros((40, 60), bool)
    mask[10:31, 5:46] = True  # 21 rows x 41 columns: centre pixel (25, 20)
    assert innermost_pixel(mask).tolist() == [25.5, 20.5]
    ring = np.zeros((41, 41), bool)
    yy, xx = np.mgrid[:41, :41]
    radius = np.hypot(yy - 20, xx - 20)
    ring[(radius <= 18) & (radius >= 8)] = True
    x, y = innermost_pixel(ring)
    assert ring[int(y), int(x)]


def test_eval_prompts_lie_on_the_object():
    mask = np.zeros((50, 50), bool)
    mask[5:20, 30:45] = True
    prompts = eval_prompts(np.random.default_rng(0), mask)
    for x, y in prompts["points3"][0]:
        assert mask[int(y), int(x)]
    assert prompts["box"][2].tolist() == [30, 5, 45, 20]


def test_mask_iou_by_hand():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert mask_iou(a, b) == 4 / 12


def test_evaluate_scenes_reports_every_figure(small_model):
    figures = evaluate_scenes(TinySamPredictor(small_model), EvalConfig(scenes=1, height=120, width=160))
    assert figures["objects"] >= 2
    for key in ("miou_point", "miou_points3", "miou_box", "miou_point_best_of_3"):
        assert 0.0 <= figures[key] <= 1.0
    assert figures["miou_point_best_of_3"] >= figures["miou_point"]
    correlation = figures["iou_correlation"]
    assert correlation is None or -1.0 <= correlation <= 1.0


def _score(shape, area, point, box, predicted=(0.5, 0.5, 0.5), true=(0.1, 0.2, 0.3)):
    return ObjectScore(shape, area, {"point": point, "points3": point, "box": box}, point, list(predicted), list(true))


def test_size_classes_split_at_their_bounds():
    assert [size_class(a) for a in (0.0, 0.0019, 0.002, 0.0099, 0.01, 0.05, 1.0)] == [
        "tiny", "tiny", "small", "small", "medium", "large", "large"]


def test_breakdown_groups_objects_by_shape_and_size():
    scores = [_score("thin", 0.001, 0.2, 0.4), _score("thin", 0.03, 0.6, 0.8), _score("ring", 0.001, 1.0, 0.0)]
    groups = breakdown(scores)
    assert list(groups["shape"]) == ["thin", "ring"]  # the generator's order of kinds, only those present
    assert groups["shape"]["thin"] == pytest.approx({"objects": 2, "miou_point": 0.4, "miou_points3": 0.4, "miou_box": 0.6})
    assert groups["size"]["tiny"]["objects"] == 2 and groups["size"]["tiny"]["miou_point"] == 0.6
    assert groups["size"]["medium"]["miou_box"] == 0.8 and "large" not in groups["size"]


def test_summary_correlation_is_undefined_for_a_constant_side():
    figures = summarize([_score("blob", 0.1, 0.5, 0.5)], scenes=1)
    assert figures["iou_correlation"] is None and figures["objects"] == 1
    figures = summarize([_score("blob", 0.1, 0.5, 0.5, predicted=(0.1, 0.2, 0.3))], scenes=1)
    assert figures["iou_correlation"] == pytest.approx(1.0)


def test_evaluate_refuses_bad_options_in_one_line():
    result = subprocess.run([sys.executable, "-m", "tinysam_mobile", "evaluate", "--img-size", "100"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --img-size: img_size must be a multiple of 64, got 100"]
