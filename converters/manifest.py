"""The manifest written beside every set of converted artifacts, and its verification.

One format for every target (LiteRT, CoreML, ONNX), read by `validate`, the runners and both apps:
format version, source checkpoint hash, target, precision, each artifact's file name, SHA-256,
size and tensor specs, the preprocessing constants and the prompt/label conventions.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from ..utils.transforms import MASK_THRESHOLD, PIXEL_MEAN, PIXEL_STD

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def path_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a directory (e.g. an .mlpackage): every file's relative path and bytes."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def path_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def preprocessing_spec(img_size: int) -> dict[str, Any]:
    return {
        "input_size": img_size,
        "resize": "longest side to input_size, new = int(old * input_size / max(h, w) + 0.5), bilinear",
        "pixel_mean": [float(v) for v in PIXEL_MEAN],
        "pixel_std": [float(v) for v in PIXEL_STD],
        "normalize": "(rgb_0_255 - mean) / std, then zero-pad bottom/right to input_size x input_size",
        "low_res_mask_size": img_size // 4,
        "mask_threshold": MASK_THRESHOLD,
        "postprocess": "bilinear (half-pixel) low-res -> input_size, crop to resized size, bilinear to original",
    }


PROMPT_SPEC = {
    "coordinates": "(x, y) pixels of the resized (unpadded) image: original * (new / old) per axis",
    "labels": {"-1": "padding", "0": "negative point", "1": "positive point", "2": "box top-left",
               "3": "box bottom-right"},
    "padding": "points first, then box corners; without a box one (0, 0) point with label -1 is appended; "
               "then (0, 0) / -1 up to the decoder's point count",
    "outputs": "3 masks and 3 IoU predictions (TinySAM mask tokens 1..3); best mask = highest predicted IoU",
}


def artifact_record(root: Path, relative: str, role: str, **fields: Any) -> dict[str, Any]:
    """Describe one artifact (file or package directory) under root, with its hash and size."""
    path = root / relative
    if not path.exists():
        raise ArtifactError(f"converter did not produce {relative}")
    return {"file": relative, "role": role, "sha256": path_sha256(path), "size_bytes": path_size(path), **fields}


def write_manifest(root: Path, *, target: str, precision: str, checkpoint_sha256: str, img_size: int,
                   artifacts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    from .. import __version__

    manifest = {
        "format_version": FORMAT_VERSION,
        "generator": f"tinysam-mobile {__version__}",
        "target": target,
        "precision": precision,
        "checkpoint_sha256": checkpoint_sha256,
        "preprocessing": preprocessing_spec(img_size),
        "prompts": PROMPT_SPEC,
        "artifacts": artifacts,
        **extra,
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_manifest(root: "str | Path", verify: bool = True) -> dict[str, Any]:
    """Read root/manifest.json; with verify, refuse any artifact whose size or SHA-256 differs."""
    root = Path(root)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{root}: no {MANIFEST_NAME}; is this a folder written by 'tinysam-mobile convert'?")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format version {manifest.get('format_version')!r}, this tool reads {FORMAT_VERSION}")
    if verify:
        for record in manifest.get("artifacts", []):
            artifact = root / record["file"]
            if not artifact.exists():
                raise ArtifactError(f"{root}: artifact {record['file']} listed in the manifest is missing")
            if path_size(artifact) != record["size_bytes"] or path_sha256(artifact) != record["sha256"]:
                raise ArtifactError(f"{root}: {record['file']} does not match its manifest hash (modified or corrupt)")
    return manifest
