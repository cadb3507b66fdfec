"""Parsing of the option strings the commands share (points, boxes) into numpy prompts."""

from typing import Optional

import numpy as np
import typer

from ..errors import PromptError, TinySamError

CHECKPOINT_HELP = ("TinySAM weights: an official .pth (e.g. tinysam_42.3.pth) or a .safetensors file. "
                   "Default: the demo model embedded in the package.")
BACKEND_HELP = "Which runtime executes the network: torch, tflite, coreml, onnx or executorch."
ARTIFACTS_HELP = "Directory written by 'tinysam-mobile convert' (needed for every backend but torch)."

DELEGATE_HELP = ("LiteRT (--backend tflite) only: cpu runs on XNNPACK; npu-emulation runs LiteRT's reference "
                 "kernels and refuses a model with any floating-point op, as an int8-only NPU would.")
DelegateOption = typer.Option("cpu", "--delegate", help=DELEGATE_HELP)
CheckpointOption = typer.Option(None, "--checkpoint", "-c", help=CHECKPOINT_HELP, show_default=False)
BackendOption = typer.Option("torch", "--backend", "-b", help=BACKEND_HELP)
ArtifactsOption = typer.Option(None, "--artifacts", "-a", help=ARTIFACTS_HELP, show_default=False)
# Everything mode's mask filters (SAM's defaults)
PredIouThreshOption = typer.Option(0.88, help="Keep masks whose predicted IoU is above this.")
StabilityThreshOption = typer.Option(0.95, help="Keep masks whose stability score (IoU of the mask cut at logit "
                                     "-1 and +1) is at least this.")
HighScoreThreshOption = typer.Option(8.5, help="Hierarchical: logit above which a first-round mask marks a pixel "
                                     "as covered, so no second-round point is placed there.")


def runner_options(backend: str, delegate: str) -> dict:
    """Backend-specific keyword options for make_runner."""
    if backend == "tflite":
        return {"delegate": delegate}
    if delegate != "cpu":
        raise TinySamError("--delegate applies to --backend tflite only")
    return {}


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise PromptError(f"malformed {what} {text!r}: expected comma-separated numbers") from None


def parse_points(points: list[str]) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """['X,Y' or 'X,Y,LABEL', ...] -> (coords (N, 2), labels (N,)); LABEL 1 (default) or 0."""
    if not points:
        return None, None
    coords, labels = [], []
    for text in points:
        values = _numbers(text, "point")
        if len(values) not in (2, 3):
            raise PromptError(f"malformed point {text!r}: expected X,Y or X,Y,LABEL")
        label = values[2] if len(values) == 3 else 1.0
        if label not in (0.0, 1.0):
            raise PromptError(f"point {text!r}: LABEL must be 1 (foreground) or 0 (background)")
        coords.append(values[:2])
        labels.append(label)
    return np.array(coords, np.float32), np.array(labels, np.float32)


def parse_box(box: Optional[str]) -> Optional[np.ndarray]:
    if box is None:
        return None
    values = _numbers(box, "box")
    if len(values) != 4:
        raise PromptError(f"malformed box {box!r}: expected X0,Y0,X1,Y1")
    return np.array(values, np.float32)
