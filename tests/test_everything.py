"""Everything mode end to end: prompt placement, coverage, filters in their exact order, degenerate images.

Most tests drive the generators with a scripted runner whose masks are known exactly (the region of a
label map under the clicked point), so every expectation is computed by hand or with plain torch ops.
The real network (seeded, img_size 256) checks that batching and filtering on low-res outputs give the
same result as the straightforward order: upsample every mask first, then filter; and that PyTorch's
screened path (IoUs of every prompt without masks, full decodes only where a mask can pass) gives the
records of the plain path.
"""

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from tinysam_mobile import EverythingConfig, TinySamDenseMaskGenerator, TinySamHierarchicalMaskGenerator
from tinysam_mobile.errors import TinySamError
from tinysam_mobile.modeling.iou_only import IouOnlyDecoder
from tinysam_mobile.runners import TorchRunner
from tinysam_mobile.utils.transforms import apply_coords, preprocess

# pycocotools' numpy-2 DeprecationWarning about __array__(copy=...) is harmless noise.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SIDE = 256  # image side = encoder input side: the upsampling is a plain 4x bilinear, no crop or resize
LOGIT = 12.0


class ScriptedRunner:
    """A Runner whose mask 0 for a click is the label-map region under it (logit +12 inside, -12 outside),
    at the decoder's 64x64 resolution; masks 1 and 2 are empty. Records every decoded prompt."""

    name = "scripted"
    img_size = SIDE
    batch_size = 64

    def __init__(self, labels: np.ndarray, iou=(0.95, 0.5, 0.2), max_tokens=None, empty=False):
        self.low_res_labels = labels[1::4, 1::4]  # regions are aligned to 4-pixel blocks
        self.iou = np.array(iou, np.float32)
        self.min_tokens, self.max_tokens = 1, max_tokens
        self.empty = empty
        self.coords, self.labels = [], []

    def encode(self, image):
        assert image.shape == (1, 3, SIDE, SIDE)
        return np.zeros((1, 256, SIDE // 16, SIDE // 16), np.float32)

    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        self.coords.append(point_coords.copy())
        self.labels.append(point_labels.copy())
        x, y = point_coords[:, 0, 0].astype(int), point_coords[:, 0, 1].astype(int)
        clicked = self.low_res_labels[y // 4, x // 4]
        logits = np.full((len(x), 3, SIDE // 4, SIDE // 4), -LOGIT, np.float32)
        if not self.empty:
            logits[:, 0] = np.where(self.low_res_labels[None] == clicked[:, None, None], LOGIT, -LOGIT)
        return logits, np.tile(self.iou, (len(x), 1))

    def prompts(self) -> np.ndarray:
        return np.concatenate([c[:, 0] for c in self.coords])


def rectangles_scene() -> np.ndarray:
    """Label map: background 0, three large rectangles hit by the 8x8 round-1 grid (points at 16 + 32 i)
    and a 12x12 square at x, y in [88, 100) that only the round-2 lattice (multiples of 8) reaches."""
    labels = np.zeros((SIDE, SIDE), np.int64)
    labels[8:72, 8:120] = 1
    labels[140:248, 20:60] = 2
    labels[100:200, 152:240] = 3
    labels[88:100, 88:100] = 4
    return labels


def region_logits(low_res_labels: np.ndarray, label: int) -> torch.Tensor:
    """The scripted mask of `label` upsampled 4x as SAM does (bilinear, half-pixel centres)."""
    region = torch.where(torch.from_numpy(low_res_labels) == label, LOGIT, -LOGIT)[None, None]
    return F.interpolate(region, scale_factor=4, mode="bilinear", align_corners=False)[0, 0]


def blank_image():
    return np.zeros((SIDE, SIDE, 3), np.uint8)


def test_hierarchical_finds_every_region_exactly_once():
    labels = rectangles_scene()
    runner = ScriptedRunner(labels)
    records = TinySamHierarchicalMaskGenerator(runner).generate(blank_image())
    found = []
    for record in records:
        x, y = record["point_coords"][0]
        label = int(labels[int(y), int(x)])
        found.append(label)
        logits = region_logits(runner.low_res_labels, label)
        expected = (logits > 0).numpy()
        assert (expected != (labels == label)).sum() <= 16  # the region up to its rounded corners
        np.testing.assert_array_equal(record["segmentation"], expected)
        assert record["area"] == expected.sum()
        assert record["predicted_iou"] == pytest.approx(0.95)
        assert record["stability_score"] == pytest.approx(float((logits > 1).sum() / (logits > -1).sum()))
        ys, xs = np.nonzero(expected)
        assert record["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
    assert sorted(found) == [0, 1, 2, 3, 4]


def test_round2_prompts_are_the_uncovered_lattice_points():
    labels = rectangles_scene()
    runner = ScriptedRunner(labels)
    generator = TinySamHierarchicalMaskGenerator(runner)
    generator.generate(blank_image())
    prompts = runner.prompts()  # input frame = image frame here
    round1 = [((i + 0.5) * SIDE / 8, (j + 0.5) * SIDE / 8) for j in range(8) for i in range(8)]
    np.testing.assert_allclose(prompts[:64], round1)

    # Coverage recomputed independently: each round-1 click's region, 4x bilinear, logit > 8.5.
    covered = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    for x, y in round1:
        covered |= region_logits(runner.low_res_labels, labels[int(y), int(x)]) > 8.5
    lattice = {(8.0 * i, 8.0 * j) for i in range(1, 32) for j in range(1, 32)} - set(round1)
    expected = {(x, y) for x, y in lattice if not covered[int(y), int(x)]}
    assert 0 < len(expected) < 897
    assert {tuple(p) for p in prompts[64:].tolist()} == expected
    assert generator.stats.prompts_per_round == [64, len(expected)]
    assert generator.stats.decoder_calls == 1 + -(-len(expected) // 64)


def test_dense_grid_and_agreement_with_hierarchical():
    labels = rectangles_scene()
    runner = ScriptedRunner(labels)
    dense = TinySamDenseMaskGenerator(runner, points_per_batch=100).generate(blank_image())
    ticks = (np.arange(32) + 0.5) * SIDE / 32
    np.testing.assert_allclose(runner.prompts(), [(x, y) for y in ticks for x in ticks])
    assert [len(c) for c in runner.coords] == [100] * 10 + [24]
    hierarchical = TinySamHierarchicalMaskGenerator(ScriptedRunner(labels)).generate(blank_image())
    as_set = lambda records: sorted(r["segmentation"].tobytes() for r in records)  # noqa: E731
    assert as_set(dense) == as_set(hierarchical)


def test_everything_covered_skips_round2():
    # One region filling the image: round 1 covers every pixel, so round 2 has nothing to decode
    # (the public generator raises a KeyError here).
    runner = ScriptedRunner(np.zeros((SIDE, SIDE), np.int64))
    generator = TinySamHierarchicalMaskGenerator(runner)
    records = generator.generate(blank_image())
    assert generator.stats.prompts_per_round == [64, 0]
    assert generator.stats.decoder_calls == 1
    assert len(records) == 1 and records[0]["segmentation"].all()


@pytest.mark.parametrize("generator", [TinySamHierarchicalMaskGenerator, TinySamDenseMaskGenerator])
def test_no_confident_mask_gives_no_records(generator):
    runner = ScriptedRunner(np.zeros((SIDE, SIDE), np.int64), empty=True)
    assert generator(runner).generate(blank_image()) == []
    low_iou = ScriptedRunner(rectangles_scene(), iou=(0.5, 0.5, 0.5))
    assert generator(low_iou).generate(blank_image()) == []


def test_every_everything_prompt_is_the_point_and_one_padding_point():
    """As SAM's predictor builds a single click, whatever the decoder's token limit: no further padding."""
    runner = ScriptedRunner(rectangles_scene(), max_tokens=5)
    records = TinySamHierarchicalMaskGenerator(runner, points_per_batch=32).generate(blank_image())
    assert len(records) == 5
    for coords, labels in zip(runner.coords, runner.labels):
        assert coords.shape[1:] == (2, 2) and len(coords) <= 32
        assert (labels[:, 0] == 1).all() and (labels[:, 1] == -1).all() and (coords[:, 1] == 0).all()


def test_coco_rle_output_and_small_region_removal():
    labels = rectangles_scene()
    config = EverythingConfig(output_mode="coco_rle", min_mask_region_area=200)
    runner = ScriptedRunner(labels)
    records = TinySamHierarchicalMaskGenerator(runner, config).generate(blank_image())
    json.dumps(records)
    masks = [mask_utils.decode(r["segmentation"]).astype(bool) for r in records]
    assert all(r["area"] == m.sum() for r, m in zip(records, masks))
    # The 140-pixel square is a hole of the background below 200 pixels: filled there. As a mask of its
    # own it is a lone small island: SAM keeps the largest island, so it stays as predicted.
    square = (region_logits(runner.low_res_labels, 4) > 0).numpy()
    background = next(m for m in masks if m[0, 0])
    assert background[square].all()
    assert sum((m == square).all() for m in masks) == 1
    assert len(masks) == 5


def test_invalid_options_are_one_line_errors():
    runner = ScriptedRunner(rectangles_scene())
    for options in ({"points_per_side": 2}, {"points_per_batch": 0}, {"output_mode": "png"},
                    {"pred_iou_thresh": 1.5}, {"min_mask_region_area": -1}, {"no_such_option": 1}):
        with pytest.raises(TinySamError):
            TinySamHierarchicalMaskGenerator(runner, **options)


# --- the real network: batched, low-res-first filtering == the straightforward order ---------------

def straightforward_masks(runner, image, points, iou_thresh, stability_thresh, offset, nms_thresh):
    """Decode every point, upsample EVERY mask, then filter (IoU, stability), threshold, box, NMS."""
    tensor, input_size = preprocess(image, runner.img_size)
    embedding = runner.encode(tensor)
    n = len(points)
    coords = np.zeros((n, 2, 2), np.float32)
    coords[:, 0] = apply_coords(points, image.shape[:2], runner.img_size)
    labels = np.tile(np.array([1.0, -1.0], np.float32), (n, 1))
    low_res, iou = runner.decode(embedding, coords, labels, np.zeros((n, 1, 64, 64), np.float32),
                                 np.zeros(n, np.float32))
    up = F.interpolate(torch.from_numpy(low_res), size=(runner.img_size,) * 2, mode="bilinear", align_corners=False)
    up = F.interpolate(up[..., :input_size[0], :input_size[1]], size=image.shape[:2], mode="bilinear",
                       align_corners=False).flatten(0, 1).numpy()
    iou = iou.reshape(-1)
    stability = (up > offset).sum((1, 2)) / (up > -offset).sum((1, 2))
    keep = (iou > iou_thresh) & (stability >= stability_thresh)
    masks, iou, stability, owners = up[keep] > 0, iou[keep], stability[keep], np.repeat(points, 3, axis=0)[keep]
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, 0, 0])
    from test_amg import brute_force_nms

    kept = brute_force_nms(boxes, iou, nms_thresh)
    return [(masks[i], iou[i], stability[i], owners[i]) for i in kept]


def test_generator_equals_straightforward_order_on_the_network(small_model, photo):
    image = photo[::4, ::4]  # 75 x 113: sides not multiples of 32
    runner = TorchRunner(small_model)
    # Seeded weights: IoU predictions ~0.04-0.12, logits within +-0.2 and masks as large as the image
    # (boxes alike: NMS is off here, test_amg checks it), hence these thresholds.
    options = dict(points_per_side=8, pred_iou_thresh=0.08, stability_score_thresh=0.6,
                   stability_score_offset=0.01, box_nms_thresh=1.0)
    generator = TinySamDenseMaskGenerator(runner, points_per_batch=64, **options)
    records = generator.generate(image)
    points = (np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2) + 0.5) / 8 * [113, 75]
    expected = straightforward_masks(runner, image, points, 0.08, 0.6, 0.01, 1.0)
    assert 5 <= len(expected) < 192  # the thresholds keep some masks and drop others
    assert len(records) == len(expected)
    for record, (mask, iou, stability, point) in zip(records, expected):
        np.testing.assert_array_equal(record["segmentation"], mask)
        # TorchRunner decodes only the prompts its IoU screen passes, so in other chunks than one call of
        # all 64: float32 differences of ~1e-7.
        assert record["predicted_iou"] == pytest.approx(iou, abs=1e-6)
        assert record["stability_score"] == pytest.approx(stability, rel=1e-6)
        np.testing.assert_allclose(record["point_coords"][0], point)


@pytest.mark.parametrize("shape", [(15, 20, 3)])
def test_network_on_tiny_and_blank_images(small_model, shape):
    # Thresholds low enough that seeded weights produce masks; nothing may crash, records are consistent.
    image = np.zeros(shape, np.uint8)
    image[: shape[0] // 2] = 200
    for generator in (TinySamHierarchicalMaskGenerator, TinySamDenseMaskGenerator):
        records = generator(small_model, points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                            high_score_thresh=0.0).generate(image)
        for record in records:
            assert record["segmentation"].shape == shape[:2]
            assert record["area"] == record["segmentation"].sum()
    blank = TinySamHierarchicalMaskGenerator(small_model, points_per_side=4).generate(np.full(shape, 128, np.uint8))
    assert blank == []  # seeded weights predict IoU ~0.1: nothing passes the default 0.88


# --- PyTorch's screened path: IoUs without masks, then full decodes of the prompts that can pass ----

class PlainRunner:
    """TorchRunner behind the bare Runner interface (no decode_filtered): the straightforward path."""

    def __init__(self, runner):
        self.runner, self.name, self.img_size = runner, "plain", runner.img_size
        self.min_tokens, self.max_tokens = 1, None
        self.batch_size = runner.batch_size

    def encode(self, image):
        return self.runner.encode(image)

    def decode(self, *inputs):
        return self.runner.decode(*inputs)


def random_prompts(rng, count, side):
    """Prompts of 1 to 4 points with every label (-1 padding, 0, 1, box corners 2 / 3)."""
    points = int(rng.integers(1, 5))
    coords = torch.from_numpy((rng.random((count, points, 2)) * side).astype(np.float32))
    labels = torch.from_numpy(rng.integers(-1, 4, (count, points)).astype(np.float32))
    return coords, labels


@pytest.mark.parametrize("weight_scale, tolerance", [(1.0, 1e-6), (3.0, 5e-5)])
def test_iou_only_decoder_equals_the_decoder(small_model, weight_scale, tolerance):
    model = copy.deepcopy(small_model)
    with torch.no_grad():  # x3: IoU outputs spanning several units, unlike the seeded ~0.1
        for name, parameter in model.mask_decoder.named_parameters():
            if parameter.dim() == 2 and "token" not in name:
                parameter.mul_(weight_scale)
    rng = np.random.default_rng(0)
    embedding = torch.from_numpy(rng.standard_normal((1, 256, 16, 16)).astype(np.float32) * 3)
    screen = IouOnlyDecoder(model, embedding)
    for _ in range(3):
        coords, labels = random_prompts(rng, 6, 256)
        with torch.inference_mode():
            _, expected = model.decode(embedding, coords, labels, torch.zeros(6, 1, 64, 64), torch.zeros(6))
        got = screen(coords, labels)
        assert got.shape == (6, 3) and float(expected.abs().max()) > 10 * tolerance
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=tolerance)


def test_decode_filtered_keeps_every_prompt_decode_would_pass(small_model):
    runner = TorchRunner(small_model)
    rng = np.random.default_rng(1)
    embedding = rng.standard_normal((1, 256, 16, 16)).astype(np.float32)
    n = 40
    coords = np.zeros((n, 2, 2), np.float32)
    coords[:, 0] = rng.random((n, 2)) * 256
    labels = np.tile(np.array([[1.0, -1.0]], np.float32), (n, 1))
    low_res, iou = runner.decode(embedding, coords, labels, np.zeros((n, 1, 64, 64), np.float32),
                                 np.zeros(n, np.float32))
    threshold = float(np.median(iou.max(1)))
    index, low_res_kept, iou_kept = runner.decode_filtered(embedding, coords, labels, threshold)
    passing = np.flatnonzero(iou.max(1) > threshold)
    assert set(passing) <= set(index) and len(index) < n
    assert (iou[np.setdiff1d(np.arange(n), index)] <= threshold).all()
    np.testing.assert_allclose(low_res_kept, low_res[index], rtol=0, atol=1e-5)
    np.testing.assert_allclose(iou_kept, iou[index], rtol=0, atol=1e-6)

    index, low_res_kept, iou_kept = runner.decode_filtered(embedding, coords, labels, float(iou.max()) + 0.1)
    assert index.shape == (0,) and low_res_kept.shape == (0, 3, 64, 64) and iou_kept.shape == (0, 3)


@pytest.mark.parametrize("generator", [TinySamHierarchicalMaskGenerator, TinySamDenseMaskGenerator])
def test_screened_generator_gives_the_plain_records(small_model, photo, generator):
    image = photo[::2, ::2]
    # Thresholds at which seeded weights keep some masks and drop others (IoUs ~0.04-0.17).
    options = dict(points_per_side=12, pred_iou_thresh=0.1, stability_score_thresh=0.6, stability_score_offset=0.01,
                   box_nms_thresh=1.0, high_score_thresh=0.05)
    screened = generator(TorchRunner(small_model), **options)
    plain = generator(PlainRunner(TorchRunner(small_model)), **options)
    records, expected = screened.generate(image), plain.generate(image)
    assert screened.stats.prompts_per_round == plain.stats.prompts_per_round
    assert 0 < screened.stats.prompts_with_masks < plain.stats.prompts_with_masks == plain.stats.prompts
    assert len(records) == len(expected) > 20
    for record, reference in zip(records, expected):
        np.testing.assert_array_equal(record["segmentation"], reference["segmentation"])
        assert record["predicted_iou"] == pytest.approx(reference["predicted_iou"], abs=1e-6)
        assert record["stability_score"] == pytest.approx(reference["stability_score"], abs=1e-6)
        assert record["point_coords"] == reference["point_coords"] and record["bbox"] == reference["bbox"]


# --- the embedded demo model on held-out generated scenes ------------------------------------------

RECOVERY_SCENES = 4


@pytest.mark.xfail(strict=True, reason="issue #14's target, not met by the CPU-trained demo model: its predicted "
                   "IoUs rarely pass the default 0.88 screen (0 of 20 objects recovered when it landed)")
def test_hierarchical_recovers_objects_of_held_out_scenes():
    """Issue target: >= 80% of ground-truth objects matched by some mask at IoU >= 0.5."""
    from tinysam_mobile.checkpoint import DEMO_CHECKPOINT, load_tinysam
    from tinysam_mobile.data import SceneConfig, generate_scene
    from tinysam_mobile.modeling import TinySamConfig
    from tinysam_mobile.training.train import EVAL_SEED_START

    if not DEMO_CHECKPOINT.is_file():
        pytest.skip(f"no trained demo checkpoint at {DEMO_CHECKPOINT}: recovery is meaningless with random weights")
    model = load_tinysam(config=TinySamConfig(img_size=256))
    generator = TinySamHierarchicalMaskGenerator(model, output_mode="coco_rle")
    recovered = total = 0
    for seed in range(EVAL_SEED_START, EVAL_SEED_START + RECOVERY_SCENES):
        scene = generate_scene(seed, SceneConfig(height=256, width=256))
        masks = [r["segmentation"] for r in generator.generate(scene.image)]
        truth = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in scene.masks]
        best = np.asarray(mask_utils.iou(truth, masks, [0] * len(masks))).reshape(len(truth), -1).max(1) \
            if masks else np.zeros(len(truth))
        recovered += int((best >= 0.5).sum())
        total += len(truth)
    assert recovered / total >= 0.8, f"recovered {recovered} of {total} objects"
