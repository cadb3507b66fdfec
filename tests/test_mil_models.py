"""The project's full-size CoreML packages executed by the MIL interpreter, against PyTorch.

Packages come from the session fixtures of tests/conftest.py (`convert --target coreml` of the
seeded 1024 model, converted once per session and shared with the CoreML tests).
"""

import platform

import numpy as np
import pytest
import torch

from tinysam_mobile.mil import MilProgram
from tinysam_mobile.utils.transforms import PIXEL_MEAN, PIXEL_STD, preprocess

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def full_model():
    from tinysam_mobile.checkpoint import seeded_model
    from tinysam_mobile.modeling import TinySamConfig

    return seeded_model(TinySamConfig()).eval()


@pytest.fixture(scope="module")
def photo_input(photo):
    """(normalised encoder input, the 0-255 RGB tensor the package's image input takes, resized size)."""
    x, size = preprocess(photo, 1024)
    pixels = x * PIXEL_STD.reshape(1, 3, 1, 1) + PIXEL_MEAN.reshape(1, 3, 1, 1)  # padding -> mean colour
    return x, pixels.astype(np.float32), size


@pytest.fixture(scope="module")
def torch_embedding(full_model, photo_input):
    with torch.no_grad():
        return full_model.encode(torch.from_numpy(photo_input[0])).numpy()


def prompts(size, seed=0):
    """Exact (coords, labels), as the predictor builds them (2, 3, 2 and 3 tokens, the decoder's enumerated
    shapes): single points, a positive with a negative, boxes, a box with a point, inside the resized photo."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    for kind in ["point", "point", "two", "two", "box", "box", "box+point", "point"]:
        a, b = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h], size=(2, 2))
        box = np.sort([a, b], axis=0)
        coords, labels = {"point": ([a, (0, 0)], [1, -1]), "two": ([a, b, (0, 0)], [1, 0, -1]),
                          "box": (box, [2, 3]), "box+point": ([box.mean(0), *box], [1, 2, 3])}[kind]
        out.append((np.asarray(coords, np.float32), np.asarray(labels, np.float32)))
    return out


def torch_decode(model, embedding, coords, labels, mask_input, has_mask):
    with torch.no_grad():
        logits, iou = model.decode(torch.from_numpy(embedding), torch.from_numpy(coords[None]),
                                   torch.from_numpy(labels[None]), torch.from_numpy(mask_input),
                                   torch.tensor([has_mask], dtype=torch.float32))
    return logits.numpy(), iou.numpy()


def mask_iou(a, b) -> float:
    union = np.logical_or(a > 0, b > 0).sum()
    return 1.0 if union == 0 else float(np.logical_and(a > 0, b > 0).sum() / union)


def decoder_comparison(package_dir, model, embedding, size):
    """Per prompt: (mask IoU of the 3 masks vs PyTorch, max |logit diff|, max |IoU-prediction diff|).
    Half the prompts also feed the previous PyTorch logits back as mask_input."""
    decoder = MilProgram(package_dir / "decoder.mlpackage")
    low = np.zeros((1, 1, 256, 256), np.float32)
    results = []
    for i, (coords, labels) in enumerate(prompts(size)):
        has_mask = float(i % 2)
        ref_logits, ref_iou = torch_decode(model, embedding, coords, labels, low, has_mask)
        out = decoder.predict({"image_embeddings": embedding, "point_coords": coords[None],
                               "point_labels": labels[None], "mask_input": low,
                               "has_mask_input": np.array([has_mask], np.float32)})
        logits, iou = out["low_res_masks"].astype(np.float32), out["iou_predictions"].astype(np.float32)
        results.append((np.mean([mask_iou(logits[0, k], ref_logits[0, k]) for k in range(3)]),
                        float(np.abs(logits - ref_logits).max()), float(np.abs(iou - ref_iou).max())))
        low = ref_logits[:, ref_iou[0].argmax()][:, None]
    return np.array(results)


def test_fp32_encoder_matches_pytorch(coreml_fp32_dir, photo_input, torch_embedding):
    encoder = MilProgram(coreml_fp32_dir / "encoder.mlpackage")
    embedding = encoder.predict({"image": photo_input[1]})["image_embeddings"]
    assert embedding.dtype == np.float32 and embedding.shape == (1, 256, 64, 64)
    error = np.abs(embedding - torch_embedding).max()
    assert error <= 1e-3, f"max abs error {error:.2e} (embedding scale {np.abs(torch_embedding).max():.2f})"


def test_fp32_decoders_give_identical_masks(coreml_fp32_dir, full_model, torch_embedding, photo_input):
    results = decoder_comparison(coreml_fp32_dir, full_model, torch_embedding, photo_input[2])
    assert results[:, 0].min() >= 0.999, results
    assert results[:, 1].max() <= 1e-3 and results[:, 2].max() <= 1e-4, results
    # the everything-mode decoder: a batch of single points (label 1, then the -1 padding point)
    batch = MilProgram(coreml_fp32_dir / "decoder_batch.mlpackage")
    b = batch.input_shapes["point_coords"][0]
    coords = np.zeros((b, 2, 2), np.float32)
    coords[:, 0] = np.random.default_rng(1).uniform(50, 600, size=(b, 2))
    labels = np.tile(np.array([[1.0, -1.0]], np.float32), (b, 1))
    out = batch.predict({"image_embeddings": torch_embedding, "point_coords": coords, "point_labels": labels})
    for i in range(b):  # padding points are attended to, so the reference gets the same two points
        ref_logits, ref_iou = torch_decode(full_model, torch_embedding, coords[i], labels[i],
                                           np.zeros((1, 1, 256, 256), np.float32), 0.0)
        assert min(mask_iou(out["low_res_masks"][i, k], ref_logits[0, k]) for k in range(3)) >= 0.999
        np.testing.assert_allclose(out["iou_predictions"][i], ref_iou[0], atol=1e-4)


@pytest.mark.parametrize("fixture,min_embedding_cosine,min_mean_mask_iou", [
    ("coreml_fp16_dir", 0.9999, 0.99), ("coreml_int8_dir", 0.999, 0.95),
])
def test_reduced_precision_packages_track_pytorch(request, fixture, min_embedding_cosine, min_mean_mask_iou,
                                                  full_model, photo_input, torch_embedding):
    """fp16 tensors between ops (and int8 weights decompressed from constexpr_affine_dequantize):
    close to FP32 PyTorch, not equal. The decoder gets the package's own embedding (end to end)."""
    package_dir = request.getfixturevalue(fixture)
    encoder = MilProgram(package_dir / "encoder.mlpackage")
    embedding = encoder.predict({"image": photo_input[1]})["image_embeddings"].astype(np.float32)
    a, b = embedding.ravel().astype(np.float64), torch_embedding.ravel().astype(np.float64)
    cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert cosine >= min_embedding_cosine
    # masks: the package's embedding and decoder against FP32 PyTorch end to end
    decoder = MilProgram(package_dir / "decoder.mlpackage")
    ious = []
    for coords, labels in prompts(photo_input[2], seed=2):
        ref_logits, _ = torch_decode(full_model, torch_embedding, coords, labels,
                                     np.zeros((1, 1, 256, 256), np.float32), 0.0)
        out = decoder.predict({"image_embeddings": embedding, "point_coords": coords[None],
                               "point_labels": labels[None], "mask_input": np.zeros((1, 1, 256, 256), np.float32),
                               "has_mask_input": np.zeros(1, np.float32)})
        ious += [mask_iou(out["low_res_masks"][0, k], ref_logits[0, k]) for k in range(3)]
    assert np.mean(ious) >= min_mean_mask_iou, ious


@pytest.mark.macos
@pytest.mark.skipif(platform.system() != "Darwin", reason="MLModel.predict needs Apple's CoreML runtime (macOS)")
def test_interpreter_matches_coreml_runtime(coreml_fp16_dir, photo_input):
    """On a Mac: the same package through Core ML (CPU only: fp16 math closest to ours) and the interpreter."""
    import coremltools as ct
    from PIL import Image

    rgb = np.clip(np.round(photo_input[1][0]), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    path = coreml_fp16_dir / "encoder.mlpackage"
    feeds = {"image": Image.fromarray(rgb)}
    expected = np.asarray(ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
                          .predict(feeds)["image_embeddings"], np.float32)
    embedding = MilProgram(path).predict(feeds)["image_embeddings"].astype(np.float32)
    assert np.abs(embedding - expected).max() <= 2e-2 * np.abs(expected).max()
    path = coreml_fp16_dir / "decoder.mlpackage"
    runtime = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
    decoder = MilProgram(path)
    for coords, labels in prompts(photo_input[2]):
        feeds = {"image_embeddings": expected, "point_coords": coords[None], "point_labels": labels[None],
                 "mask_input": np.zeros((1, 1, 256, 256), np.float32), "has_mask_input": np.zeros(1, np.float32)}
        reference = runtime.predict(feeds)
        out = decoder.predict(feeds)
        for k in range(3):
            assert mask_iou(out["low_res_masks"][0, k], np.asarray(reference["low_res_masks"])[0, k]) >= 0.99
        np.testing.assert_allclose(out["iou_predictions"], reference["iou_predictions"], atol=1e-2)
