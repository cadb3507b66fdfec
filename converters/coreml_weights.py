"""INT8 weights for CoreML from per-layer scales (TinySAM PTQ scales or max-abs), carried exactly.

coremltools reads `_COREML_/weight/*` buffers on a torch layer during conversion and stores that
weight as int8 data plus scale (constexpr_affine_dequantize); the float weight must already lie on
the grid the scale implies. Scales always refer to the checkpoint's own layers (the unfused
`...c` convs of TinyViT's Conv-BN pairs); folding a BatchNorm multiplies an output channel by
gamma / sqrt(var + eps), which keeps the integer grid and only rescales that channel's scale.
"""

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ..calibration.export import weight_grid
from ..calibration.quantizers import quantize_codes
from ..calibration.scales import ScalesError, ScalesFile

WEIGHT_BITS = 8  # storage; a 6-bit scales file's codes fit as well
MAX_ABS_LEVEL = 127  # max-abs scales map the largest weight to +-127 (TinySAM's grid: -128..127)
Grid = tuple[torch.Tensor, torch.Tensor]  # (integer codes shaped like the weight, scale per output channel)
QUANTIZED_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)  # what TinySAM's PTQ quantizes
COMPRESSION_TYPE_PALETTIZATION = 2  # coremltools' CompressionType.PALETTIZATION
COMPRESSION_TYPE_QUANTIZATION = 3  # coremltools' CompressionType.QUANTIZATION


def channel_axis(layer: nn.Module) -> int:
    """Output-channel axis of a weight: ConvTranspose2d stores (in, out, kh, kw)."""
    return 1 if isinstance(layer, nn.ConvTranspose2d) else 0


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, QUANTIZED_LAYERS)}


def per_channel(values: torch.Tensor, weight: torch.Tensor, axis: int) -> torch.Tensor:
    """A scalar or one value per output channel, shaped to broadcast against weight."""
    shape = [1] * weight.ndim
    shape[axis] = weight.shape[axis]
    return torch.as_tensor(values, dtype=torch.float32).expand(weight.shape[axis]).reshape(shape)


def max_abs_grids(model: nn.Module) -> dict[str, Grid]:
    """Per-output-channel symmetric int8 of every quantized layer: scale max|w| / 127."""
    grids = {}
    for name, layer in quantized_layers(model).items():
        w = layer.weight.detach()
        axis = channel_axis(layer)
        scale = w.abs().amax(dim=[d for d in range(w.ndim) if d != axis]) / MAX_ABS_LEVEL
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero channel: codes 0
        grids[name] = (quantize_codes(w, per_channel(scale, w, axis), WEIGHT_BITS), scale)
    return grids


def scales_file_grids(model: nn.Module, scales: ScalesFile) -> dict[str, Grid]:
    """The int8 grid a TinySAM scales file implies for each conv / deconv / linear it names."""
    layers = quantized_layers(model)
    unknown = sorted(name for name, op in scales.ops.items() if op.kind != "matmul" and name not in layers)
    if unknown:
        raise ScalesError(f"the scales file names layers this model does not have: {', '.join(unknown[:5])}")
    return {name: weight_grid(scales, name, layers[name].weight)[:2]
            for name, op in scales.ops.items() if op.kind != "matmul"}


def batchnorm_factors(bn: nn.BatchNorm2d) -> torch.Tensor:
    return bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)


def fold_batchnorms(model: nn.Module) -> dict[str, torch.Tensor]:
    """Fold every eval-mode (conv `c`, BatchNorm `bn`) pair in place; returns {conv name: factor}."""
    factors = {}
    for name, module in model.named_modules():
        conv, bn = getattr(module, "c", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            factors[f"{name}.c"] = batchnorm_factors(bn)
            weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                bn.eps, bn.weight, bn.bias)
            conv.weight, conv.bias = weight, bias
            module.bn = nn.Identity()
    return factors


def folded_copy(model: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """(a copy of model with every BatchNorm folded, {conv name: folding factor})."""
    folded = copy.deepcopy(model)
    return folded, fold_batchnorms(folded)


def _on_grids(model: nn.Module, grids: dict[str, Grid]) -> tuple[nn.Module, dict[str, tuple[nn.Module, torch.Tensor]]]:
    """A copy of model with BatchNorms folded and each layer in grids set to codes * scale; returns it and
    {name: (layer, scale shaped to broadcast against the weight)}. Folding multiplies a channel's scale by
    its BatchNorm factor, which may be negative: the codes stay, the scale takes the sign."""
    folded, factors = folded_copy(model)
    layers = quantized_layers(folded)
    placed = {}
    with torch.no_grad():
        for name, (codes, scale) in grids.items():
            layer = layers[name]
            axis = channel_axis(layer)
            s = per_channel(scale, codes, axis)
            if name in factors:
                s = s * per_channel(factors[name], codes, axis)
            layer.weight.copy_(codes.float() * s)
            # a dead channel (zero scale or BatchNorm factor) holds zeros: any non-zero scale stores them
            placed[name] = (layer, torch.where(s != 0, s, torch.ones_like(s)))
    return folded, placed


def attach_int8_weights(model: nn.Module, grids: dict[str, Grid]) -> nn.Module:
    """A copy of model with BatchNorms folded and each layer in grids set to codes * scale, tagged so
    that coremltools stores the codes as int8 and the scale per output channel (a negative folded scale
    flips the stored codes' sign: int8 scales are positive)."""
    folded, placed = _on_grids(model, grids)
    for layer, s in placed.values():
        layer.register_buffer("_COREML_/weight/quantization_n_bits", torch.tensor(WEIGHT_BITS))
        layer.register_buffer("_COREML_/weight/quantization_scale", s.abs())
        layer.register_buffer("_COREML_/weight/compression_type", torch.tensor([COMPRESSION_TYPE_QUANTIZATION]))
    return folded


def attach_grid_palettes(model: nn.Module, grids: dict[str, Grid], bits: int) -> nn.Module:
    """A copy of model whose layers in grids coremltools stores as `bits`-bit palettes holding exactly
    TinySAM's quantization grid: one LUT of the integer codes -2^(bits-1) .. 2^(bits-1) - 1 per layer,
    times the scale per output channel (constexpr_lut_to_dense, then constexpr_blockwise_shift_scale)."""
    folded, placed = _on_grids(model, grids)
    qmax = 2 ** (bits - 1)
    for layer, s in placed.values():
        lut = torch.arange(-qmax, qmax, dtype=torch.float32).reshape([1] * layer.weight.ndim + [2 * qmax, 1])
        layer.register_buffer("_COREML_/weight/lut", lut)
        layer.register_buffer("_COREML_/weight/palettization_scale", s)
        layer.register_buffer("_COREML_/weight/compression_type", torch.tensor([COMPRESSION_TYPE_PALETTIZATION]))
    return folded
