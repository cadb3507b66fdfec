"""Loading TinySAM weights: official .pth state dicts, safetensors, or the embedded demo model.

Nothing here unpickles arbitrary objects: .pth files go through torch.load(weights_only=True),
which only rebuilds tensors and plain containers.
"""

import hashlib
import pickle
import warnings
from pathlib import Path
from typing import Optional

import torch

from .errors import CheckpointError
from .modeling import TinySam, TinySamConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEMO_CHECKPOINT = WEIGHTS_DIR / "tinysam_demo.safetensors"
SEEDED_WEIGHTS_SEED = 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: "str | Path") -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat {key: tensor} dict without executing any pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported object"
        raise CheckpointError(
            f"{path}: refused to unpickle it, since it holds more than tensors ({first_line}). "
            "Q-TinySAM's pickled module is read by 'tinysam-mobile calibrate --import-qtinysam'"
        ) from None
    except Exception as exc:  # a corrupt or foreign file can fail anywhere inside torch.load
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
    if isinstance(obj, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (optionally under 'model')")
    return obj


def join_state_dicts(paths: "list[str | Path]") -> dict[str, torch.Tensor]:
    """One state dict from several files holding disjoint parts of it (e.g. encoder and decoder)."""
    joined: dict[str, torch.Tensor] = {}
    for path in paths:
        part = read_state_dict(path)
        repeated = sorted(set(part) & set(joined))
        if repeated:
            raise CheckpointError(f"{path} repeats keys of an earlier part: {', '.join(repeated[:5])}")
        joined.update(part)
    return joined


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
            problems.append(f"{title}: {shown}")
    if problems:
        raise CheckpointError(f"{source} does not match TinySAM's state dict; " + "; ".join(problems))


def seeded_model(config: TinySamConfig = TinySamConfig(), seed: int = SEEDED_WEIGHTS_SEED) -> TinySam:
    """TinySAM with deterministic random (untrained) weights."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TinySam(config)


def load_tinysam(checkpoint: "str | Path | None" = None, config: TinySamConfig = TinySamConfig()) -> TinySam:
    """The eval-mode TinySAM. checkpoint: an official .pth (plain or under 'model'), a safetensors
    file, or None for the embedded demo model."""
    if checkpoint is None and DEMO_CHECKPOINT.is_file():
        checkpoint = DEMO_CHECKPOINT
    if checkpoint is None:
        warnings.warn(
            "No trained TinySAM weights are embedded in this build: using SEEDED RANDOM weights. "
            "Masks will be meaningless; pass --checkpoint with an official TinySAM checkpoint.",
            stacklevel=2,
        )
        return seeded_model(config).eval()
    model = TinySam(config)
    state = read_state_dict(checkpoint)
    check_state_dict(model, state, str(checkpoint))
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in state.items()}, strict=True)
    return model.eval()


def checkpoint_id(checkpoint: "str | Path | None") -> str:
    """SHA-256 of the weights a conversion starts from (of the file, or 'seeded-<seed>')."""
    if checkpoint is None and DEMO_CHECKPOINT.is_file():
        checkpoint = DEMO_CHECKPOINT
    return file_sha256(Path(checkpoint)) if checkpoint is not None else f"seeded-{SEEDED_WEIGHTS_SEED}"
