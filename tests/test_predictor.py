"""TinySamPredictor end to end on a real photo, against an independently assembled pipeline."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tinysam_mobile import TinySamPredictor
from tinysam_mobile.errors import PromptError

MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


def reference_masks(model, photo, points, labels):
    """SAM's pipeline written out step by step with PIL and torch, at the model's img_size."""
    size = model.config.img_size
    h, w = photo.shape[:2]
    new_w, new_h = round(w * size / max(h, w)), round(h * size / max(h, w))
    resized = np.asarray(Image.fromarray(photo).resize((new_w, new_h), Image.BILINEAR), np.float64)
    padded = np.zeros((size, size, 3))
    padded[:new_h, :new_w] = (resized - MEAN) / STD
    image = torch.tensor(padded.transpose(2, 0, 1)[None], dtype=torch.float32)
    coords = torch.tensor(np.concatenate([points * [new_w / w, new_h / h], [[0, 0]]])[None], dtype=torch.float32)
    lab = torch.tensor(np.concatenate([labels, [-1]])[None], dtype=torch.float32)
    low = size // 4
    with torch.no_grad():
        logits, iou = model.decode(model.encode(image), coords, lab, torch.zeros(1, 1, low, low), torch.zeros(1))
    up = F.interpolate(logits, (size, size), mode="bilinear", align_corners=False)[..., :new_h, :new_w]
    up = F.interpolate(up, (h, w), mode="bilinear", align_corners=False)
    return (up[0] > 0).numpy(), iou[0].numpy(), logits[0].numpy()


def test_predictor_matches_reference_pipeline(small_model, photo):
    points, labels = np.array([[230.0, 140.0], [60.0, 250.0]]), np.array([1, 0])
    predictor = TinySamPredictor(small_model)
    predictor.set_image(photo)
    masks, iou, low = predictor.predict(points, labels)
    ref_masks, ref_iou, ref_low = reference_masks(small_model, photo, points, labels)
    assert masks.shape == (3, 300, 451) and masks.dtype == bool
    assert iou.shape == (3,) and low.shape == (3, 64, 64)
    np.testing.assert_allclose(iou, ref_iou, atol=1e-4)
    np.testing.assert_allclose(low, ref_low, atol=1e-3)
    agreement = (masks == ref_masks).mean()
    assert agreement > 0.9999


def test_single_mask_is_the_highest_predicted_iou(small_model, photo):
    predictor = TinySamPredictor(small_model)
    predictor.set_image(photo)
    all_masks, all_iou, _ = predictor.predict(np.array([[100.0, 100.0]]), np.array([1]))
    best, best_iou, best_low = predictor.predict(np.array([[100.0, 100.0]]), np.array([1]), multimask_output=False)
    k = int(np.argmax(all_iou))
    assert best.shape == (1, 300, 451) and best_iou[0] == all_iou[k]
    assert np.array_equal(best[0], all_masks[k])


def test_mask_input_round_trip_and_box(small_model, photo):
    predictor = TinySamPredictor(small_model)
    predictor.set_image(photo)
    _, _, low = predictor.predict(box=np.array([50.0, 40.0, 300.0, 280.0]), multimask_output=False)
    masks, _, _ = predictor.predict(np.array([[200.0, 150.0]]), np.array([1]), mask_input=low)
    logits, _, _ = predictor.predict(np.array([[200.0, 150.0]]), np.array([1]), mask_input=low, return_logits=True)
    assert logits.dtype == np.float32 and np.array_equal(masks, logits > 0)


def test_predict_before_set_image_is_an_error(small_model):
    with pytest.raises(PromptError, match="set_image"):
        TinySamPredictor(small_model).predict(np.array([[1.0, 1.0]]), np.array([1]))


def test_torch_runner_chunked_decoding_equals_one_batch(small_model):
    from tinysam_mobile.runners import TorchRunner

    rng = np.random.default_rng(0)
    embedding = rng.standard_normal((1, 256, 16, 16)).astype(np.float32)
    coords = (rng.random((7, 2, 2)) * 256).astype(np.float32)
    labels = np.tile(np.array([[1.0, -1.0]], np.float32), (7, 1))
    masks, has_mask = np.zeros((7, 1, 64, 64), np.float32), np.zeros(7, np.float32)
    chunked = TorchRunner(small_model, decode_chunk=3).decode(embedding, coords, labels, masks, has_mask)
    whole = TorchRunner(small_model, decode_chunk=7).decode(embedding, coords, labels, masks, has_mask)
    assert chunked[0].shape == (7, 3, 64, 64) and chunked[1].shape == (7, 3)
    np.testing.assert_allclose(chunked[0], whole[0], atol=1e-4)
    np.testing.assert_allclose(chunked[1], whole[1], atol=1e-5)
