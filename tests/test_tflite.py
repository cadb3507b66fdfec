"""LiteRT artifacts at full size: contracts, integer-only w8a8, accelerator checks, parity with PyTorch."""

import numpy as np
import pytest

from tinysam_mobile.converters import accelerators
from tinysam_mobile.converters.manifest import load_manifest
from tinysam_mobile.errors import ArtifactError, TinySamError
from tinysam_mobile.runners import TorchRunner
from tinysam_mobile.runners.litert_runner import LiteRTRunner
from tinysam_mobile.validation import THRESHOLDS, ParityConfig, measure_parity

from conftest import TFLITE_TEST_BATCH

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference():
    from tinysam_mobile.checkpoint import load_tinysam

    return TorchRunner(load_tinysam())


@pytest.fixture(scope="module")
def parity_images(photo):
    from tinysam_mobile.calibration.dataset import default_images

    return [(photo, None)] + default_images(2, held_out=True)[1:]  # a photo and a generated scene


def test_fp32_contract_in_manifest(tflite_fp32_dir):
    manifest = load_manifest(tflite_fp32_dir)
    encoder, decoder = manifest["artifacts"][0], manifest["artifacts"][1]
    image = encoder["signatures"]["encode"]["inputs"]["image"]
    assert image["shape"] == [1, 1024, 1024, 3] and image["dtype"] == "float32"
    decode, batch = decoder["signatures"]["decode"], decoder["signatures"]["decode_batch"]
    assert decode["inputs"]["point_coords"]["shape"] == [1, 8, 2]
    assert batch["inputs"]["point_coords"]["shape"] == [TFLITE_TEST_BATCH, 2, 2]
    assert batch["inputs"]["image_embeddings"]["shape"] == [1, 256, 64, 64]
    assert set(decode["outputs"]) == {"low_res_masks", "iou_predictions"}
    assert (tflite_fp32_dir / "gpu_compatibility.txt").read_text().count("GPU delegate") >= 2


def test_fp32_parity(tflite_fp32_dir, reference, parity_images):
    figures = measure_parity(LiteRTRunner(tflite_fp32_dir), reference, parity_images, ParityConfig(prompts_per_image=6))
    assert figures["embedding_cosine"]["min"] > 0.9999
    assert figures["mask_iou"]["mean"] >= THRESHOLDS["fp32"]
    assert figures["iou_prediction_abs_error"]["max"] < 1e-3


def test_batched_decoder_matches_pytorch(tflite_fp32_dir, reference):
    """Everything mode: single-point prompts go through 'decode_batch' in padded batches of the
    signature's size, each padded to 2 points as the reference sees them."""
    runner = LiteRTRunner(tflite_fp32_dir)
    rng = np.random.default_rng(1)
    embedding = rng.standard_normal((1, 256, 64, 64)).astype(np.float32)
    count = TFLITE_TEST_BATCH + 3  # two calls, the second padded
    coords = np.zeros((count, 2, 2), np.float32)
    coords[:, 0] = rng.random((count, 2)) * 1024
    labels = np.tile(np.array([[1.0, -1.0]], np.float32), (count, 1))
    masks, flags = np.zeros((count, 1, 256, 256), np.float32), np.zeros(count, np.float32)
    logits, iou = runner.decode(embedding, coords[:, :1], labels[:, :1], masks, flags)
    want_logits, want_iou = reference.decode(embedding, coords, labels, masks, flags)
    assert logits.shape == (count, 3, 256, 256) and iou.shape == (count, 3)
    np.testing.assert_allclose(logits, want_logits, atol=2e-3)
    np.testing.assert_allclose(iou, want_iou, atol=1e-4)


def test_w8a8_encoder_is_integer_only_with_exact_pixel_input(tflite_w8a8_dir):
    manifest = load_manifest(tflite_w8a8_dir)
    image = manifest["artifacts"][0]["signatures"]["encode"]["inputs"]["image"]
    assert image["dtype"] == "int8" and image["quantization"] == {"scale": 1.0, "zero_point": -128}
    assert accelerators.float_ops(tflite_w8a8_dir / "encoder.tflite") == {}
    outputs = manifest["artifacts"][1]["signatures"]["decode"]["outputs"]
    assert {spec["dtype"] for spec in outputs.values()} == {"int8"}


def test_integer_only_check_names_float_ops(tflite_fp32_dir, tflite_w8a8_dir):
    with pytest.raises(ArtifactError, match=r"encoder.tflite is not integer-only: .*CONV_2D"):
        accelerators.check_integer_only(tflite_fp32_dir / "encoder.tflite")
    # The prompt encoder's Fourier features stay float in the w8a8 decoder (no int8 SIN / COS kernels),
    # so the NPU emulation refuses it and says why.
    with pytest.raises(ArtifactError, match=r"decoder.tflite is not integer-only: .*SIN"):
        LiteRTRunner(tflite_w8a8_dir, delegate="npu-emulation")


@pytest.mark.xfail(strict=True, reason="known: the min/max-calibrated w8a8 decoder reaches a mean mask IoU of "
                   "~0.36 on seeded weights (encoder alone: 0.81); see the LiteRT section of README.md")
def test_w8a8_parity(tflite_w8a8_dir, reference, parity_images):
    figures = measure_parity(LiteRTRunner(tflite_w8a8_dir), reference, parity_images, ParityConfig(prompts_per_image=6))
    assert figures["embedding_cosine"]["mean"] > 0.9
    assert figures["mask_iou"]["mean"] >= THRESHOLDS["w8a8"]


def test_xnnpack_partitions(tflite_fp32_dir):
    assert accelerators.xnnpack_partitions(tflite_fp32_dir / "encoder.tflite") == {"partitions": 1,
                                                                                 "ops_outside_xnnpack": {}}


def test_unknown_delegate_is_refused(tflite_fp32_dir):
    with pytest.raises(TinySamError, match="unknown delegate"):
        LiteRTRunner(tflite_fp32_dir, delegate="gpu")
