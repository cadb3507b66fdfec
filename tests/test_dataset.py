"""`everything DIR` and `validate --images DIR`: COCO output, bad images, resuming, and Ray runs equal to local ones.

Small on purpose: 2 photos of ~60x90 px plus a file that is no image; everything mode on the embedded demo
model with a 4x4 dense grid; validate on 256 px ONNX artifacts of seeded weights. Ray tests start a local
Ray with 2 CPUs once for the module (skipped when the optional extra is not installed).
"""

import json
import sys

import pytest
from PIL import Image
from test_cli import assert_one_line_error, run_cli
from typer.testing import CliRunner

from tinysam_mobile.cli import app
from tinysam_mobile.errors import TinySamError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

EVERYTHING = ["--mode", "dense", "--points-per-side", "4", "--pred-iou-thresh", "0.05",
              "--stability-score-thresh", "0.3"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, photo):
    """chelsea.png, sub/crop.jpg (recursion), broken.jpg (no image) and notes.txt (not an image suffix)."""
    folder = tmp_path_factory.mktemp("dataset_photos")
    (folder / "sub").mkdir()
    Image.fromarray(photo[::5, ::5]).save(folder / "chelsea.png")
    Image.fromarray(photo[100:160, 150:240]).save(folder / "sub" / "crop.jpg", quality=95)
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored")
    return folder


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def local_run(photos, tmp_path_factory):
    """everything over the folder in this process: (output path, its text, the CLI result)."""
    out = tmp_path_factory.mktemp("everything_local") / "annotations.json"
    result = invoke("everything", photos, "--out", out, *EVERYTHING)
    assert result.exit_code == 0, result.output
    return out, out.read_text(), result


def test_everything_folder_writes_coco(local_run):
    from pycocotools.coco import COCO

    out, text, result = local_run
    coco = COCO(str(out))  # pycocotools reads the file as a COCO data set
    images = coco.dataset["images"]
    assert [(i["id"], i["file_name"], i["height"], i["width"]) for i in images] == [
        (1, "chelsea.png", 60, 91), (2, "sub/crop.jpg", 60, 90)]
    annotations = coco.dataset["annotations"]
    assert annotations and [a["id"] for a in annotations] == list(range(1, len(annotations) + 1))
    for annotation in annotations:
        assert set(annotation) == {"id", "image_id", "category_id", "iscrowd", "segmentation", "area", "bbox",
                                   "predicted_iou", "stability_score", "point_coords"}
        assert coco.annToMask(annotation).sum() == annotation["area"]
    (failed,) = coco.dataset["failed"]
    assert failed["file_name"] == "broken.jpg" and "not a readable image" in failed["error"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "broken.jpg" in warnings[0]
    assert "images: 2 done" in result.stdout and "1 failed, 0 already in the journal" in result.stdout


def test_everything_resumes_from_the_journal(photos, local_run, tmp_path):
    """An interrupted run: the journal holds one photo and a torn line. The rerun does only the other photo
    (and retries the broken file) and writes the same file; a run with other settings is refused."""
    out, text, _ = local_run
    lines = out.with_name(out.name + ".journal").read_bytes().splitlines(keepends=True)
    records = [line for line in lines[1:] if b'"error"' not in line]
    resumed = tmp_path / "annotations.json"
    resumed.with_name(resumed.name + ".journal").write_bytes(lines[0] + records[0] + records[1][:40])
    result = invoke("everything", photos, "--out", resumed, *EVERYTHING)
    assert result.exit_code == 0, result.output
    assert "images: 1 done" in result.stdout and "1 failed, 1 already in the journal" in result.stdout
    assert resumed.read_text() == text
    assert_one_line_error(run_cli("everything", photos, "--out", resumed, *EVERYTHING[:-1], "0.4"),
                          "other settings (config)")
    assert resumed.read_text() == text


def test_everything_list_file(photos, local_run, tmp_path):
    """A .txt list: paths relative to the list, in the list's order; a missing one is reported, not fatal."""
    listing = tmp_path / "photos.txt"
    listing.write_text(f"# two photos\n{photos}/sub/crop.jpg\n\n{photos}/missing.jpg\n")
    out = tmp_path / "list.json"
    result = invoke("everything", listing, "--out", out, *EVERYTHING)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [i["file_name"] for i in data["images"]] == [f"{photos}/sub/crop.jpg"]
    assert data["failed"][0]["file_name"] == f"{photos}/missing.jpg" and "not found" in data["failed"][0]["error"]
    local = json.loads(local_run[1])
    assert data["annotations"] == [dict(a, image_id=1, id=i + 1) for i, a in
                                   enumerate(a for a in local["annotations"] if a["image_id"] == 2)]


@pytest.mark.parametrize("args, fragment", [
    (["{photo}", "--ray", "auto"], "--ray: only with a folder or list"),
    (["{folder}", "--overlay", "{tmp}/o.png"], "--overlay draws one photo"),
    (["{folder}", "--workers", "2"], "--workers sizes the Ray actor pool"),
    (["{folder}", "--backend", "onnx"], "needs --artifacts"),
])
def test_everything_dataset_options_refused_before_any_work(photos, tmp_path, monkeypatch, args, fragment):
    monkeypatch.setattr("tinysam_mobile.runners.factory.make_runner", lambda *a, **k: pytest.fail("model loaded"))
    args = [a.format(photo=photos / "chelsea.png", folder=photos, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, ["everything", *args, "--out", str(tmp_path / "m.json")])
    assert isinstance(result.exception, TinySamError) and fragment in str(result.exception)
    assert list(tmp_path.iterdir()) == []


def test_ray_missing_is_one_line_error(photos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as where the extra is not installed
    result = CliRunner().invoke(app, ["everything", str(photos), "--out", str(tmp_path / "m.json"), "--ray", "auto"])
    assert isinstance(result.exception, TinySamError)
    assert str(result.exception) == "--ray needs Ray, an optional extra: pip install 'tinysam-mobile[ray]'"


def test_unreachable_ray_is_one_line_error(photos, tmp_path):
    """Refused at once (Ray itself would retry for minutes), before any journal is written."""
    pytest.importorskip("ray")
    result = CliRunner().invoke(app, ["everything", str(photos), "--out", str(tmp_path / "m.json"),
                                      "--ray", "127.0.0.1:1"])
    assert isinstance(result.exception, TinySamError) and "cannot connect to Ray at '127.0.0.1:1'" in str(result.exception)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_everything_on_ray_equals_local(photos, local_run, local_ray, tmp_path):
    out = tmp_path / "ray.json"
    result = invoke("everything", photos, "--out", out, *EVERYTHING, "--ray", "auto", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert out.read_text() == local_run[1]  # byte for byte: same records, same order, same ids


def test_benchmark_dataset_local_and_one_worker(photos, local_ray, tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("benchmark-dataset", photos, "--out", out, "--workers", "1", "--mode", "dense",
                    "--points-per-side", "4")
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    local, ray = figures["runs"]
    assert (local["run"], ray["run"], local["images"], ray["images"], local["failed"]) == ("local", "ray-1", 2, 2, 1)
    assert local["prompts_per_image"] == ray["prompts_per_image"] == 16
    for run in (local, ray):
        cost = run["cost_per_image_s"]
        assert cost["total_s"] >= cost["encoder_s"] + cost["decoder_s"] > 0 and run["idle_s_per_image"] >= 0
    assert figures["ray_overhead_per_image"]["seconds_per_image"] == pytest.approx(
        ray["idle_s_per_image"] - local["idle_s_per_image"])
    assert figures["command"].startswith("tinysam-mobile benchmark-dataset") and "Ray overhead per image" in result.stdout


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory, small_model):
    """256 px ONNX artifacts of the seeded model, converted from a checkpoint file (validate checks its hash)."""
    from safetensors.torch import save_file

    from tinysam_mobile.checkpoint import checkpoint_id
    from tinysam_mobile.converters import onnx as onnx_target
    from tinysam_mobile.converters.config import ConvertConfig

    root = tmp_path_factory.mktemp("small_onnx")
    checkpoint = root / "seeded256.safetensors"
    save_file({k: v.contiguous() for k, v in small_model.state_dict().items()}, checkpoint)
    (root / "onnx").mkdir()
    onnx_target.convert(small_model, ConvertConfig(target="onnx", precision="fp32"), root / "onnx",
                        checkpoint_id(checkpoint))
    return root / "onnx", checkpoint


def test_validate_folder_resumes_and_equals_on_ray(photos, small_onnx, local_ray, tmp_path):
    artifacts, checkpoint = small_onnx
    common = ["--images", photos, "--checkpoint", checkpoint, "--prompts-per-image", "4"]
    local, ray = tmp_path / "local.json", tmp_path / "ray.json"
    first = invoke("validate", artifacts, *common, "--json", local, "--journal", tmp_path / "local.journal")
    assert first.exit_code == 0, first.output
    figures = json.loads(local.read_text())
    assert figures["images"] == 2 and figures["prompts"] == 8 and figures["mask_iou"]["count"] == 24
    assert figures["passed"] and "broken.jpg" in first.stderr and "mask IoU" in first.stdout

    again = invoke("validate", artifacts, *common, "--json", tmp_path / "again.json", "--journal",
                   tmp_path / "local.journal")
    assert "2 already in the journal" in again.stderr
    assert json.loads((tmp_path / "again.json").read_text()) == figures

    on_ray = invoke("validate", artifacts, *common, "--json", ray, "--journal", tmp_path / "ray.journal",
                    "--ray", "auto", "--workers", "2")
    assert on_ray.exit_code == 0, on_ray.output
    assert json.loads(ray.read_text()) == figures
