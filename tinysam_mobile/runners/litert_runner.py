"""LiteRT runner: the artifacts of `convert --target tflite` through ai-edge-litert's Interpreter.

Delegates: 'cpu' runs on XNNPACK (what Android's CPU path uses); 'npu-emulation' runs LiteRT's
reference kernels, the closest CPU stand-in for an integer-only NPU, and first refuses any model that
still computes in floating point. Quantized inputs and outputs are converted with their scale and
zero point, so callers always see float32.
"""

from pathlib import Path

import numpy as np

from ..converters.accelerators import check_integer_only
from ..converters.export_modules import (BATCH_SIGNATURE, DECODER_OUTPUTS, ENCODER_INPUT, ENCODER_OUTPUT,
                                         POINT_FEATURES, token_signature)
from ..converters.manifest import load_manifest, token_bounds
from ..errors import ArtifactError, TinySamError
from ..utils.prompts import point_features
from ..utils.transforms import normalized_to_pixels
from .batching import decode_in_batches

DELEGATES = ("cpu", "npu-emulation")


class _Signature:
    """One signature runner with float <-> integer (int8, int16) conversion at its edges."""

    def __init__(self, interpreter, name: str) -> None:
        self.runner = interpreter.get_signature_runner(name)
        self.inputs = self.runner.get_input_details()
        self.outputs = self.runner.get_output_details()

    def __call__(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        feed = {}
        for name, value in arrays.items():
            details = self.inputs[name]
            scale, zero_point = details["quantization"]
            if scale:
                info = np.iinfo(details["dtype"])
                value = np.clip(np.round(value / scale) + zero_point, info.min, info.max)
            feed[name] = np.ascontiguousarray(value, details["dtype"])
        out = {}
        for name, value in self.runner(**feed).items():
            scale, zero_point = self.outputs[name]["quantization"]
            out[name] = ((value.astype(np.float32) - zero_point) * scale) if scale else value.astype(np.float32)
        return out

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(v) for v in self.inputs[name]["shape"])


class LiteRTRunner:
    name = "tflite"

    def __init__(self, artifacts: "str | Path", delegate: str = "cpu", threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if delegate not in DELEGATES:
            raise TinySamError(f"unknown delegate {delegate!r}; choose one of {', '.join(DELEGATES)}")
        root = Path(artifacts)
        self.manifest = load_manifest(root)
        if self.manifest["target"] != "tflite":
            raise ArtifactError(f"{root} holds {self.manifest['target']} artifacts, not tflite")
        files = {record["role"]: root / record["file"] for record in self.manifest["artifacts"]}
        if delegate == "npu-emulation":
            for role in ("encoder", "decoder"):
                check_integer_only(files[role])
        resolver = OpResolverType.AUTO if delegate == "cpu" else OpResolverType.BUILTIN_REF
        open_model = lambda path: Interpreter(str(path), num_threads=threads,  # noqa: E731
                                              experimental_op_resolver_type=resolver)
        encoder, decoder = open_model(files["encoder"]), open_model(files["decoder"])
        self.encoder = _Signature(encoder, "encode")
        self.min_tokens, self.max_tokens = token_bounds(self.manifest, root)
        try:
            self.decoders = {t: _Signature(decoder, token_signature(t)) for t in range(self.min_tokens, self.max_tokens + 1)}
            self.decoder_batch = _Signature(decoder, BATCH_SIGNATURE)
        except ValueError as exc:  # the interpreter's "Invalid signature_key"
            raise ArtifactError(f"{files['decoder']}: {exc}") from None
        self.delegate = delegate
        self.img_size = self.manifest["preprocessing"]["input_size"]
        # The integer decoders (w8a8, w8a16) take the points' Fourier features (sin / cos have no integer
        # kernels): the glue computes them from the coordinates with the manifest's projection, as the app does.
        features = self.manifest["decoder"].get(POINT_FEATURES)
        self.gaussian_matrix = None if features is None else np.asarray(features["gaussian_matrix"], np.float32)
        points_input = "point_coords" if features is None else POINT_FEATURES
        self.batch_size, self.batch_points = self.decoder_batch.shape(points_input)[:2]

    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.encoder(**{ENCODER_INPUT: normalized_to_pixels(image)})[ENCODER_OUTPUT]

    def _run(self, signature, embedding, coords, labels, mask, has_mask):
        points = ({"point_coords": coords} if self.gaussian_matrix is None
                  else {POINT_FEATURES: point_features(coords, self.gaussian_matrix, self.img_size)})
        out = signature(image_embeddings=embedding, point_labels=labels, mask_input=mask, has_mask_input=has_mask,
                        **points)
        return out[DECODER_OUTPUTS[0]], out[DECODER_OUTPUTS[1]]

    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        return decode_in_batches(self, embedding, point_coords, point_labels, mask_input, has_mask_input,
                                 single=lambda e, c, *a: self._run(self.decoders[c.shape[1]], e, c, *a),
                                 batched=lambda *a: self._run(self.decoder_batch, *a))
