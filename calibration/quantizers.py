"""TinySAM's quantizer formulas as pure torch functions (qmax = 2^(bits-1), round half to even).

torch.round rounds half to even, as Q-TinySAM does; every function returns the fake-quantized
float tensor (codes times scale), which is what the PyTorch fidelity measurements run on.
"""

import torch

from .scales import Quantizer


def qmax(bits: int) -> int:
    return 2 ** (bits - 1)


def expand_blocks(scale: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Block scales (same rank, each dim 1 or a divisor) -> one scale per element of `shape`."""
    if scale.dim() != len(shape):
        raise ValueError(f"scale rank {scale.dim()} != tensor rank {len(shape)}")
    for dim, (s, n) in enumerate(zip(scale.shape, shape)):
        if n % s:
            raise ValueError(f"scale dim {dim} ({s}) does not divide tensor dim ({n})")
        if s != 1:
            scale = scale.repeat_interleave(n // s, dim=dim)
    return scale


def along_axis(scale: torch.Tensor, x: torch.Tensor, axis: "int | None") -> torch.Tensor:
    """(G,) activation scales -> broadcastable against x, G groups of consecutive entries of `axis`."""
    if scale.numel() == 1:
        return scale.reshape(())
    axis = axis % x.dim()
    shape = [1] * x.dim()
    shape[axis] = scale.numel()
    return expand_blocks(scale.reshape(shape), torch.Size(shape[:axis] + [x.shape[axis]] + shape[axis + 1:]))


def quantize_codes(x: torch.Tensor, scale: torch.Tensor, bits: int, offset: "torch.Tensor | float" = 0.0
                   ) -> torch.Tensor:
    """Integer codes clamp(round((x - offset) / scale), -qmax, qmax - 1), as floats."""
    q = qmax(bits)
    return torch.clamp(torch.round((x - offset) / scale), -q, q - 1)


def fake_quant_uniform(x: torch.Tensor, scale: torch.Tensor, bits: int, offset: "torch.Tensor | float" = 0.0
                       ) -> torch.Tensor:
    return quantize_codes(x, scale, bits, offset) * scale + offset


def fake_quant_twin_softmax(x: torch.Tensor, scale_low: torch.Tensor, scale_high: torch.Tensor, split: float,
                            bits: int) -> torch.Tensor:
    """Post-softmax twin uniform: [0, split) on a fine grid, [split, 1] on a coarse one, codes 0..qmax-1."""
    q = qmax(bits)
    low = torch.clamp(torch.round(x / scale_low), 0, q - 1) * scale_low
    high = torch.clamp(torch.round(x / scale_high), 0, q - 1) * scale_high
    return torch.where(x < split, low, high)


def fake_quant_twin_gelu(x: torch.Tensor, scale_neg: torch.Tensor, scale_pos: torch.Tensor, bits: int
                         ) -> torch.Tensor:
    """Post-GELU twin uniform: negatives (>= GELU's min, -0.17) codes -qmax..0, positives 0..qmax-1."""
    q = qmax(bits)
    neg = torch.clamp(torch.round(x / scale_neg), -q, 0) * scale_neg
    pos = torch.clamp(torch.round(x / scale_pos), 0, q - 1) * scale_pos
    return torch.where(x < 0, neg, pos)


def fake_quant_weight(weight: torch.Tensor, quantizer: Quantizer) -> torch.Tensor:
    return fake_quant_uniform(weight, expand_blocks(quantizer.scale, weight.shape), quantizer.bits)


def fake_quant_activation(x: torch.Tensor, quantizer: Quantizer) -> torch.Tensor:
    scale = along_axis(quantizer.scale, x, quantizer.axis)
    if quantizer.scheme == "uniform":
        offset = along_axis(quantizer.offset, x, quantizer.axis) if quantizer.offset is not None else 0.0
        return fake_quant_uniform(x, scale, quantizer.bits, offset)
    high = along_axis(quantizer.scale_high, x, quantizer.axis)
    if quantizer.scheme == "twin_softmax":
        return fake_quant_twin_softmax(x, scale, high, quantizer.split, quantizer.bits)
    return fake_quant_twin_gelu(x, scale, high, quantizer.bits)
