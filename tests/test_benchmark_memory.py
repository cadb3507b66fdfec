"""benchmark-memory: each verb in its own process, its peak memory read from the kernel."""

import json

from PIL import Image

from test_cli import assert_one_line_error, run_cli
from tinysam_mobile.benchmarks.memory import scaled_photo
from tinysam_mobile.utils.image_io import MAX_PIXELS


def test_scaled_photo_keeps_the_aspect_within_the_pixel_limit(tmp_path, photo):
    width, height = scaled_photo(photo, 1_000_000, tmp_path / "big.jpg")
    assert width * height <= 1_000_000 < (width + 1) * (height + 1)
    assert abs(width / height - photo.shape[1] / photo.shape[0]) < 0.01
    with Image.open(tmp_path / "big.jpg") as img:
        assert img.size == (width, height)


def test_segment_peak_memory_is_measured_in_its_own_process(tmp_path):
    out = tmp_path / "memory.json"
    result = run_cli("benchmark-memory", "--verbs", "segment", "--pixels", 200_000, "--no-baseline", "--out", out)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())["results"]
    assert (row["verb"], row["image"]) == ("segment", "limit")
    assert row["width"] * row["height"] <= 200_000
    # A Python process holding torch and the model: far above the ~10 MB of an idle interpreter, and
    # far below this machine's memory (what a wrongly read ru_maxrss unit would give).
    assert 150 < row["peak_rss_mb"] < 8_000
    assert row["output"].startswith("mask: OUT/mask.png")


def test_bad_options_are_one_line_errors():
    assert_one_line_error(run_cli("benchmark-memory", "--verbs", "segment,train"), "--verbs")
    assert_one_line_error(run_cli("benchmark-memory", "--pixels", MAX_PIXELS + 1), "--pixels")
    assert_one_line_error(run_cli("benchmark-memory", "--photo", "nothing"), "nothing")
