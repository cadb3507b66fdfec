"""One report row: its artifacts (converted once per checkpoint and kept), then parity against FP32
PyTorch through TinySamPredictor, artifact sizes, CPU latency, and the masks of the overlay sheet."""

import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..checkpoint import file_sha256
from ..converters.config import ConvertConfig
from ..converters.manifest import MANIFEST_NAME
from ..utils.files import atomic_directory, atomic_path
from .rows import Row

CPU_RUNTIMES = ("tflite", "onnx")  # CoreML runs through the MIL interpreter here: no latency worth quoting
SHEET_PHOTO = "chelsea"
# The overlay sheet's prompts on chelsea (451 x 300), placed by looking: a click on the cat's head, two clicks
# on it and one on the background, a box around the cat.
SHEET_PROMPTS = (
    ("1 click", np.array([[230.0, 140.0]], np.float32), np.array([1.0], np.float32), None),
    ("2 clicks + 1 negative", np.array([[230.0, 140.0], [150.0, 220.0], [420.0, 40.0]], np.float32),
     np.array([1.0, 1.0, 0.0], np.float32), None),
    ("box", None, None, np.array([70.0, 20.0, 400.0, 300.0], np.float32)),
)


@dataclass(frozen=True)
class ReportConfig:  # the `report` verb's options
    images: int             # held-out photos and generated scenes
    prompts_per_image: int
    latency_runs: int
    threads: int
    seed: int = 0


def artifact_source(checkpoint_sha256: str, scales: Optional[Path]) -> dict:
    """What a row's artifacts come from: the checkpoint and, for the TinySAM PTQ rows, the scales file."""
    return {"checkpoint_sha256": checkpoint_sha256, "scales_sha256": file_sha256(scales) if scales else None}


def converted(row: Row, model, checkpoint_sha256: str, cache: Path, scales: Optional[Path], source: dict) -> Path:
    """cache/<row folder>: the row's artifacts, converted unless already there from the same source
    (artifact_source); the record of what they came from lies beside them."""
    folder, record = cache / row.folder, cache / f"{row.folder}.source.json"
    if (folder / MANIFEST_NAME).is_file() and record.is_file() and json.loads(record.read_text()) == source:
        return folder
    backend = importlib.import_module(f"tinysam_mobile.converters.{row.target}")
    config = ConvertConfig(target=row.target, precision=row.precision, scales=scales if row.ptq_scales else None,
                           palette=row.palette)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_directory(folder) as work:
        backend.convert(model, config, work, checkpoint_sha256)
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(source) + "\n")
    return folder


def sheet_masks(runner) -> list[np.ndarray]:
    """The mask an app shows (highest predicted IoU) for each SHEET_PROMPTS entry on the sheet photo."""
    from ..calibration.dataset import scikit_image_photo
    from ..predictor import TinySamPredictor

    predictor = TinySamPredictor(runner)
    predictor.set_image(scikit_image_photo(SHEET_PHOTO))
    return [predictor.predict(points, labels, box, multimask_output=False)[0][0]
            for _, points, labels, box in SHEET_PROMPTS]


def measure_row(runner, reference, images, config: ReportConfig, folder: Optional[Path] = None) -> dict:
    """Parity against the FP32 reference runner (both through TinySamPredictor), sizes of the artifacts
    in folder, latency where the runtime runs on this CPU, and the sheet's masks (packed bits)."""
    from ..benchmarks.runtimes import artifact_sizes, time_runner
    from ..validation import ParityConfig, measure_parity

    figures = {}
    if reference is not None:
        figures = measure_parity(runner, reference, images, ParityConfig(config.prompts_per_image, config.seed))
    if folder is not None:
        figures["size_bytes"] = artifact_sizes(folder)
    if runner.name in CPU_RUNTIMES or runner.name == "torch":
        figures["latency"] = time_runner(runner, config.latency_runs, batch=16)
    masks = sheet_masks(runner)
    figures["sheet_masks"] = {"shape": list(masks[0].shape),
                              "bits": [np.packbits(m.ravel()).tobytes().hex() for m in masks]}
    return {**figures, "config": asdict(config)}


def unpack_masks(record: dict) -> list[np.ndarray]:
    shape = record["sheet_masks"]["shape"]
    return [np.unpackbits(np.frombuffer(bytes.fromhex(bits), np.uint8))[:shape[0] * shape[1]].reshape(shape).astype(bool)
            for bits in record["sheet_masks"]["bits"]]
