"""A fake-quantized copy of TinySAM built from a scales file, so W8A8 fidelity is measurable in PyTorch.

Weights are replaced by their fake-quantized values once; activation operands are fake-quantized by
forward pre-hooks. Module names and the state dict's keys stay those of TinySam.
"""

import copy

import torch
from torch import nn

from ..errors import TinySamError
from ..modeling.tinysam import TinySam
from .capture import quantizable_ops
from .quantizers import fake_quant_activation, fake_quant_weight
from .scales import ScalesFile


def _input_hook(quantizers):
    def hook(module, inputs):
        return tuple(fake_quant_activation(x, q) for x, q in zip(inputs, quantizers))
    return hook


def fake_quant_model(model: TinySam, scales: ScalesFile) -> TinySam:
    """A deep copy of model whose quantized ops follow `scales`; ops the file lacks stay float."""
    ops = quantizable_ops(model)
    unknown = sorted(set(scales.ops) - set(ops))
    if unknown:
        raise TinySamError(f"the scales file names ops TinySAM does not have: {', '.join(unknown[:3])}")
    quantized = copy.deepcopy(model).eval()
    modules = dict(quantized.named_modules())
    with torch.no_grad():
        for name, op in scales.ops.items():
            module: nn.Module = modules[name]
            if "weight" in op.quantizers:
                module.weight.copy_(fake_quant_weight(module.weight, op.quantizers["weight"]))
                operands = [op.quantizers["input"]]
            else:
                operands = [op.quantizers["a"], op.quantizers["b"]]
            module.register_forward_pre_hook(_input_hook(operands))
    return quantized
