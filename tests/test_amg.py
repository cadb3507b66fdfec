"""Everything-mode building blocks against hand-computed values and brute-force computations."""

import json

import numpy as np
import pytest
import torch

from tinysam_mobile.utils import amg

# pycocotools' numpy-2 DeprecationWarning about __array__(copy=...) is harmless noise.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_point_grid_is_cell_centres_with_x_fastest():
    grid = amg.point_grid(4)
    ticks = [0.125, 0.375, 0.625, 0.875]
    assert grid.shape == (16, 2)
    np.testing.assert_allclose(grid[:4], [[t, 0.125] for t in ticks])
    np.testing.assert_allclose(grid[::4, 1], ticks)


@pytest.mark.parametrize("h, w", [(400, 600), (1024, 1024), (15, 20)])
def test_round1_grid_in_pixels(h, w):
    grid = amg.grid_in_pixels(8, (h, w))
    expected = [[(i + 0.5) * w / 8, (j + 0.5) * h / 8] for j in range(8) for i in range(8)]
    np.testing.assert_allclose(grid, expected)


@pytest.mark.parametrize("h, w", [(1024, 1024), (480, 640), (320, 96)])
def test_lattice_for_sides_divisible_by_32_is_j_over_32_minus_round1(h, w):
    round1 = amg.grid_in_pixels(8, (h, w))
    candidates = amg.hierarchy_candidates(round1, (h, w), 32)
    lattice = {(i * w / 32, j * h / 32) for i in range(1, 32) for j in range(1, 32)}
    first_round = {((4 * i + 2) * w / 32, (4 * j + 2) * h / 32) for i in range(8) for j in range(8)}
    assert len(candidates) == 897 == len(lattice - first_round)
    assert {tuple(p) for p in candidates.tolist()} == lattice - first_round


def test_lattice_on_coffee_size_follows_the_public_integer_strides():
    # 400 x 600: strides 600 // 32 = 18 and 400 // 32 = 12 around (37.5 + 75 i, 25 + 50 j).
    h, w = 400, 600
    round1 = amg.grid_in_pixels(8, (h, w))
    candidates = amg.hierarchy_candidates(round1, (h, w), 32)
    assert amg.hierarchy_strides((h, w), 32) == (18, 12)
    assert len(candidates) == 64 * 15  # the +2 offsets stay inside: 562.5 + 36 < 600, 375 + 24 < 400
    first_block = [(19.5, 13), (19.5, 25), (19.5, 37), (37.5, 13), (37.5, 37), (55.5, 13), (55.5, 25), (55.5, 37),
                   (73.5, 13), (73.5, 25), (73.5, 37), (19.5, 49), (37.5, 49), (55.5, 49), (73.5, 49)]
    np.testing.assert_allclose(candidates[:15], first_block)
    np.testing.assert_allclose(candidates[-1], [562.5 + 36, 375 + 24])


def test_tiny_image_lattice_stays_inside_without_repeats():
    # 16 x 16: public stride 16 // 32 = 0 would repeat the round-1 points; ours is 1 pixel, so the
    # lattice is every integer pixel position except the round-1 points at odd coordinates.
    round1 = amg.grid_in_pixels(8, (16, 16))
    candidates = amg.hierarchy_candidates(round1, (16, 16), 32)
    odd = range(1, 16, 2)
    expected = {(x, y) for x in range(16) for y in range(16)} - {(x, y) for x in odd for y in odd}
    assert len(candidates) == len(expected) == 192
    assert {tuple(p) for p in candidates.tolist()} == expected
    # 15 x 20 (h x w): nothing outside the image, no point twice.
    candidates = amg.hierarchy_candidates(amg.grid_in_pixels(8, (15, 20)), (15, 20), 32)
    assert (candidates >= 0).all() and (candidates[:, 0] < 20).all() and (candidates[:, 1] < 15).all()
    assert len({tuple(p) for p in candidates.tolist()}) == len(candidates)


def test_covered_at_floors_coordinates():
    covered = np.zeros((5, 6), bool)
    covered[2, 3] = True
    points = np.array([[3.0, 2.0], [3.9, 2.99], [4.0, 2.0], [3.0, 3.0]])
    assert amg.covered_at(covered, points).tolist() == [True, True, False, False]


def test_stability_scores_match_counting():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (6, 7, 9)).astype(np.float32)
    logits[5] = -5.0  # empty at both cuts: 0 / 0
    scores = amg.stability_scores(torch.from_numpy(logits), 0.0, 1.0).numpy()
    for mask, score in zip(logits[:5], scores[:5]):
        inner = sum(1 for v in mask.ravel() if v > 1.0)
        outer = sum(1 for v in mask.ravel() if v > -1.0)
        assert score == pytest.approx(inner / outer, rel=1e-6)
    assert np.isnan(scores[5])


def test_masks_to_boxes_match_nonzero_extents():
    rng = np.random.default_rng(1)
    masks = rng.random((5, 11, 13)) > 0.97
    masks[3] = False
    masks[4] = False
    masks[4, 7, 2] = True
    boxes = amg.masks_to_boxes(torch.from_numpy(masks)).numpy()
    for mask, box in zip(masks, boxes):
        ys, xs = np.nonzero(mask)
        expected = [xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, 0, 0]
        assert box.tolist() == expected
    assert amg.masks_to_boxes(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4)


def test_box_xyxy_to_xywh_uses_sams_convention():
    assert amg.box_xyxy_to_xywh(np.array([[2, 3, 10, 7]])).tolist() == [[2, 3, 8, 4]]


def brute_force_nms(boxes, scores, threshold):
    def iou(a, b):
        inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    keep = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        if all(iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


def test_box_nms_hand_example():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5]])
    scores = np.array([0.9, 0.95, 0.5, 0.8])
    # box 1 (best) overlaps box 0 by 90/110 > 0.7: gone; box 3 overlaps box 1 by 45/105: kept.
    assert amg.box_nms(boxes, scores, 0.7).tolist() == [1, 3, 2]


def test_box_nms_matches_brute_force_on_random_boxes():
    rng = np.random.default_rng(2)
    for trial in range(20):
        xy = rng.integers(0, 40, (30, 2))
        boxes = np.concatenate([xy, xy + rng.integers(1, 25, (30, 2))], axis=1)
        scores = rng.random(30)
        threshold = [0.3, 0.5, 0.7][trial % 3]
        assert amg.box_nms(boxes, scores, threshold).tolist() == brute_force_nms(boxes.tolist(), scores, threshold)
    assert amg.box_nms(np.zeros((0, 4)), np.zeros(0), 0.7).tolist() == []


def test_box_nms_ties_keep_input_order():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]])
    assert amg.box_nms(boxes, np.array([0.5, 0.5, 0.5]), 0.7).tolist() == [0, 2]


def test_rle_round_trip_area_and_iou_through_pycocotools():
    rng = np.random.default_rng(3)
    masks = rng.random((4, 23, 17)) > 0.6
    masks[2] = False
    rles = amg.encode_rle(masks)
    json.dumps(rles)  # counts are text
    np.testing.assert_array_equal(amg.decode_rle(rles, (23, 17)), masks)
    assert amg.rle_areas(rles).tolist() == masks.sum((1, 2)).tolist()
    ious = amg.rle_iou_matrix(rles[:2], rles)
    for i in range(2):
        for j in range(4):
            union = (masks[i] | masks[j]).sum()
            assert ious[i, j] == pytest.approx((masks[i] & masks[j]).sum() / union if union else 0.0)
    assert amg.encode_rle(np.zeros((0, 5, 5), bool)) == []
    assert amg.decode_rle([], (5, 5)).shape == (0, 5, 5)


def test_remove_small_regions_fills_holes_and_drops_islands():
    mask = np.zeros((12, 12), bool)
    mask[1:8, 1:8] = True
    mask[3:5, 3:5] = False  # a 4-pixel hole
    mask[10:12, 10:12] = True  # a 4-pixel island
    filled, changed = amg.remove_small_regions(mask, 5, "holes")
    assert changed and filled[1:8, 1:8].all() and filled[10:12, 10:12].all()
    cleaned, changed = amg.remove_small_regions(filled, 5, "islands")
    expected = np.zeros_like(mask)
    expected[1:8, 1:8] = True
    assert changed and (cleaned == expected).all()
    same, changed = amg.remove_small_regions(expected, 5, "islands")
    assert not changed and (same == expected).all()
    # Every island small: the largest stays.
    islands = np.zeros((12, 12), bool)
    islands[0:2, 0:2] = True
    islands[6:9, 6:7] = True
    kept, _ = amg.remove_small_regions(islands, 10, "islands")
    assert kept.sum() == 4 and kept[0:2, 0:2].all()
