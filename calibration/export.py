"""What the converters take from a scales file: an int8 weight grid and per-module activation ranges.

Mobile int8 formats (TFLite, CoreML) hold per-tensor or per-output-channel weight scales and one
(min, max) range per activation tensor. What they cannot express is approximated here, the same way
for both targets (its cost is measured by ``report.approximation_cost``):
- layer-wise or block-wise weight scales become per-output-channel scales (the largest block scale
  of the row, so nothing clips; weights are re-rounded on that grid);
- head-wise activation scales become one range covering every head;
- twin-uniform activations become one uniform range covering both regions
  (post-softmax [0, 1]; post-GELU [-qmax * s_neg, (qmax - 1) * s_pos]).
"""

import torch

from .quantizers import expand_blocks, qmax, quantize_codes
from .scales import OpScales, Quantizer, ScalesFile

OUTPUT_AXIS = {"conv": 0, "linear": 0, "deconv": 1}  # ConvTranspose2d weights are (I, O, kH, kW)


def per_channel_scale(scales: ScalesFile, module_name: str, weight: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(scale per output channel (O,), the output channel's axis in `weight`)."""
    op = scales.op(module_name)
    axis = OUTPUT_AXIS[op.kind]
    full = expand_blocks(op.quantizers["weight"].scale, weight.shape)
    other = [d for d in range(weight.dim()) if d != axis]
    return full.amax(dim=other), axis


def weight_grid(scales: ScalesFile, module_name: str, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(int8 codes shaped like weight, per-output-channel float scales (O,), channel axis).

    codes * scale (broadcast along axis) is the weight a per-channel int8 format will hold.
    """
    scale, axis = per_channel_scale(scales, module_name, weight)
    shape = [1] * weight.dim()
    shape[axis] = -1
    bits = scales.weight_quantizer(module_name).bits
    codes = quantize_codes(weight.detach().float(), scale.reshape(shape), bits)
    return codes.to(torch.int8), scale, axis


def activation_ranges(scales: ScalesFile) -> dict[str, dict[str, tuple[float, float]]]:
    """{module name: {operand: (min, max)}} for every activation operand ('input', or 'a' / 'b')."""
    return {name: {operand: q.covered_range() for operand, q in op.quantizers.items() if operand != "weight"}
            for name, op in scales.ops.items()}


def per_tensor_range_quantizer(low: float, high: float, bits: int) -> Quantizer:
    """An asymmetric per-tensor quantizer over [low, high] (what TFLite / CoreML int8 activations are)."""
    levels = 2 ** bits - 1
    scale = torch.tensor([max(high - low, 1e-12) / levels])
    return Quantizer("uniform", bits, scale, offset=low + qmax(bits) * scale)


def mobile_approximation(scales: ScalesFile) -> ScalesFile:
    """The scales as a per-channel-weight, per-tensor-activation int8 format can hold them."""
    ops = {}
    for name, op in scales.ops.items():
        quantizers = {}
        for operand, q in op.quantizers.items():
            if operand == "weight":
                rank = q.scale.dim()
                axis = OUTPUT_AXIS[op.kind]
                blocks = [d for d in range(rank) if d != axis]
                # Per-row max of the block scales = the per-channel scale weight_grid uses.
                scale = q.scale.amax(dim=blocks, keepdim=True) if blocks else q.scale
                quantizers[operand] = Quantizer("uniform", q.bits, scale, granularity="channel")
            else:
                quantizers[operand] = per_tensor_range_quantizer(*q.covered_range(), q.bits)
        ops[name] = OpScales(op.kind, quantizers)
    return ScalesFile(scales.checkpoint_sha256, f"{scales.method}+mobile", ops, scales.seed)
