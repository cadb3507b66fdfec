"""Loading TinySAM weights: official .pth state dicts, safetensors, or the embedded demo model.

Nothing here unpickles arbitrary objects: .pth files go through torch.load(weights_only=True),
which only rebuilds tensors and plain containers.
"""

import hashlib
import pickle
import re
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


# torch names the object it refused as "GLOBAL module.name" (or "Unsupported global/class: ..."), and an
# opcode its restricted reader lacks as "Unsupported operand N".
_REFUSED_NAMES = (re.compile(r"GLOBAL ([A-Za-z_][\w.]*)"),
                  re.compile(r"Unsupported (?:global|class)[: ]+([A-Za-z_][\w.]*)"))
_REFUSED_OPCODE = re.compile(r"Unsupported operand (\S+)")


def _refusal(torch_message: str) -> str:
    """One line on a file torch.load(weights_only=True) refused: what was found and what to do instead.

    torch's own message is not repeated: it advises re-running with weights_only=False, which executes
    whatever code the file carries."""
    names = [m.group(1) for m in (pattern.search(torch_message) for pattern in _REFUSED_NAMES) if m]
    opcode = _REFUSED_OPCODE.search(torch_message)
    if names:
        found = f"it holds a pickled {names[0]}, not only tensors"
    elif opcode:
        found = (f"it is not a plain PyTorch state dict (pickle opcode {opcode.group(1)}, which the tensor-only "
                 "reader does not accept)")
    else:
        found = "it holds more than tensors"
    return (f"refused to unpickle it: {found}; unpickling anything else can run code from the file. "
            "For Q-TinySAM's pickled model (tinysam_w8a8.pth) run 'tinysam-mobile calibrate --import-qtinysam', "
            "which reads it without running code; otherwise pass a .safetensors file or a plain state dict of "
            "tensors")


def _checkpoint_file(path: "str | Path") -> Path:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; pass the .pth or .safetensors file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def read_state_dict(path: "str | Path") -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat {key: tensor} dict without executing any pickled code."""
    path = _checkpoint_file(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol N ... please file an issue": noise here
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: {_refusal(str(exc))}") from None
    except Exception as exc:  # a corrupt or foreign file can fail anywhere inside torch.load
        if "weights_only" in str(exc):  # never pass on torch's advice to load with weights_only=False
            raise CheckpointError(f"{path}: {_refusal(str(exc))}") from None
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__}"
                              f"{': ' + reason if reason else ''})") from None
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
    state = read_state_dict(checkpoint)  # a missing or refused file fails before the model is built
    model = TinySam(config)
    check_state_dict(model, state, str(checkpoint))
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in state.items()}, strict=True)
    return model.eval()


def checkpoint_id(checkpoint: "str | Path | None") -> str:
    """SHA-256 of the weights a conversion starts from (of the file, or 'seeded-<seed>')."""
    if checkpoint is None and DEMO_CHECKPOINT.is_file():
        checkpoint = DEMO_CHECKPOINT
    return file_sha256(_checkpoint_file(checkpoint)) if checkpoint is not None else f"seeded-{SEEDED_WEIGHTS_SEED}"
