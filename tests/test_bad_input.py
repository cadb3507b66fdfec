"""Every verb given the inputs users get wrong: one `error: ...` line naming the problem, exit code 2,
nothing half-written and no temporary file left behind.

The CLI runs in this process through tinysam_mobile.cli.main (the console script's entry point, so the
exit code and the `error:` line are main()'s own); one case also runs the real console script. Every case
fails before a model is built or run.
"""

import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinysam_mobile.checkpoint import checkpoint_id
from tinysam_mobile.cli import main
from tinysam_mobile.converters.manifest import MANIFEST_NAME, artifact_record, write_manifest
from tinysam_mobile.errors import TinySamError
from tinysam_mobile.utils.files import atomic_directory, atomic_path


class HostilePayload:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        return os.system, ("echo pwned",)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height RGB pixels and holds none: only a decoder would find out."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def fake_artifacts(root: Path, target: str = "tflite", checkpoint: str = "0" * 64, **edits) -> Path:
    """What `convert` writes, in miniature: two artifacts (a file and a package folder) and a real manifest."""
    root.mkdir()
    (root / "encoder.bin").write_bytes(b"encoder weights")
    (root / "decoder.pkg" / "Data").mkdir(parents=True)
    (root / "decoder.pkg" / "Data" / "weight.bin").write_bytes(b"decoder weights")
    records = [artifact_record(root, "encoder.bin", "encoder"), artifact_record(root, "decoder.pkg", "decoder")]
    manifest = write_manifest(root, target=target, precision="fp32", checkpoint_sha256=checkpoint, img_size=1024,
                              artifacts=records, prompt_tokens={"min": 1, "max": 5}, everything_batch=4)
    if edits:
        import json

        for key, value in edits.items():
            if value is None:
                manifest.pop(key)
            else:
                manifest[key] = value
        (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    return root


@pytest.fixture
def places(tmp_path) -> dict[str, Path]:
    """The files and folders the cases name as {key}."""
    seeded = checkpoint_id(None)  # what the default weights hash to: validate's checkpoint check passes
    p = {"photo": tmp_path / "photo.png", "text": tmp_path / "notes.txt", "file": tmp_path / "plain.txt",
         "folder": tmp_path / "folder", "out": tmp_path / "out", "missing": tmp_path / "missing",
         "empty": tmp_path / "empty", "evil": tmp_path / "evil.pth", "garbage": tmp_path / "garbage.pth",
         "app": tmp_path / "app", "blocked_app": tmp_path / "blocked_app", "bad_tflite": tmp_path / "model.tflite",
         "bad_package": tmp_path / "model.mlpackage", "scales_folder": tmp_path / "scales.safetensors"}
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(p["photo"])
    p["text"].write_text("hello")
    p["huge"] = png_header_only(tmp_path / "huge.png", 10_000, 6_401)  # 64,010,000 pixels
    p["file"].write_text("not a folder")
    p["bad_tflite"].write_bytes(b"TFL3 but not really")
    for key in ("folder", "out", "empty", "app", "bad_package", "scales_folder"):
        p[key].mkdir()
    (p["out"] / "keep.txt").write_text("an earlier result")
    torch.save({"model": HostilePayload()}, p["evil"])
    p["garbage"].write_text("hello")
    (p["blocked_app"] / "TinySAMApp").mkdir(parents=True)
    (p["blocked_app"] / "TinySAMApp" / "Artifacts").write_text("a file where the artifact folder goes")
    p["tflite"] = fake_artifacts(tmp_path / "tflite")
    p["tflite_seeded"] = fake_artifacts(tmp_path / "tflite_seeded", checkpoint=seeded)
    p["coreml_seeded"] = fake_artifacts(tmp_path / "coreml_seeded", "coreml", checkpoint=seeded)
    p["old"] = fake_artifacts(tmp_path / "old", format_version=99)
    p["nofield"] = fake_artifacts(tmp_path / "nofield", checkpoint_sha256=None)
    p["partial"] = fake_artifacts(tmp_path / "partial")
    (p["partial"] / "encoder.bin").unlink()
    p["modified"] = fake_artifacts(tmp_path / "modified")
    (p["modified"] / "encoder.bin").write_bytes(b"encoder weightz")
    p["badjson"] = fake_artifacts(tmp_path / "badjson")
    (p["badjson"] / MANIFEST_NAME).write_text('{"format_version": 1, "target": ')
    return p


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): (f.read_bytes() if f.is_file() else b"<dir>") for f in sorted(root.rglob("*"))}


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """main() as the console script runs it: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["tinysam-mobile", *map(str, args)])
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out, err


def assert_refused(root: Path, before: dict, result: tuple[int, str, str], fragments: list[str]) -> None:
    code, _out, err = result
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert "weights_only" not in err
    after = snapshot(root)
    assert after == before, f"files changed: {sorted(set(after) ^ set(before))}"
    assert not [name for name in after if ".tmp" in name]


# (verb and arguments with {place} names, fragments the error line must hold)
CASES = {
    # segment
    "segment/missing-image": (["segment", "{missing}/a.png", "-p", "1,1"], ["image not found"]),
    "segment/image-is-folder": (["segment", "{folder}", "-p", "1,1"], ["is a folder"]),
    "segment/image-not-an-image": (["segment", "{text}", "-p", "1,1"], ["not a readable image"]),
    "segment/image-too-large": (["segment", "{huge}", "-p", "1,1"], ["10000x6401 pixels", "more than the 64,000,000"]),
    "everything/image-too-large": (["everything", "{huge}", "--out", "{out}/m.json"], ["more than the 64,000,000"]),
    "segment/out-is-folder": (["segment", "{photo}", "-p", "5,5", "--out", "{folder}"], ["is a folder"]),
    "segment/out-under-file": (["segment", "{photo}", "-p", "5,5", "--out", "{file}/m.png"],
                               ["cannot create output folder", "is not a folder"]),
    "segment/overlay-is-folder": (["segment", "{photo}", "-p", "5,5", "--out", "{out}/m.png", "--overlay", "{out}"],
                                  ["is a folder"]),
    "segment/checkpoint-missing": (["segment", "{photo}", "-p", "5,5", "-c", "{missing}.pth", "--out", "{out}/m.png"],
                                   ["checkpoint not found"]),
    "segment/checkpoint-is-folder": (["segment", "{photo}", "-p", "5,5", "-c", "{folder}", "--out", "{out}/m.png"],
                                     ["is a folder"]),
    "segment/checkpoint-not-torch": (["segment", "{photo}", "-p", "5,5", "-c", "{garbage}", "--out", "{out}/m.png"],
                                     ["garbage.pth", "not a readable PyTorch checkpoint"]),
    "segment/checkpoint-pickled-code": (["segment", "{photo}", "-p", "5,5", "-c", "{evil}", "--out", "{out}/m.png"],
                                        ["refused to unpickle", "system", "--import-qtinysam"]),
    "segment/backend-without-artifacts": (["segment", "{photo}", "-p", "5,5", "-b", "onnx", "--out", "{out}/m.png"],
                                          ["needs --artifacts"]),
    "segment/other-targets-artifacts": (["segment", "{photo}", "-p", "5,5", "-b", "onnx", "-a", "{tflite}",
                                         "--out", "{out}/m.png"], ["holds tflite artifacts, not onnx"]),
    "segment/artifacts-empty-folder": (["segment", "{photo}", "-p", "5,5", "-b", "onnx", "-a", "{empty}",
                                        "--out", "{out}/m.png"], ["no manifest.json"]),
    "segment/artifacts-missing": (["segment", "{photo}", "-p", "5,5", "-b", "onnx", "-a", "{missing}",
                                   "--out", "{out}/m.png"], ["artifacts folder not found"]),
    "segment/manifest-other-version": (["segment", "{photo}", "-p", "5,5", "-b", "onnx", "-a", "{old}",
                                        "--out", "{out}/m.png"], ["format version 99", "reads 1"]),
    "segment/artifact-file-missing": (["segment", "{photo}", "-p", "5,5", "-b", "onnx", "-a", "{partial}",
                                       "--out", "{out}/m.png"], ["encoder.bin", "is missing"]),
    "segment/delegate-without-tflite": (["segment", "{photo}", "-p", "5,5", "--delegate", "npu-emulation",
                                         "--out", "{out}/m.png"], ["--delegate applies to --backend tflite only"]),
    # everything
    "everything/missing-image": (["everything", "{missing}.jpg", "--out", "{out}/m.json"], ["image not found"]),
    "everything/out-is-folder": (["everything", "{photo}", "--out", "{out}"], ["is a folder"]),
    "everything/overlay-under-file": (["everything", "{photo}", "--out", "{out}/m.json", "--overlay", "{file}/o.png"],
                                      ["cannot create output folder"]),
    "everything/unknown-mode": (["everything", "{photo}", "--out", "{out}/m.json", "--mode", "fast"],
                                ["unknown mode 'fast'"]),
    "everything/bad-grid": (["everything", "{photo}", "--out", "{out}/m.json", "--points-per-side", "0"],
                            ["points_per_side must be at least"]),
    "everything/bad-threshold": (["everything", "{photo}", "--out", "{out}/m.json", "--pred-iou-thresh", "2"],
                                 ["must lie in [0, 1]"]),
    "everything/ray-for-one-photo": (["everything", "{photo}", "--out", "{out}/m.json", "--ray", "auto"],
                                     ["--ray: only with a folder or list of images"]),
    "everything/folder-without-images": (["everything", "{empty}", "--out", "{out}/m.json"], ["no images"]),
    "everything/unknown-backend": (["everything", "{photo}", "--out", "{out}/m.json", "-b", "tpu"],
                                   ["unknown backend 'tpu'"]),
    # convert
    "convert/unknown-target": (["convert", "-t", "tensorrt", "--out", "{out}/a"], ["unknown target 'tensorrt'"]),
    "convert/unknown-precision": (["convert", "-t", "onnx", "--precision", "int4", "--out", "{out}/a"],
                                  ["unknown precision 'int4' for onnx"]),
    "convert/too-few-tokens": (["convert", "-t", "onnx", "--max-tokens", "2", "--out", "{out}/a"],
                               ["--max-tokens must be at least 3"]),
    "convert/scales-missing": (["convert", "-t", "tflite", "--precision", "w8a8", "--scales", "{missing}.safetensors",
                                "--out", "{out}/a"], ["--scales", "does not exist"]),
    "convert/calibration-images-missing": (["convert", "-t", "tflite", "--precision", "w8a8", "--calibration-images",
                                            "{missing}", "--out", "{out}/a"], ["--calibration-images", "does not exist"]),
    "convert/out-is-file": (["convert", "-t", "onnx", "--out", "{out}/keep.txt"], ["is an existing file"]),
    "convert/out-under-file": (["convert", "-t", "onnx", "--out", "{file}/a"], ["cannot create output folder"]),
    "convert/checkpoint-missing": (["convert", "-t", "onnx", "-c", "{missing}.pth", "--out", "{out}/a"],
                                   ["checkpoint not found"]),
    "convert/checkpoint-pickled-code": (["convert", "-t", "onnx", "-c", "{evil}", "--out", "{out}/a"],
                                        ["refused to unpickle"]),
    # golden
    "golden/out-is-file": (["golden", "--out", "{file}"], ["is an existing file"]),
    "golden/out-under-file": (["golden", "--out", "{file}/golden"], ["cannot create output folder"]),
    # validate
    "validate/artifacts-missing": (["validate", "{missing}"], ["artifacts folder not found"]),
    "validate/artifacts-is-file": (["validate", "{file}"], ["is a file"]),
    "validate/no-manifest": (["validate", "{empty}"], ["no manifest.json"]),
    "validate/manifest-other-version": (["validate", "{old}"], ["format version 99"]),
    "validate/manifest-not-json": (["validate", "{badjson}"], ["not valid JSON"]),
    "validate/manifest-field-missing": (["validate", "{nofield}"], ["'checkpoint_sha256' is missing"]),
    "validate/artifact-file-missing": (["validate", "{partial}"], ["encoder.bin", "is missing"]),
    "validate/artifact-modified": (["validate", "{modified}"], ["encoder.bin", "does not match its manifest hash"]),
    "validate/other-checkpoint": (["validate", "{tflite}"], ["was converted from checkpoint 0000"]),
    "validate/checkpoint-missing": (["validate", "{tflite}", "-c", "{missing}.pth"], ["checkpoint not found"]),
    "validate/json-is-folder": (["validate", "{tflite_seeded}", "--json", "{out}"], ["is a folder"]),
    "validate/delegate-not-tflite": (["validate", "{coreml_seeded}", "--delegate", "npu-emulation"],
                                     ["--delegate applies to --backend tflite only"]),
    "validate/images-missing": (["validate", "{tflite_seeded}", "--images", "{missing}"],
                                ["images folder", "not found"]),
    "validate/images-is-file": (["validate", "{tflite_seeded}", "--images", "{photo}"], ["is a file"]),
    "validate/ray-without-images": (["validate", "{tflite_seeded}", "--ray", "auto"], ["--ray: only with --images"]),
    # benchmark-dataset
    "benchmark-dataset/workers": (["benchmark-dataset", "{folder}", "--out", "{out}/b.json", "--workers", "1,x"],
                                  ["comma-separated pool sizes"]),
    "benchmark-dataset/out-is-folder": (["benchmark-dataset", "{folder}", "--out", "{out}"], ["is a folder"]),
    # inspect
    "inspect/missing": (["inspect", "{missing}.tflite"], ["does not exist"]),
    "inspect/wrong-kind": (["inspect", "{text}"], ["inspect reads .mlpackage and .tflite"]),
    "inspect/folder": (["inspect", "{folder}"], ["inspect reads .mlpackage and .tflite"]),
    "inspect/not-a-tflite-model": (["inspect", "{bad_tflite}"], ["not a readable .tflite model"]),
    "inspect/not-a-package": (["inspect", "{bad_package}"], ["not an .mlpackage"]),
    # install-artifacts
    "install/unknown-app": (["install-artifacts", "{tflite}", "--app", "web", "--app-dir", "{app}"],
                            ["unknown app 'web'"]),
    "install/other-target": (["install-artifacts", "{tflite}", "--app", "ios", "--app-dir", "{app}"],
                             ["'tflite' artifacts", "runs 'coreml'"]),
    "install/artifacts-missing": (["install-artifacts", "{missing}", "--app", "android", "--app-dir", "{app}"],
                                  ["artifacts folder not found"]),
    "install/manifest-other-version": (["install-artifacts", "{old}", "--app", "android", "--app-dir", "{app}"],
                                       ["format version 99"]),
    "install/artifact-file-missing": (["install-artifacts", "{partial}", "--app", "android", "--app-dir", "{app}"],
                                      ["is missing"]),
    "install/artifact-modified": (["install-artifacts", "{modified}", "--app", "android", "--app-dir", "{app}"],
                                  ["does not match its manifest hash"]),
    "install/app-dir-missing": (["install-artifacts", "{tflite}", "--app", "android", "--app-dir", "{missing}"],
                                ["is not a folder"]),
    "install/destination-is-file": (["install-artifacts", "{coreml_seeded}", "--app", "ios", "--app-dir",
                                     "{blocked_app}"], ["Artifacts is an existing file"]),
    # calibrate
    "calibrate/out-not-safetensors": (["calibrate", "--out", "{out}/s.json"], ["must end in .safetensors"]),
    "calibrate/out-is-folder": (["calibrate", "--out", "{scales_folder}"], ["is a folder"]),
    "calibrate/bits": (["calibrate", "--out", "{out}/s.safetensors", "--bits", "9"], ["--bits must be between 4 and 8"]),
    "calibrate/num-images": (["calibrate", "--out", "{out}/s.safetensors", "--num-images", "0"],
                             ["--num-images must be at least 1"]),
    "calibrate/method": (["calibrate", "--out", "{out}/s.safetensors", "--method", "gptq"], ["unknown --method 'gptq'"]),
    "calibrate/images-missing": (["calibrate", "--out", "{out}/s.safetensors", "--images", "{missing}"],
                                 ["is not a folder"]),
    "calibrate/img-size": (["calibrate", "--out", "{out}/s.safetensors", "--img-size", "100"], ["--img-size"]),
    "calibrate/checkpoint-pickled-code": (["calibrate", "--out", "{out}/s.safetensors", "-c", "{evil}"],
                                          ["refused to unpickle"]),
    "calibrate/import-missing": (["calibrate", "--out", "{out}/s.safetensors", "--import-qtinysam", "{missing}.pth"],
                                 ["checkpoint not found"]),
    "calibrate/import-not-a-zip": (["calibrate", "--out", "{out}/s.safetensors", "--import-qtinysam", "{garbage}"],
                                   ["not a torch.save zip archive"]),
    "calibrate/float-checkpoint-without-import": (["calibrate", "--out", "{out}/s.safetensors", "--float-checkpoint",
                                                   "{out}/f.safetensors"], ["applies to --import-qtinysam only"]),
    "calibrate/float-checkpoint-is-folder": (["calibrate", "--out", "{out}/s.safetensors", "--import-qtinysam",
                                              "{evil}", "--float-checkpoint", "{folder}"], ["is a folder"]),
    # quant-report
    "quant-report/artifacts-without-backend": (["quant-report", "--artifacts", "{tflite}"], ["needs --backend"]),
    "quant-report/backend-without-artifacts": (["quant-report", "--backend", "tflite"], ["needs --artifacts"]),
    "quant-report/unknown-backend": (["quant-report", "--backend", "tpu", "--artifacts", "{tflite}"],
                                     ["unknown backend 'tpu'"]),
    "quant-report/artifact-file-missing": (["quant-report", "--backend", "tflite", "--artifacts", "{partial}"],
                                           ["is missing"]),
    "quant-report/scales-missing": (["quant-report", "--scales", "{missing}.safetensors"], ["--scales", "not found"]),
    "quant-report/json-is-folder": (["quant-report", "--json", "{out}"], ["is a folder"]),
    "quant-report/num-images": (["quant-report", "--num-images", "0"], ["--num-images must be at least 1"]),
    "quant-report/img-size": (["quant-report", "--img-size", "100"], ["--img-size"]),
    # evaluate
    "evaluate/scenes": (["evaluate", "--scenes", "0"], ["--scenes must be at least 1"]),
    "evaluate/img-size": (["evaluate", "--img-size", "100"], ["--img-size"]),
    "evaluate/out-is-folder": (["evaluate", "--out", "{out}"], ["is a folder"]),
    "evaluate/sheet-under-file": (["evaluate", "--sheet", "{file}/sheet.png"], ["cannot create output folder"]),
    "evaluate/checkpoint-missing": (["evaluate", "-c", "{missing}.pth"], ["checkpoint not found"]),
    # benchmark
    "benchmark/runs": (["benchmark", "--runs", "0"], ["--runs must be at least 1"]),
    "benchmark/out-is-folder": (["benchmark", "--out", "{out}"], ["is a folder"]),
    "benchmark/checkpoint-missing": (["benchmark", "-c", "{missing}.pth"], ["checkpoint not found"]),
    # benchmark-everything
    "benchmark-everything/unknown-photo": (["benchmark-everything", "--out", "{out}/b.json", "--photos", "kitten"],
                                           ["unknown scikit-image photo(s): kitten"]),
    "benchmark-everything/nothing": (["benchmark-everything", "--out", "{out}/b.json", "--photos", "", "--scenes", "0"],
                                     ["nothing to benchmark"]),
    "benchmark-everything/out-is-folder": (["benchmark-everything", "--out", "{out}"], ["is a folder"]),
    "benchmark-everything/bad-threshold": (["benchmark-everything", "--out", "{out}/b.json",
                                            "--stability-score-thresh", "-1"], ["must lie in [0, 1]"]),
    "benchmark-everything/backend-without-artifacts": (["benchmark-everything", "--out", "{out}/b.json", "-b",
                                                        "tflite"], ["needs --artifacts"]),
    "benchmark-everything/points-per-batch": (["benchmark-everything", "--out", "{out}/b.json",
                                               "--points-per-batch", "0"], ["points_per_batch must be at least 1"]),
    # benchmark-runtimes
    "benchmark-runtimes/artifacts-missing": (["benchmark-runtimes", "{tflite}", "{missing}"],
                                             ["artifacts folder not found"]),
    "benchmark-runtimes/manifest-other-version": (["benchmark-runtimes", "{old}"], ["format version 99"]),
    "benchmark-runtimes/out-is-folder": (["benchmark-runtimes", "{tflite}", "--out", "{out}"], ["is a folder"]),
    # join-weights
    "join-weights/part-missing": (["join-weights", "{missing}.safetensors", "--out", "{out}/w.safetensors"],
                                  ["checkpoint not found"]),
    "join-weights/part-pickled-code": (["join-weights", "{evil}", "--out", "{out}/w.safetensors"],
                                       ["refused to unpickle"]),
    # train (options checked before any training)
    "train/sizes": (["train", "--sizes", "256,big", "--out", "{out}/run"], ["--sizes must be comma-separated"]),
    "train/device": (["train", "--device", "tpu", "--out", "{out}/run"], ["--device must be auto, cpu or cuda"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_error_line(case, places, tmp_path, monkeypatch, capsys):
    args, fragments = CASES[case]
    args = [arg.format(**places) for arg in args]
    before = snapshot(tmp_path)
    assert_refused(tmp_path, before, run_main(monkeypatch, capsys, *args), fragments)


def test_unwritable_output_folder(places, tmp_path, monkeypatch, capsys):
    """chmod 0o500 stops writes for a normal user. Root ignores it, so there the permission answer is
    simulated (os.access, which the check asks) and the same refusals are checked."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        probe = locked / "probe"
        try:
            probe.write_text("x")
        except PermissionError:
            pass
        else:  # privileged: chmod stops nothing here
            probe.unlink()
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == locked and mode & os.W_OK
                                else real_access(path, mode, **kw))
        before = snapshot(tmp_path)
        for args in (["segment", places["photo"], "-p", "5,5", "--out", locked / "m.png"],
                     ["everything", places["photo"], "--out", locked / "sub" / "m.json"],
                     ["convert", "-t", "onnx", "--out", locked / "artifacts"],
                     ["golden", "--out", locked / "golden"]):
            assert_refused(tmp_path, before, run_main(monkeypatch, capsys, *args), ["not writable"])
    finally:
        locked.chmod(0o700)


def test_join_weights_output_folder_is_refused_after_the_parts_check(places, small_model, tmp_path, monkeypatch,
                                                                       capsys):
    """The parts are valid, so the refusal comes from atomic_path's own check, as for any verb."""
    from safetensors.torch import save_file

    state = small_model.state_dict()
    encoder = {k: v.contiguous() for k, v in state.items() if k.startswith("image_encoder.")}
    decoder = {k: v.contiguous() for k, v in state.items() if not k.startswith("image_encoder.")}
    save_file(encoder, str(tmp_path / "enc.safetensors"))
    save_file(decoder, str(tmp_path / "dec.safetensors"))
    before = snapshot(tmp_path)
    result = run_main(monkeypatch, capsys, "join-weights", tmp_path / "enc.safetensors", tmp_path / "dec.safetensors",
                      "--out", places["out"])
    assert_refused(tmp_path, before, result, ["is a folder"])


def test_atomic_writers_refuse_the_wrong_kind_up_front(tmp_path):
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(TinySamError, match="is a folder"):
        with atomic_path(tmp_path / "a_folder"):
            pytest.fail("must not be reached")
    with pytest.raises(TinySamError, match="is an existing file"):
        with atomic_directory(tmp_path / "a_file"):
            pytest.fail("must not be reached")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder"]
    assert (tmp_path / "a_file").read_text() == "x"


def test_atomic_writers_give_finished_outputs_the_users_default_mode(tmp_path):
    """Not the private 0600 / 0700 of the temporary names: 0666 / 0777 less the umask (here 022)."""
    previous = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "result.json") as tmp:
            tmp.write_text("{}")
        with atomic_directory(tmp_path / "artifacts") as folder:
            (folder / "model.tflite").write_bytes(b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "artifacts").stat().st_mode & 0o777 == 0o755


def test_atomic_path_turns_a_late_folder_into_an_error(tmp_path):
    """A folder that appears at the target while writing: an error, and the temporary file is gone."""
    target = tmp_path / "result.json"
    with pytest.raises(TinySamError, match="cannot write"):
        with atomic_path(target) as tmp:
            tmp.write_text("{}")
            target.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"] and target.is_dir()


def test_console_script_refuses_a_folder_as_segment_output(places):
    """The reported case end to end through the installed entry point: no traceback, exit 2."""
    script = Path(sys.executable).with_name("tinysam-mobile")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tinysam_mobile"]
    result = subprocess.run([*command, "segment", str(places["photo"]), "--point", "5,5", "--out",
                             f"{places['folder']}/"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "is a folder" in result.stderr
    assert list(places["folder"].iterdir()) == []
