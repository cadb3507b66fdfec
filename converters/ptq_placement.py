"""What every converter that places TinySAM PTQ scales shares: the check of a scales file against the
model, the match of a converted weight with the module's weight up to a per-channel factor (a folded
BatchNorm), and the report of what became of each entry (the manifest's `ptq_scales`)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..calibration.capture import quantizable_ops
from ..calibration.scales import ScalesError, ScalesFile
from ..errors import TinySamError
from .manifest import path_sha256

WEIGHT_LEVEL = 127  # int8 weights are symmetric with codes -127..127 (LiteRT, XNNPACK): scale = max / 127
MATCH_TOLERANCE = 1e-5  # relative residual of a converted weight channel against factor * PyTorch channel
SCALE_TOLERANCE = 1e-5  # relative, float32 storage of the scales read back
ACTIVATION_NOTES = ("twin_uniform_as_one_range", "head_wise_as_one_range", "merged_on_shared_tensor")


def check_entries(model: nn.Module, scales: ScalesFile, target: str) -> None:
    """Refuse a scales file naming modules this model lacks, or not holding 8-bit scales."""
    unknown = sorted(set(scales.ops) - set(quantizable_ops(model)))
    if unknown:
        raise ScalesError(f"the scales file names ops this model does not have: {', '.join(unknown[:5])}")
    if scales.bits != {"weight": 8, "activation": 8}:
        raise ScalesError(f"{target} holds 8-bit scales; this file has {scales.bits}")


def channel_factors(converted: np.ndarray, ref: np.ndarray) -> "np.ndarray | None":
    """f with converted[c] = f[c] * ref[c] for every row c (output channel), or None when not proportional."""
    converted, ref = converted.astype(np.float64), ref.astype(np.float64)
    norm = (ref * ref).sum(1)
    factors = np.where(norm > 0, (converted * ref).sum(1) / np.maximum(norm, 1e-300), 0.0)
    residual = np.sqrt(((converted - factors[:, None] * ref) ** 2).sum(1))
    size = np.sqrt((converted * converted).sum(1))
    if not size.any() or np.any(residual > MATCH_TOLERANCE * size):
        return None
    return factors


def weight_rows(weight: np.ndarray, axis: int) -> np.ndarray:
    """A weight as (output channel, everything else)."""
    weight = np.moveaxis(weight, axis, 0)
    return weight.reshape(weight.shape[0], -1)


def activation_notes(scales: ScalesFile, module: str, operand: str) -> set[str]:
    """What a per-tensor int8 range cannot hold of this operand's quantizer."""
    q = scales.activation_quantizer(module, operand)
    notes = set()
    if q.scheme != "uniform":
        notes.add("twin_uniform_as_one_range")
    if q.scale.numel() > 1:
        notes.add("head_wise_as_one_range")
    return notes


@dataclass
class ScalesReport:
    """What became of each scales file entry (counted once, whatever the number of signatures or methods)."""

    target: str
    weights: dict[str, str] = field(default_factory=dict)        # module -> per_channel | from_block_scales
    clipped_codes: dict[str, int] = field(default_factory=dict)  # module -> PTQ codes -128 held as -127
    activations: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (module, operand) -> notes
    folded: set[str] = field(default_factory=set)
    left_float: set[str] = field(default_factory=set)  # modules outside the layers the recipe quantizes
    # (module, operand) whose activation the recipe holds in 16 bits (LiteRT w8a8): calibrated range kept
    activations_16_bit: set[tuple[str, str]] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        notes = [n for v in self.activations.values() for n in v]
        return {
            "weights": {"placed": len(self.weights),
                        "per_channel_exact": sum(v == "per_channel" for v in self.weights.values()),
                        "from_block_scales": sum(v == "from_block_scales" for v in self.weights.values()),
                        "codes_-128_held_as_-127": sum(self.clipped_codes.values())},
            "activations": {"placed": len(self.activations),
                            "exact": sum(not v for v in self.activations.values()),
                            **{note: notes.count(note) for note in ACTIVATION_NOTES}},
            "folded_by_converter": sorted(self.folded),
            **({"left_in_float_by_recipe": len(self.left_float)} if self.left_float else {}),
            **({"activations_16_bit_by_recipe": len(self.activations_16_bit)} if self.activations_16_bit else {}),
        }

    def check_complete(self, scales: ScalesFile) -> None:
        """Every entry placed in some graph, folded away by the converter, or kept float or 16-bit by the
        recipe; else an error naming them."""
        placed = (set(self.weights) | {module for module, _ in [*self.activations, *self.activations_16_bit]}
                  | self.folded | self.left_float)
        unplaced = [name for name in scales.ops if name not in placed]
        if unplaced:
            raise TinySamError(f"cannot place {len(unplaced)} scales file entries in the {self.target} graphs: "
                               f"{', '.join(unplaced[:5])}")


def manifest_record(path: Path, scales: ScalesFile, report: ScalesReport) -> dict[str, Any]:
    """The manifest's `ptq_scales`: which file (by hash) and what became of its entries."""
    return {"file": path.name, "sha256": path_sha256(path), "method": scales.method, "entries": len(scales.ops),
            **report.summary()}
