"""`tinysam-mobile report` on a small config: one cheap row at input size 256, through the real verb."""

import json

import pytest

from test_cli import assert_one_line_error, run_cli

SMALL = ("--images", "1", "--prompts-per-image", "4", "--latency-runs", "1", "--img-size", "256")


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    result = run_cli("report", "--out", root / "page", "--cache", root / "cache", "--row", "onnx-fp32", *SMALL)
    assert result.returncode == 0, result.stderr
    return root, result


def test_page_holds_the_measured_row_and_its_pictures(small_report):
    root, result = small_report
    page = (root / "page" / "README.md").read_text()
    onnx_row = next(line for line in page.splitlines() if line.startswith("| onnx fp32 |"))
    assert float(onnx_row.split("|")[2]) >= 0.995  # fp32 ONNX against fp32 PyTorch, through the same predictor
    assert "0.995: met" in onnx_row
    assert "| torch fp32 (reference) |" in page and "Not measured in this report: tflite fp32" in page
    reproduce = next(line for line in page.splitlines() if line.startswith("Reproduce:"))
    assert "report --out" in reproduce and "--row onnx-fp32" in reproduce  # a partial page names its rows
    for picture in ("overlays.png", "mask_iou_distribution.png", "size_vs_mask_iou.png"):
        assert (root / "page" / picture).stat().st_size > 1000
    figures = json.loads((root / "cache" / "onnx-fp32.figures.json").read_text())
    assert figures["mask_iou"]["count"] == 4 * 3 and figures["key"]["img_size"] == 256


def test_a_second_run_reuses_the_cached_row(small_report):
    root, _ = small_report
    record = root / "cache" / "onnx-fp32.figures.json"
    before = record.stat().st_mtime_ns
    result = run_cli("report", "--out", root / "page", "--cache", root / "cache", "--row", "onnx-fp32", *SMALL)
    assert result.returncode == 0, result.stderr
    assert record.stat().st_mtime_ns == before  # neither converted nor measured again


def test_bad_rows_and_missing_scales_are_one_line_errors(tmp_path):
    assert_one_line_error(run_cli("report", "--out", tmp_path / "a", "--row", "tflite-fp64"), "unknown report row")
    assert_one_line_error(run_cli("report", "--out", tmp_path / "b", "--row", "tflite-w8a8-ptq"), "needs --scales")


def test_token_table_reads_fresh_and_cached_records_alike():
    from tinysam_mobile.report.page import token_table

    fresh = {"mask_iou_by_tokens": {1: {"mean": 0.5}, 3: {"mean": 0.75}}}
    cached = {"mask_iou_by_tokens": {"1": {"mean": 0.25}}}
    table = token_table({"fresh row": fresh, "cached row": cached})
    assert "| fresh row | 0.500 | 0.750 |" in table and "| cached row | 0.250 | - |" in table


def test_each_ptq_row_takes_the_scales_file_of_its_width(tmp_path):
    from tinysam_mobile.report.build import row_scales
    from tinysam_mobile.report.rows import Row

    files = {8: tmp_path / "w8.safetensors", 6: tmp_path / "w6.safetensors"}
    assert row_scales(Row("coreml", "palettize6", ptq_scales=True, palette="ptq-grid"), files) == files[6]
    assert row_scales(Row("coreml", "palettize6", ptq_scales=True, palette="sensitive-kmeans"), files) == files[8]
    assert row_scales(Row("tflite", "w8a8", ptq_scales=True), files) == files[8]
    assert row_scales(Row("coreml", "palettize4", ptq_scales=True, palette="ptq-grid"), files) is None
    assert row_scales(Row("coreml", "palettize6"), files) is None  # plain k-means takes no scales file


def test_a_ptq_grid_row_without_its_width_is_a_one_line_error(tmp_path):
    result = run_cli("report", "--out", tmp_path / "a", "--row", "coreml-palettize6-ptq-grid")
    assert_one_line_error(result, "needs --scales with a --bits 6 file")
    result = run_cli("report", "--out", tmp_path / "b", "--scales", tmp_path / "absent.safetensors")
    assert_one_line_error(result, "does not exist")


def test_palette_targets_are_the_issues_in_report_and_validate():
    """Issue #15: palettize8 as int8 (0.98), palettize6 0.97, palettize4 reported only; validate's exit
    status uses the same thresholds as the report's target column."""
    from tinysam_mobile.report.build import row_target
    from tinysam_mobile.report.rows import Row
    from tinysam_mobile.validation import THRESHOLDS

    assert [row_target(Row("coreml", f"palettize{bits}")) for bits in (8, 6, 4)] == [0.98, 0.97, None]
    assert (THRESHOLDS["palettize8"], THRESHOLDS["palettize6"]) == (0.98, 0.97)
