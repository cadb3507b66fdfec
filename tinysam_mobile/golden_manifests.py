"""CoreML manifests for the iOS glue's manifest check (TinySAMKit ArtifactManifest), written by the
converter's own manifest writer over stand-in packages, and which of them the pipeline accepts.

Written into <golden>/manifests/: one manifest_<name>.json per case and index.txt with one line per case,
"<accepted|refused> <file> <precision> <input size> <max prompt tokens> <everything_batch> <points per batch prompt>".
Precision, token count and batch are judged by the CoreML converter's checks, the target and the format
version by the CoreML runner's rules, the decoder shapes by the manifest's own prompt_tokens and
everything_batch (a package converted with other settings does not match them): the decoder's
point_coords must enumerate exactly the shapes (1, T, 2) for T from prompt_tokens.min to .max.
"""

import copy
import json
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .converters.config import EVERYTHING_POINTS, ConvertConfig
from .converters.coreml import PAD_COLOR_RGB, PRECISIONS, check_config
from .converters.manifest import FORMAT_VERSION, artifact_record, prompt_tokens, write_manifest
from .errors import TinySamError
from .utils.prompts import token_range

MANIFEST_DIR = "manifests"
ROLE_FILES = {"encoder": "encoder.mlpackage", "decoder": "decoder.mlpackage", "decoder_batch": "decoder_batch.mlpackage"}


def _specs(role: str, img_size: int, max_tokens: int, batch: int) -> dict[str, Any]:
    """The inputs the app reads of each package, as tensor_specs records them."""
    def tensor(name: str, shape: list[int], tokens: Optional[range] = None) -> dict[str, Any]:
        enumerated = {} if tokens is None else {"enumerated_shapes": [[*shape[:1], t, *shape[2:]] for t in tokens]}
        return {"name": name, "kind": "tensor", "shape": shape, "dtype": "float32", **enumerated}

    counts = token_range(max_tokens)
    inputs = {
        "encoder": [{"name": "image", "kind": "image", "color_space": "RGB", "shape": [1, 3, img_size, img_size]}],
        "decoder": [tensor("point_coords", [1, max_tokens, 2], counts), tensor("point_labels", [1, max_tokens], counts)],
        "decoder_batch": [tensor("point_coords", [batch, EVERYTHING_POINTS, 2]),
                          tensor("point_labels", [batch, EVERYTHING_POINTS])],
    }[role]
    return {"inputs": inputs, "outputs": []}


def coreml_manifest(root: Path, precision: str, img_size: int, max_tokens: int, batch: int) -> dict[str, Any]:
    """manifest.json as `convert --target coreml` writes it, over stand-in package folders in root."""
    records = []
    for role, file in ROLE_FILES.items():
        (root / file).mkdir(exist_ok=True)
        (root / file / "Manifest.json").write_text(f'{{"role": "{role}"}}\n')
        records.append(artifact_record(root, file, role, **_specs(role, img_size, max_tokens, batch)))
    return write_manifest(root, target="coreml", precision=precision, checkpoint_sha256="golden", img_size=img_size,
                          artifacts=records, prompt_tokens=prompt_tokens(token_range(max_tokens)),
                          everything_batch=batch,
                          coreml={"image_input": {"color_layout": "RGB", "range": "0-255", "pad_color_rgb": PAD_COLOR_RGB}})


def _accepted_by_converter(precision: str, max_tokens: int, batch: int) -> bool:
    try:
        check_config(ConvertConfig(target="coreml", precision=precision, max_tokens=max_tokens, everything_batch=batch))
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
    ("decoder_tokens_differ", _set(["artifacts", 1, "inputs", 0, "enumerated_shapes"], [[1, t, 2] for t in range(1, 7)])),
    ("decoder_fixed_shape", _set(["artifacts", 1, "inputs", 0, "enumerated_shapes"], None)),  # a padded decoder
    ("tokens_from_two", _set(["prompt_tokens", "min"], 2)),
    ("batch_differs", _set(["artifacts", 2, "inputs", 0, "shape"], [32, EVERYTHING_POINTS, 2])),
]


def manifest_cases() -> Iterator[tuple[str, str, int, int, int, Optional[Edit], bool]]:
    """(name, precision, input size, max prompt tokens, everything_batch, edit of the written manifest, accepted)."""
    for precision in PRECISIONS:
        yield precision, precision, 1024, 10, 64, None, True
    for name, precision, img_size, max_tokens, batch in [("smallest_settings", "fp16", 256, 3, 1),
                                                         ("unknown_precision", "int4", 1024, 10, 64),
                                                         ("two_tokens", "fp16", 1024, 2, 64),
                                                         ("empty_batch", "fp16", 1024, 10, 0)]:
        yield name, precision, img_size, max_tokens, batch, None, _accepted_by_converter(precision, max_tokens, batch)
    for name, edit in EDITS:
        yield name, "fp16", 1024, 10, 64, edit, False


def write_manifest_cases(golden_dir: Path) -> int:
    out = golden_dir / MANIFEST_DIR
    out.mkdir()
    lines = []
    for name, precision, img_size, max_tokens, batch, edit, accepted in manifest_cases():
        manifest = copy.deepcopy(coreml_manifest(out, precision, img_size, max_tokens, batch))
        if edit is not None:
            edit(manifest)
        file = f"manifest_{name}.json"
        (out / file).write_text(json.dumps(manifest, indent=2) + "\n")
        verdict = "accepted" if accepted else "refused"
        lines.append(f"{verdict} {file} {precision} {img_size} {max_tokens} {batch} {EVERYTHING_POINTS}\n")
    (out / "index.txt").write_text("".join(lines))
    return len(lines)
