"""TinySAM's per-op scale search, and the plain min/max baseline.

For each op, alternately for its two operands (weight / input, or A / B of a matmul), try
alpha * max|x| / 2^(bits-1) for `candidates` alphas in [alpha_min, alpha_max] and keep the one that
minimises the Hessian-guided distance sum(grad^2 * (y_quant - y_fp)^2) on the captured samples,
for `rounds` rounds. An activation's max|x| is over the whole tensor on every calibration pass, not
over the sampled positions: those held a fraction of the range (a few 8 x 8 windows of a convolution's
input), so every grid, min/max's too, clipped what the samples had not seen. Groups are searched jointly (each group only moves its own slice of the output):
output channels for conv / deconv weights, heads for matmul operands; linear weights and conv /
linear inputs have one scale. Post-softmax matmul operands and inputs fed by GELU are twin-uniform.
"""

from typing import Callable

import torch

from .capture import GELU_MIN, HEAD_AXIS, MIN_SCALE, OpData, run_op
from .config import CalibrationConfig
from .quantizers import fake_quant_activation, fake_quant_weight, qmax
from .scales import OpScales, Quantizer, ScalesFile

WEIGHT_GROUP_AXIS = {"conv": 0, "deconv": 1}  # output channel axis of the weight; linear: layer-wise


def _weight_amax(x: torch.Tensor, axis: "int | None") -> torch.Tensor:
    """max|w| per slice along axis (output channels), or (1,) per tensor."""
    if axis is None:
        return x.abs().amax().reshape(1)
    dims = [d for d in range(x.dim()) if d != axis]
    return x.abs().amax(dim=dims).clamp_min(MIN_SCALE)


def _weight_scale_shape(weight: torch.Tensor, axis: "int | None") -> list[int]:
    shape = [1] * weight.dim()
    if axis is not None:
        shape[axis] = weight.shape[axis]
    return shape


def initial_quantizers(data: OpData, bits: int, twin: bool) -> dict[str, Quantizer]:
    """alpha = 1 everywhere (this IS the min/max baseline when twin is False)."""
    q = qmax(bits)
    operands, _ = data.cat()
    if data.kind == "matmul":
        quantizers = {}
        for index, (name, x) in enumerate(zip("ab", operands)):
            heads = x.dim() == 4
            amax = data.amax(index)
            granularity, axis = ("head", HEAD_AXIS) if heads else ("tensor", None)
            if name == "a" and twin and data.post_softmax:
                low = torch.tensor([1.0 / (q - 1)])
                quantizers[name] = Quantizer("twin_softmax", bits, low, granularity="tensor",
                                             scale_high=torch.tensor([1.0 / (q - 1)]), split=1.0)
            else:
                quantizers[name] = Quantizer("uniform", bits, amax / q, granularity=granularity, axis=axis)
        return quantizers
    weight = data.module.weight.detach()
    axis = WEIGHT_GROUP_AXIS.get(data.kind)
    w_amax = _weight_amax(weight, axis).reshape(_weight_scale_shape(weight, axis)).clamp_min(MIN_SCALE)
    w = Quantizer("uniform", bits, w_amax / q, granularity="channel" if axis is not None else "tensor")
    if twin and data.post_gelu:
        x = Quantizer("twin_gelu", bits, torch.tensor([-GELU_MIN / q]), scale_high=data.amax(0, positive=True) / q)
    else:
        x = Quantizer("uniform", bits, data.amax(0) / q)
    return {"weight": w, "input": x}


def _quantize(data: OpData, operands: list[torch.Tensor], name: str, quantizer: Quantizer) -> torch.Tensor:
    """The named operand (weight, input, a or b), fake-quantized."""
    if name == "weight":
        return fake_quant_weight(data.module.weight.detach(), quantizer)
    return fake_quant_activation(operands[0 if name in ("input", "a") else 1], quantizer)


def _run_quantized(data: OpData, quantized: dict[str, torch.Tensor]) -> torch.Tensor:
    if data.kind == "matmul":
        return run_op(data.kind, data.module, [quantized["a"], quantized["b"]])
    return run_op(data.kind, data.module, [quantized["input"]], quantized["weight"])


def _searched_field(q: Quantizer) -> str:
    """twin_gelu's negative scale is fixed by GELU's minimum; every other quantizer searches `scale`."""
    return "scale_high" if q.scheme == "twin_gelu" else "scale"


def _distance(y: torch.Tensor, y_fp: torch.Tensor, weight: torch.Tensor, group_axis: "int | None") -> torch.Tensor:
    err = weight * (y - y_fp).pow(2)
    if group_axis is None:
        return err.sum().reshape(1)
    return err.sum(dim=[d for d in range(err.dim()) if d != group_axis])


def _search_operand(data: OpData, operands, y_fp, weight, quantizers: dict[str, Quantizer], operand: str,
                    alphas: torch.Tensor) -> None:
    """Replace quantizers[operand]'s searched scale by the best alpha (per group) on the grid."""
    current = quantizers[operand]
    searched = _searched_field(current)
    if data.kind == "matmul":
        out_axis = HEAD_AXIS if current.granularity == "head" else None
        amax = data.amax("ab".index(operand))  # per head; one scale for a twin-uniform softmax
        base = (amax if out_axis is not None else amax.amax().reshape(1)) / current.qmax
    elif operand == "weight":
        axis = WEIGHT_GROUP_AXIS.get(data.kind)
        w = data.module.weight.detach()
        base = (_weight_amax(w, axis).reshape(_weight_scale_shape(w, axis)).clamp_min(MIN_SCALE) / current.qmax)
        out_axis = 1 if axis is not None else None  # conv / deconv outputs are (N, O, H, W)
    else:
        base = data.amax(0, positive=current.scheme == "twin_gelu") / current.qmax
        out_axis = None
    quantized = {name: _quantize(data, operands, name, q) for name, q in quantizers.items() if name != operand}
    best_err, best_scale = None, getattr(current, searched)
    for alpha in alphas:
        trial = Quantizer(**{**current.__dict__, searched: base * alpha})
        if trial.scheme == "twin_softmax":
            trial.split = float((trial.qmax - 1) * trial.scale.max())
        quantized[operand] = _quantize(data, operands, operand, trial)
        err = _distance(_run_quantized(data, quantized), y_fp, weight, out_axis)
        if best_err is None:
            best_err, best_scale = err, getattr(trial, searched).clone()
            continue
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better.reshape(best_scale.shape), getattr(trial, searched), best_scale)
    setattr(current, searched, best_scale)
    if current.scheme == "twin_softmax":
        current.split = float((current.qmax - 1) * current.scale.max())


def search_op(data: OpData, config: CalibrationConfig) -> dict[str, Quantizer]:
    """The alternating search of one op; returns its quantizers."""
    operands, grad2 = data.cat()
    weight = grad2 if grad2.sum() > 0 else torch.ones_like(grad2)  # unused outputs: plain MSE
    with torch.no_grad():
        y_fp = run_op(data.kind, data.module, operands)
        quantizers = initial_quantizers(data, config.bits, twin=True)
        alphas = torch.linspace(config.alpha_min, config.alpha_max, config.candidates)
        order = ("a", "b") if data.kind == "matmul" else ("weight", "input")
        for _ in range(config.rounds):
            before = [getattr(q, _searched_field(q)).clone() for q in quantizers.values()]
            for operand in order:
                if quantizers[operand].scheme == "twin_softmax" and config.alpha_max > 1:
                    # The low region of a probability never needs more than [0, 1].
                    _search_operand(data, operands, y_fp, weight, quantizers, operand,
                                    alphas[alphas <= 1.0])
                else:
                    _search_operand(data, operands, y_fp, weight, quantizers, operand, alphas)
            after = [getattr(q, _searched_field(q)) for q in quantizers.values()]
            if all(torch.equal(x, y) for x, y in zip(before, after)):
                break  # converged: another round would search the same grids again
    return quantizers


def search_scales(captured: dict[str, OpData], config: CalibrationConfig, checkpoint_sha256: str,
                  progress: Callable[[str], None] = lambda name: None) -> ScalesFile:
    """TinySAM PTQ scales for every captured op."""
    torch.manual_seed(config.seed)
    scales = ScalesFile(checkpoint_sha256, "tinysam-ptq", seed=config.seed)
    for name, data in captured.items():
        scales.ops[name] = OpScales(data.kind, search_op(data, config))
        progress(name)
    return scales


def minmax_scales(captured: dict[str, OpData], bits: int, checkpoint_sha256: str) -> ScalesFile:
    """Plain min/max: the same granularity, scale = max|x| / 2^(bits-1), no twin-uniform, no search."""
    ops = {name: OpScales(data.kind, initial_quantizers(data, bits, twin=False)) for name, data in captured.items()}
    return ScalesFile(checkpoint_sha256, "minmax", ops)
