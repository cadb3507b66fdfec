"""`tinysam-mobile everything` and `benchmark-everything` as a user meets them."""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from test_cli import assert_one_line_error, run_cli
from test_everything import ScriptedRunner, rectangles_scene
from typer.testing import CliRunner

from tinysam_mobile.cli import app
from tinysam_mobile.errors import TinySamError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def photo_path(tmp_path_factory, photo):
    path = tmp_path_factory.mktemp("everything_cli") / "chelsea.png"
    Image.fromarray(photo).save(path)
    return path


@pytest.fixture
def scripted_backend(monkeypatch):
    """Route the commands' runner to a ScriptedRunner over the rectangles scene (masks known exactly)."""
    monkeypatch.setattr("tinysam_mobile.runners.factory.make_runner",
                        lambda *args, **kwargs: ScriptedRunner(rectangles_scene()))


def test_everything_writes_rle_json_and_overlay(tmp_path, scripted_backend):
    image = tmp_path / "blank.png"
    Image.fromarray(np.full((256, 256, 3), 90, np.uint8)).save(image)
    out, overlay = tmp_path / "out" / "masks.json", tmp_path / "out" / "overlay.png"
    result = CliRunner().invoke(app, ["everything", str(image), "--out", str(out), "--overlay", str(overlay)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert (data["height"], data["width"], data["mode"]) == (256, 256, "hierarchical")
    assert data["prompts_per_round"][0] == 64 and data["prompts"] == sum(data["prompts_per_round"])
    assert len(data["masks"]) == 5  # background, three rectangles, the small square
    labels = rectangles_scene()
    for record in data["masks"]:
        mask = mask_utils.decode(record["segmentation"]).astype(bool)
        x, y = record["point_coords"][0]
        assert record["area"] == mask.sum()
        assert (mask & (labels == labels[int(y), int(x)])).sum() / mask.sum() > 0.99
    picture = np.asarray(Image.open(overlay))
    assert picture.shape == (256, 256, 3)
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) >= 5  # every mask got its own colour


def test_benchmark_everything_reports_both_modes(tmp_path, scripted_backend):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["benchmark-everything", "--photos", "", "--scenes", "1", "--scene-size", "128",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    (row,) = figures["images"]
    assert row["image"].startswith("scene-") and row["dense"]["prompts"] == 1024
    assert row["hierarchical"]["prompts"] == sum(row["hierarchical"]["prompts_per_round"]) < 1024
    # The scripted masks do not depend on the image: both modes find the same five regions.
    assert row["hierarchical"]["objects"] == row["dense"]["objects"] == 5
    assert row["matched_miou"] == 1.0 and row["object_count_ratio"] == 1.0
    assert 0.0 <= row["hierarchical"]["recovery"] <= 1.0
    assert row["hierarchical"]["recovered"] == round(row["hierarchical"]["recovery"] * row["truth_objects"])
    summary = figures["summary"]
    assert summary["matched_miou"] == 1.0
    assert summary["recovery_hierarchical"] == row["hierarchical"]["recovery"]  # one scene: pooled = its own
    assert figures["config"]["generator"]["high_score_thresh"] == 8.5


def test_benchmark_everything_takes_the_coverage_threshold(tmp_path, scripted_backend):
    """A covering logit no first-round mask reaches leaves every pixel uncovered: round 2 grows."""
    second_round = {}
    for threshold in ("8.5", "1e9"):
        out = tmp_path / f"bench-{threshold}.json"
        result = CliRunner().invoke(app, ["benchmark-everything", "--photos", "", "--scenes", "1", "--scene-size",
                                          "128", "--high-score-thresh", threshold, "--out", str(out)])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(out.read_text())["images"]
        second_round[threshold] = row["hierarchical"]["prompts_per_round"][1]
    assert second_round["1e9"] > second_round["8.5"]


def test_everything_with_the_default_model(tmp_path, photo_path):
    out = tmp_path / "masks.json"
    result = run_cli("everything", photo_path, "--out", out, "--points-per-side", "4", "--mode", "dense")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["prompts"] == 16 and (data["height"], data["width"]) == (300, 451)


def test_everything_bad_option_is_one_line_error(tmp_path, photo_path):
    assert_one_line_error(run_cli("everything", photo_path, "--out", tmp_path / "m.json", "--mode", "sparse"),
                          "unknown mode")


@pytest.mark.parametrize("args, fragment", [
    (["{photo}", "--points-per-side", "2"], "points_per_side"),
    (["{photo}", "--pred-iou-thresh", "2"], "pred_iou_thresh"),
    (["{missing}"], "not found"),
])
def test_everything_refuses_bad_input_before_loading_the_model(tmp_path, photo_path, monkeypatch, args, fragment):
    monkeypatch.setattr("tinysam_mobile.runners.factory.make_runner", lambda *a, **k: pytest.fail("model loaded"))
    args = [a.format(photo=photo_path, missing=tmp_path / "nope.jpg") for a in args]
    result = CliRunner().invoke(app, ["everything", *args, "--out", str(tmp_path / "m.json")])
    assert isinstance(result.exception, TinySamError) and fragment in str(result.exception)
    assert not (tmp_path / "m.json").exists()


def test_benchmark_everything_unknown_photo(tmp_path):
    result = CliRunner().invoke(app, ["benchmark-everything", "--photos", "nosuchphoto", "--out", str(tmp_path / "b")])
    assert isinstance(result.exception, TinySamError) and "nosuchphoto" in str(result.exception)
