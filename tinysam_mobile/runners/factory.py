"""Build a runner from CLI-style arguments, importing each backend only when it is asked for."""

from pathlib import Path
from typing import Optional

from ..errors import TinySamError

BACKENDS = ("torch", "tflite", "coreml", "onnx", "executorch")


def make_runner(backend: str = "torch", checkpoint: Optional[Path] = None, artifacts: Optional[Path] = None,
                **options):
    """backend 'torch' loads checkpoint (or the embedded default); the others load converted
    artifacts from the directory `artifacts` (written by `tinysam-mobile convert`)."""
    if backend not in BACKENDS:
        raise TinySamError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        from ..checkpoint import load_tinysam
        from .torch_runner import TorchRunner

        return TorchRunner(load_tinysam(checkpoint))
    if artifacts is None:
        raise TinySamError(f"--backend {backend} needs --artifacts DIR (the output of 'tinysam-mobile convert')")
    if backend == "coreml":
        from .coreml_runner import CoreMLRunner

        return CoreMLRunner(artifacts, **options)
    if backend == "tflite":
        from .litert_runner import LiteRTRunner

        return LiteRTRunner(artifacts, **options)
    if backend == "onnx":
        from .onnx_runner import OnnxRunner

        return OnnxRunner(artifacts, **options)
    if backend == "executorch":
        from .executorch_runner import ExecuTorchRunner

        return ExecuTorchRunner(artifacts, **options)
    raise TinySamError(f"the {backend} backend is not available in this build")
