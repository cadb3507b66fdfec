"""`tinysam-mobile install-artifacts`: artifacts land where each app loads them, checked first."""

import json

import pytest
from typer.testing import CliRunner

from tinysam_mobile.cli import app
from tinysam_mobile.cli.install_artifacts import install
from tinysam_mobile.converters.manifest import artifact_record, load_manifest, write_manifest
from tinysam_mobile.errors import ArtifactError


def _fake_conversion(root, target):
    """A converter's output: a file artifact and a package-style folder, with a real manifest."""
    root.mkdir()
    (root / "encoder.bin").write_bytes(b"encoder weights")
    (root / "decoder.pkg" / "Data").mkdir(parents=True)
    (root / "decoder.pkg" / "Data" / "weight.bin").write_bytes(b"decoder weights")
    records = [artifact_record(root, "encoder.bin", "encoder"), artifact_record(root, "decoder.pkg", "decoder")]
    write_manifest(root, target=target, precision="fp32", checkpoint_sha256="0" * 64, img_size=1024, artifacts=records)
    return root


@pytest.mark.parametrize("app_name,target,relative", [("android", "tflite", "app/src/main/assets/tinysam"),
                                                      ("ios", "coreml", "TinySAMApp/Artifacts")])
def test_installs_where_the_app_loads(tmp_path, app_name, target, relative):
    artifacts = _fake_conversion(tmp_path / "out", target)
    app_dir = tmp_path / app_name
    app_dir.mkdir()
    (app_dir / relative).mkdir(parents=True)
    (app_dir / relative / "stale.tflite").write_bytes(b"old")
    destination = install(artifacts, app_name, app_dir)
    assert destination == app_dir / relative
    assert sorted(p.name for p in destination.iterdir()) == ["decoder.pkg", "encoder.bin", "manifest.json"]
    assert load_manifest(destination, verify=True)["target"] == target  # hashes still match after the copy


def test_refuses_corrupt_or_foreign_artifacts(tmp_path):
    artifacts = _fake_conversion(tmp_path / "out", "coreml")
    (tmp_path / "android").mkdir()
    with pytest.raises(ArtifactError, match="'coreml' artifacts"):
        install(artifacts, "android", tmp_path / "android")
    (artifacts / "encoder.bin").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="does not match its manifest hash"):
        install(artifacts, "ios", tmp_path / "android")
    assert not (tmp_path / "android" / "TinySAMApp").exists()


def test_cli_reports_bad_input_on_one_line(tmp_path):
    artifacts = _fake_conversion(tmp_path / "out", "tflite")
    manifest = json.loads((artifacts / "manifest.json").read_text())
    manifest["format_version"] = 99
    (artifacts / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(app, ["install-artifacts", str(artifacts), "--app", "android",
                                      "--app-dir", str(tmp_path)])
    assert result.exit_code != 0 and isinstance(result.exception, ArtifactError)
    assert "format version 99" in str(result.exception)
