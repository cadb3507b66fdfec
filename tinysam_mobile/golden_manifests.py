"""CoreML manifests for the iOS glue's manifest check (TinySAMKit ArtifactManifest), written by the
converter's own manifest writer over stand-in packages, and which of them the pipeline accepts.

Written into <golden>/manifests/: one manifest_<name>.json per case and index.txt with one line per case,
"<accepted|refused> <file> <precision> <input size> <num_points> <everything_batch> <points per batch prompt>".
Precision, point count and batch are judged by the CoreML converter's check_config, the target and the
format version by the CoreML runner's rules, the decoder shapes by the manifest's own num_points and
everything_batch (a package converted with other settings does not match them).
"""

import copy
import json
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .converters.config import EVERYTHING_POINTS, ConvertConfig
from .converters.coreml import PAD_COLOR_RGB, PRECISIONS, check_config
from .converters.manifest import FORMAT_VERSION, artifact_record, write_manifest
from .errors import TinySamError

MANIFEST_DIR = "manifests"
ROLE_FILES = {"encoder": "encoder.mlpackage", "decoder": "decoder.mlpackage", "decoder_batch": "decoder_batch.mlpackage"}


def _specs(role: str, img_size: int, num_points: int, batch: int) -> dict[str, Any]:
    """The inputs the app reads of each package, as tensor_specs records them."""
    def tensor(name: str, shape: list[int]) -> dict[str, Any]:
        return {"name": name, "kind": "tensor", "shape": shape, "dtype": "float32"}

    inputs = {
        "encoder": [{"name": "image", "kind": "image", "color_space": "RGB", "shape": [1, 3, img_size, img_size]}],
        "decoder": [tensor("point_coords", [1, num_points, 2]), tensor("point_labels", [1, num_points])],
        "decoder_batch": [tensor("point_coords", [batch, EVERYTHING_POINTS, 2]),
                          tensor("point_labels", [batch, EVERYTHING_POINTS])],
    }[role]
    return {"inputs": inputs, "outputs": []}


def coreml_manifest(root: Path, precision: str, img_size: int, num_points: int, batch: int) -> dict[str, Any]:
    """manifest.json as `convert --target coreml` writes it, over stand-in package folders in root."""
    records = []
    for role, file in ROLE_FILES.items():
        (root / file).mkdir(exist_ok=True)
        (root / file / "Manifest.json").write_text(f'{{"role": "{role}"}}\n')
        records.append(artifact_record(root, file, role, **_specs(role, img_size, num_points, batch)))
    return write_manifest(root, target="coreml", precision=precision, checkpoint_sha256="golden", img_size=img_size,
                          artifacts=records, num_points=num_points, everything_batch=batch,
                          coreml={"image_input": {"color_layout": "RGB", "range": "0-255", "pad_color_rgb": PAD_COLOR_RGB}})


def _accepted_by_converter(precision: str, num_points: int, batch: int) -> bool:
    try:
        check_config(ConvertConfig(target="coreml", precision=precision, num_points=num_points, everything_batch=batch))
    except TinySamError:
        return False
    return True


Edit = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Edit:
    def edit(manifest: dict[str, Any]) -> None:
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _drop_role(role: str) -> Edit:
    return lambda manifest: manifest.__setitem__(
        "artifacts", [record for record in manifest["artifacts"] if record["role"] != role])


# Edits of a valid fp16 manifest that the app must refuse.
EDITS: list[tuple[str, Edit]] = [
    ("target_tflite", _set(["target"], "tflite")),                      # the CoreML runner refuses other targets
    ("format_version_2", _set(["format_version"], FORMAT_VERSION + 1)),  # load_manifest refuses other versions
    ("no_batch_decoder", _drop_role("decoder_batch")),
    ("decoder_points_differ", _set(["artifacts", 1, "inputs", 0, "shape"], [1, 6, 2])),
    ("batch_differs", _set(["artifacts", 2, "inputs", 0, "shape"], [32, EVERYTHING_POINTS, 2])),
]


def manifest_cases() -> Iterator[tuple[str, str, int, int, int, Optional[Edit], bool]]:
    """(name, precision, input size, num_points, everything_batch, edit of the written manifest, accepted)."""
    for precision in PRECISIONS:
        yield precision, precision, 1024, 8, 64, None, True
    for name, precision, img_size, num_points, batch in [("smallest_settings", "fp16", 256, 3, 1),
                                                         ("unknown_precision", "int4", 1024, 8, 64),
                                                         ("two_points", "fp16", 1024, 2, 64),
                                                         ("empty_batch", "fp16", 1024, 8, 0)]:
        yield name, precision, img_size, num_points, batch, None, _accepted_by_converter(precision, num_points, batch)
    for name, edit in EDITS:
        yield name, "fp16", 1024, 8, 64, edit, False


def write_manifest_cases(golden_dir: Path) -> int:
    out = golden_dir / MANIFEST_DIR
    out.mkdir()
    lines = []
    for name, precision, img_size, num_points, batch, edit, accepted in manifest_cases():
        manifest = copy.deepcopy(coreml_manifest(out, precision, img_size, num_points, batch))
        if edit is not None:
            edit(manifest)
        file = f"manifest_{name}.json"
        (out / file).write_text(json.dumps(manifest, indent=2) + "\n")
        verdict = "accepted" if accepted else "refused"
        lines.append(f"{verdict} {file} {precision} {img_size} {num_points} {batch} {EVERYTHING_POINTS}\n")
    (out / "index.txt").write_text("".join(lines))
    return len(lines)
