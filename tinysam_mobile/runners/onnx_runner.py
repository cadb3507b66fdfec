"""ONNX Runtime runner for the artifacts of `convert --target onnx` (dynamic prompt and point axes)."""

from pathlib import Path

import numpy as np

from ..converters.export_modules import DECODER_INPUTS, ENCODER_INPUT
from ..converters.manifest import load_manifest
from ..errors import ArtifactError
from ..utils.transforms import normalized_to_pixels


class OnnxRunner:
    name = "onnx"
    min_tokens, max_tokens = 1, None  # a dynamic token axis: any prompt, exactly

    def __init__(self, artifacts: "str | Path", threads: int = 2, batch_size: int = 64) -> None:
        import onnxruntime as ort

        root = Path(artifacts)
        self.manifest = load_manifest(root)
        if self.manifest["target"] != "onnx":
            raise ArtifactError(f"{root} holds {self.manifest['target']} artifacts, not onnx")
        files = {record["role"]: root / record["file"] for record in self.manifest["artifacts"]}
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = lambda role: ort.InferenceSession(str(files[role]), options,  # noqa: E731
                                                    providers=["CPUExecutionProvider"])
        self.encoder, self.decoder = session("encoder"), session("decoder")
        self.img_size = self.manifest["preprocessing"]["input_size"]
        self.batch_size = batch_size

    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.encoder.run(None, {ENCODER_INPUT: normalized_to_pixels(image)})[0]

    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        arrays = (embedding, point_coords, point_labels, mask_input, has_mask_input)
        feed = {name: np.ascontiguousarray(a, np.float32) for name, a in zip(DECODER_INPUTS, arrays)}
        logits, iou = self.decoder.run(None, feed)
        return logits, iou
