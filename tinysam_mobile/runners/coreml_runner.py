"""CoreML runner: the packages of `convert --target coreml`, through MLModel.predict on macOS and the
MIL interpreter (tinysam_mobile.mil) elsewhere, since Apple ships no CoreML runtime for Linux."""

import platform
from pathlib import Path
from typing import Optional

import numpy as np

from ..converters.manifest import load_manifest, token_bounds
from ..errors import ArtifactError, TinySamError
from ..utils.transforms import normalized_to_pixels
from .batching import check_token_count

COMPUTE_UNITS = ("all", "cpu_only", "cpu_and_gpu", "cpu_and_ne")


class _MacPackage:
    """MLModel.predict; image inputs go in as 8-bit RGB pictures, as a CVPixelBuffer would."""

    def __init__(self, path: Path, compute_units: str) -> None:
        import coremltools as ct

        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit[compute_units.upper()])

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from PIL import Image

        if "image" in inputs:
            pixels = np.clip(np.round(inputs["image"][0]), 0, 255).astype(np.uint8).transpose(1, 2, 0)
            inputs = {**inputs, "image": Image.fromarray(pixels)}
        return {k: np.asarray(v, np.float32) for k, v in self.model.predict(inputs).items()}


class _InterpretedPackage:
    """The ML Program run op by op in numpy by tinysam_mobile.mil (Linux, or anywhere for checks)."""

    def __init__(self, path: Path) -> None:
        try:
            from ..mil import MilProgram
        except ImportError:
            raise TinySamError(
                "CoreML packages cannot execute on Linux: Apple ships no CoreML runtime for it, and this "
                "build has no MIL interpreter (tinysam_mobile.mil). Use a Mac, or the torch/tflite/onnx backends"
            ) from None
        self.program = MilProgram(path)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, np.float32) for k, v in self.program.predict(inputs).items()}


def open_package(path: Path, compute_units: str = "all", interpreter: Optional[bool] = None):
    """The package behind a predict(dict) -> dict interface; interpreter defaults to 'not on macOS'."""
    if compute_units not in COMPUTE_UNITS:
        raise TinySamError(f"unknown compute units {compute_units!r}; choose one of {', '.join(COMPUTE_UNITS)}")
    if interpreter is None:
        interpreter = platform.system() != "Darwin"
    return _InterpretedPackage(path) if interpreter else _MacPackage(path, compute_units)


class CoreMLRunner:
    name = "coreml"

    def __init__(self, artifacts: "str | Path", compute_units: str = "all", interpreter: Optional[bool] = None):
        artifacts = Path(artifacts)
        manifest = load_manifest(artifacts)
        if manifest["target"] != "coreml":
            raise ArtifactError(f"{artifacts} holds {manifest['target']} artifacts, not coreml")
        self.img_size = manifest["preprocessing"]["input_size"]
        self.min_tokens, self.max_tokens = token_bounds(manifest, artifacts)
        self.batch_size = manifest["everything_batch"]
        self.packages = {record["role"]: open_package(artifacts / record["file"], compute_units, interpreter)
                         for record in manifest["artifacts"]}

    def encode(self, image: np.ndarray) -> np.ndarray:
        pixels = normalized_to_pixels(image, channels_last=False)
        return self.packages["encoder"].predict({"image": pixels})["image_embeddings"]

    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        point_coords = np.asarray(point_coords, np.float32)
        point_labels = np.asarray(point_labels, np.float32)
        if point_coords.shape[0] > 1 and point_coords.shape[1] == 2 and not np.any(has_mask_input):
            return self._decode_batched(embedding, point_coords, point_labels)
        check_token_count(point_labels.shape[1], self.min_tokens, self.max_tokens)
        logits, iou = [], []
        for b in range(point_coords.shape[0]):
            out = self.packages["decoder"].predict({
                "image_embeddings": embedding, "point_coords": point_coords[b:b + 1], "point_labels": point_labels[b:b + 1],
                "mask_input": np.asarray(mask_input[b:b + 1], np.float32),
                "has_mask_input": np.asarray(has_mask_input[b:b + 1], np.float32)})
            logits.append(out["low_res_masks"])
            iou.append(out["iou_predictions"])
        return np.concatenate(logits), np.concatenate(iou)

    def _decode_batched(self, embedding, point_coords, point_labels):
        """Two-point prompts without a mask (everything mode): batch_size at a time, the last chunk padded."""
        total, logits, iou = point_coords.shape[0], [], []
        for start in range(0, total, self.batch_size):
            coords = point_coords[start:start + self.batch_size]
            labels = point_labels[start:start + self.batch_size]
            short = self.batch_size - coords.shape[0]
            out = self.packages["decoder_batch"].predict({
                "image_embeddings": embedding,
                "point_coords": np.concatenate([coords, np.zeros((short, 2, 2), np.float32)]),
                "point_labels": np.concatenate([labels, np.full((short, 2), -1.0, np.float32)])})
            logits.append(out["low_res_masks"][:coords.shape[0]])
            iou.append(out["iou_predictions"][:coords.shape[0]])
        return np.concatenate(logits), np.concatenate(iou)
