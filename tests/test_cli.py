"""The command line as a user meets it: outputs written, bad input answered in one line with exit 2."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tinysam_mobile.checkpoint import seeded_model


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinysam_mobile", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def photo_path(tmp_path_factory, photo):
    path = tmp_path_factory.mktemp("cli") / "chelsea.jpg"
    Image.fromarray(photo).save(path, quality=95)
    return path


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_segment_writes_mask_and_overlay(tmp_path, photo_path):
    mask_path, overlay_path = tmp_path / "out" / "mask.png", tmp_path / "out" / "overlay.png"
    result = run_cli("segment", photo_path, "--point", "230,140", "--point", "20,20,0", "--box", "100,50,400,290",
                     "--out", mask_path, "--overlay", overlay_path)
    assert result.returncode == 0, result.stderr
    mask = np.asarray(Image.open(mask_path))
    assert mask.shape == (300, 451) and set(np.unique(mask)) <= {0, 255}
    overlay = Image.open(overlay_path)
    assert overlay.size == (451, 300) and overlay.mode == "RGB"
    assert not any(p.name.endswith(".tmp.png") for p in mask_path.parent.iterdir())


@pytest.mark.parametrize("args, fragments", [
    (["segment", "{photo}", "--point", "2000,10"], ["outside", "451x300"]),
    (["segment", "{photo}", "--point", "2,a"], ["malformed point"]),
    (["segment", "{photo}", "--point", "2,3,7"], ["LABEL"]),
    (["segment", "{photo}", "--box", "1,2,3"], ["malformed box"]),
    (["segment", "{photo}"], ["at least one"]),
    (["segment", "missing.jpg", "--point", "1,1"], ["not found"]),
    (["segment", "{photo}", "--point", "1,1", "--checkpoint", "missing.pth"], ["checkpoint not found"]),
    (["segment", "{photo}", "--point", "1,1", "--backend", "tpu"], ["unknown backend"]),
])
def test_bad_input_gives_one_line_error(args, fragments, photo_path, tmp_path):
    args = [a.replace("{photo}", str(photo_path)) for a in args]
    assert_one_line_error(run_cli(*args, "--out", tmp_path / "m.png"), *fragments)


def test_misshaped_checkpoint_names_the_keys(tmp_path, photo_path):
    state = seeded_model().state_dict()
    state["mask_decoder.iou_token.weight"] = torch.zeros(2, 256)
    del state["prompt_encoder.no_mask_embed.weight"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    result = run_cli("segment", photo_path, "--point", "1,1", "--checkpoint", path, "--out", tmp_path / "m.png")
    assert_one_line_error(result, "mask_decoder.iou_token.weight (2, 256) != (1, 256)",
                          "missing: prompt_encoder.no_mask_embed.weight")


def test_unreadable_image_and_unwritable_output(tmp_path, photo_path):
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    assert_one_line_error(run_cli("segment", bad, "--point", "1,1"), "not a readable image")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run_cli("segment", photo_path, "--point", "1,1", "--out", blocker / "m.png"),
                          "cannot create output folder")


def test_every_command_has_a_manual():
    from tinysam_mobile.cli import app

    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert "segment" in names and "convert" in names
    for name in names:
        result = run_cli(name.replace("_", "-"), "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "Usage" in result.stdout
