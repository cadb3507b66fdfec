"""`tinysam-mobile install-artifacts`: put converted artifacts where a sample app loads them from."""

import shutil
from pathlib import Path

import typer

from ..errors import ArtifactError
from . import app

# Where each app looks (relative to the app's folder) and which converter target it runs.
APP_ARTIFACT_DIRS = {
    "android": ("tflite", Path("app/src/main/assets/tinysam")),
    "ios": ("coreml", Path("TinySAMApp/Artifacts")),
}
DEFAULT_APPS_ROOT = Path(__file__).resolve().parents[2] / "sample_apps"


def install(artifacts: Path, app_name: str, app_dir: Path) -> Path:
    """Verify artifacts/manifest.json (format, hashes, target) and copy it and every listed artifact into
    the app's artifact folder, replacing what was there whole. Returns that folder."""
    from ..converters.manifest import MANIFEST_NAME, load_manifest
    from ..utils.files import atomic_directory

    if app_name not in APP_ARTIFACT_DIRS:
        raise ArtifactError(f"unknown app {app_name!r}; choose one of {', '.join(APP_ARTIFACT_DIRS)}")
    target, relative = APP_ARTIFACT_DIRS[app_name]
    manifest = load_manifest(artifacts, verify=True)
    if manifest.get("target") != target:
        raise ArtifactError(f"{artifacts} holds {manifest.get('target')!r} artifacts; the {app_name} app runs "
                            f"{target!r} (convert with --target {target})")
    if not app_dir.is_dir():
        raise ArtifactError(f"{app_dir} is not a folder; pass the sample app folder (sample_apps/{app_name})")
    destination = app_dir / relative
    with atomic_directory(destination) as work_dir:
        for record in manifest["artifacts"]:
            source = artifacts / record["file"]
            (work_dir / record["file"]).parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, work_dir / record["file"])
        shutil.copy2(artifacts / MANIFEST_NAME, work_dir / MANIFEST_NAME)
    return destination


@app.command("install-artifacts")
def install_artifacts(
    artifacts: Path = typer.Argument(..., help="Folder written by 'tinysam-mobile convert'.", show_default=False),
    app_name: str = typer.Option(..., "--app", help="android (needs --target tflite artifacts) or ios "
                                 "(needs --target coreml).", show_default=False),
    app_dir: Path = typer.Option(None, "--app-dir", help="The sample app's folder. Default: sample_apps/<app> "
                                 "of this checkout.", show_default=False),
) -> None:
    """Copy converted artifacts and their manifest into a sample app, checking hashes first.

    The Android app loads app/src/main/assets/tinysam/, the iOS app TinySAMApp/Artifacts/; both check
    the manifest's format version and hashes again at start-up.
    Example: tinysam-mobile install-artifacts out/tflite --app android
    """
    destination = install(artifacts, app_name, app_dir or DEFAULT_APPS_ROOT / app_name)
    typer.echo(f"installed {artifacts} -> {destination}")
