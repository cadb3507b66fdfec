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
    "tokens": "points first, then the two box corners; without a box one (0, 0) point with label -1 is "
              "appended; nothing else: the decoder takes exactly that many tokens (prompt_tokens gives the counts)",
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


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_manifest_fields(manifest: Any, path: Path) -> None:
    """Refuse a manifest whose fields the runners, validate and the apps read are absent or of the wrong kind."""
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: expected a JSON object, found {type(manifest).__name__}")
    version = manifest.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # not true, not 1.0: what the apps read
        raise ArtifactError(f"{path}: format version {manifest.get('format_version')!r}, this tool reads {FORMAT_VERSION}")
    for key in ("target", "precision", "checkpoint_sha256"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            raise ArtifactError(f"{path}: field {key!r} is missing or not a string")
    preprocessing = manifest.get("preprocessing")
    if not isinstance(preprocessing, dict) or not _is_count(preprocessing.get("input_size")) \
            or preprocessing["input_size"] == 0:
        raise ArtifactError(f"{path}: field 'preprocessing.input_size' is missing or not a positive integer")
    if manifest.get("everything_batch") is not None and (not _is_count(manifest["everything_batch"])
                                                         or manifest["everything_batch"] == 0):
        raise ArtifactError(f"{path}: field 'everything_batch' is not a positive integer")
    tokens = manifest.get("prompt_tokens")
    if tokens is not None and not (isinstance(tokens, dict) and _is_count(tokens.get("min"))
                                   and _is_count(tokens.get("max")) and 1 <= tokens["min"] <= tokens["max"]):
        raise ArtifactError(f"{path}: field 'prompt_tokens' is not {{\"min\": m, \"max\": n}} with 1 <= m <= n")
    artifacts = manifest.get("artifacts")
    if not isinstance(artifacts, list) or not artifacts:
        raise ArtifactError(f"{path}: field 'artifacts' is missing or not a non-empty list")
    for i, record in enumerate(artifacts):
        if not isinstance(record, dict):
            raise ArtifactError(f"{path}: artifacts[{i}] is not an object")
        for key in ("file", "role", "sha256"):
            if not isinstance(record.get(key), str) or not record[key]:
                raise ArtifactError(f"{path}: artifacts[{i}].{key} is missing or not a string")
        if not _is_count(record.get("size_bytes")):
            raise ArtifactError(f"{path}: artifacts[{i}].size_bytes is missing or not a non-negative integer")
        relative = Path(record["file"])
        if relative.is_absolute() or ".." in relative.parts or "\0" in record["file"]:
            raise ArtifactError(f"{path}: artifacts[{i}].file {record['file']!r} is not a path inside the folder")
    roles = [record["role"] for record in artifacts]
    repeated = sorted({role for role in roles if roles.count(role) > 1})
    if repeated:
        raise ArtifactError(f"{path}: role {repeated[0]!r} is listed twice in 'artifacts'")
    missing = [role for role in ("encoder", "decoder") if role not in roles]
    if missing:
        raise ArtifactError(f"{path}: no {' or '.join(missing)} in 'artifacts'")


def load_manifest(root: "str | Path", verify: bool = True) -> dict[str, Any]:
    """Read root/manifest.json; with verify, refuse any artifact whose size or SHA-256 differs."""
    root = Path(root)
    path = root / MANIFEST_NAME
    if not root.exists():
        raise ArtifactError(f"artifacts folder not found: {root}")
    if not root.is_dir():
        raise ArtifactError(f"{root} is a file; pass the folder written by 'tinysam-mobile convert'")
    if not path.is_file():
        raise ArtifactError(f"{root}: no {MANIFEST_NAME}; is this a folder written by 'tinysam-mobile convert'?")
    try:
        manifest = json.loads(path.read_bytes())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ArtifactError(f"{path}: not valid JSON (nested too deeply)") from None
    check_manifest_fields(manifest, path)
    if verify:
        for record in manifest["artifacts"]:
            artifact = root / record["file"]
            try:
                if not artifact.exists():
                    raise ArtifactError(f"{root}: artifact {record['file']} listed in the manifest is missing")
                if path_size(artifact) != record["size_bytes"] or path_sha256(artifact) != record["sha256"]:
                    raise ArtifactError(f"{root}: {record['file']} does not match its manifest hash "
                                        "(modified or corrupt)")
            except OSError as exc:  # e.g. a name too long for the file system, or no permission to read
                raise ArtifactError(f"{root}: cannot read artifact {record['file']!r}: {exc.strerror}") from None
    return manifest


def prompt_tokens(counts: range) -> dict[str, int]:
    """The manifest's prompt_tokens: the decoder takes every token count from min to max, exactly."""
    return {"min": counts.start, "max": counts.stop - 1}


def token_bounds(manifest: dict[str, Any], root: "str | Path") -> tuple[int, int]:
    """(min, max) of the manifest's prompt_tokens, for runners of fixed-shape decoders; a manifest without
    them holds a padded decoder of an older version."""
    tokens = manifest.get("prompt_tokens")
    if tokens is None:
        raise ArtifactError(f"{root}: the manifest has no prompt_tokens (a padded decoder of an older version); "
                            "convert again")
    return tokens["min"], tokens["max"]
