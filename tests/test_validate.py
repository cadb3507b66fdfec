"""`validate` and `convert` from the command line: pass/fail, tampered artifacts, bad arguments."""

import json

import pytest
from PIL import Image

from conftest import tampered_copy
from test_cli import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def one_photo(tmp_path_factory, photo):
    folder = tmp_path_factory.mktemp("validate_photos")
    Image.fromarray(photo).save(folder / "chelsea.png")
    return folder


@pytest.mark.slow
def test_validate_passes_fp32_and_writes_json(tflite_fp32_dir, one_photo, tmp_path):
    out = tmp_path / "parity.json"
    result = run_cli("validate", tflite_fp32_dir, "--images", one_photo, "--prompts-per-image", "3", "--json", out)
    assert result.returncode == 0, result.stderr + result.stdout
    figures = json.loads(out.read_text())
    assert figures["passed"] and figures["precision"] == "fp32" and figures["prompts"] == 3
    assert figures["mask_iou"]["count"] == 9  # 3 masks per prompt
    assert "mask IoU" in result.stdout


@pytest.mark.slow
def test_validate_per_half_swaps_in_pytorch_halves(tflite_w8a8_dir, one_photo, tmp_path):
    """--per-half: the artifacts' encoder with PyTorch's decoder, and PyTorch's encoder with theirs; the exit
    status follows the whole pipeline's verdict, and the JSON is written either way."""
    out = tmp_path / "parity.json"
    result = run_cli("validate", tflite_w8a8_dir, "--images", one_photo, "--prompts-per-image", "2", "--per-half",
                     "--json", out)
    figures = json.loads(out.read_text())
    assert result.returncode == (0 if figures["passed"] else 1), result.stderr + result.stdout
    encoder_only, decoder_only = figures["per_half"]["encoder_only"], figures["per_half"]["decoder_only"]
    assert encoder_only["embedding_cosine"] == figures["embedding_cosine"]  # the same integer encoder
    assert encoder_only["embedding_max_abs_error"] > 0
    assert decoder_only["embedding_cosine"]["min"] == pytest.approx(1.0, abs=1e-6)  # PyTorch's own embedding
    assert decoder_only["embedding_max_abs_error"] == 0.0
    assert "decoder only" in result.stdout


@pytest.mark.slow
def test_validate_refuses_tampered_artifact(tflite_fp32_dir, one_photo, tmp_path):
    tampered = tampered_copy(tflite_fp32_dir, "decoder.tflite", tmp_path / "tampered")
    result = run_cli("validate", tampered, "--images", one_photo)
    assert_one_line_error(result, "decoder.tflite", "does not match its manifest hash")


def test_validate_without_manifest(tmp_path):
    assert_one_line_error(run_cli("validate", tmp_path), "no manifest.json")


def test_convert_unknown_precision(tmp_path):
    assert_one_line_error(run_cli("convert", "--target", "tflite", "--precision", "int4", "--out", tmp_path / "o"),
                          "unknown precision 'int4'", "fp32, fp16, int8, w8a8")


def test_convert_missing_checkpoint(tmp_path):
    result = run_cli("convert", "--target", "onnx", "--checkpoint", tmp_path / "nope.pth", "--out", tmp_path / "o")
    assert_one_line_error(result, "checkpoint not found")


def test_convert_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("convert", "--target", "tflite", "--out", blocker / "artifacts")
    assert_one_line_error(result, "cannot create output folder")


def test_segment_delegate_needs_tflite(one_photo):
    result = run_cli("segment", one_photo / "chelsea.png", "--point", "1,1", "--delegate", "npu-emulation")
    assert_one_line_error(result, "--delegate applies to --backend tflite only")
