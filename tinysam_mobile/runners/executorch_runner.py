"""ExecuTorch runner: the .pte programs of `convert --target executorch`, executed by ExecuTorch's Python
runtime (executorch.runtime.Runtime; XNNPACK is linked into its Linux and macOS builds). Programs lowered
to the Core ML delegate run only on Apple devices: this runner refuses them where the runtime has no Core ML
backend (Linux)."""

from pathlib import Path

import numpy as np
import torch

from ..converters.executorch import BATCH_METHOD, DECODER_METHOD, DELEGATE_IDS, ENCODER_METHOD
from ..converters.export_modules import DECODER_INPUTS
from ..converters.manifest import load_manifest, token_bounds
from ..errors import ArtifactError, TinySamError
from ..utils.transforms import normalized_to_pixels
from .batching import decode_in_batches


def _tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in arrays]


class ExecuTorchRunner:
    name = "executorch"

    def __init__(self, artifacts: "str | Path", threads: int = 2) -> None:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        root = Path(artifacts)
        self.manifest = load_manifest(root)
        if self.manifest["target"] != "executorch":
            raise ArtifactError(f"{root} holds {self.manifest['target']} artifacts, not executorch")
        runtime = Runtime.get()
        delegate = DELEGATE_IDS.get(self.manifest.get("backend"))
        if delegate is None:
            raise ArtifactError(f"{root}: the manifest names no ExecuTorch backend ({', '.join(DELEGATE_IDS)})")
        if not runtime.backend_registry.is_available(delegate):
            raise TinySamError(f"{root} holds programs for the {delegate} delegate, which this ExecuTorch runtime "
                               "lacks (Core ML programs run on Apple devices only)")
        if portable_lib._threadpool_get_thread_count() != threads:  # XNNPACK's threads: the runtime's one pool
            portable_lib._unsafe_reset_threadpool(threads)
        files = {record["role"]: root / record["file"] for record in self.manifest["artifacts"]}
        try:
            encoder, decoder = (runtime.load_program(files[role]) for role in ("encoder", "decoder"))
            self.encoder = encoder.load_method(ENCODER_METHOD)
            self.decoder, self.decoder_batch = (decoder.load_method(m) for m in (DECODER_METHOD, BATCH_METHOD))
        except (RuntimeError, KeyError) as exc:  # a program ExecuTorch cannot load, or without these methods
            raise ArtifactError(f"{root}: cannot load the ExecuTorch programs ({exc})") from None
        self.img_size = self.manifest["preprocessing"]["input_size"]
        self.min_tokens, self.max_tokens = token_bounds(self.manifest, root)
        batch_inputs = next(r for r in self.manifest["artifacts"] if r["role"] == "decoder")["methods"][BATCH_METHOD]
        self.batch_size, self.batch_points = batch_inputs["inputs"][DECODER_INPUTS.index("point_coords")]["shape"][:2]

    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.encoder.execute(_tensors(normalized_to_pixels(image)))[0].numpy()

    @staticmethod
    def _run(method, *arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, iou = method.execute(_tensors(*arrays))
        return logits.numpy(), iou.numpy()

    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        return decode_in_batches(self, embedding, point_coords, point_labels, mask_input, has_mask_input,
                                 single=lambda *a: self._run(self.decoder, *a),
                                 batched=lambda *a: self._run(self.decoder_batch, *a))
