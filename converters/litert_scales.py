"""TinySAM PTQ scales (named by PyTorch module) placed on a LiteRT float graph before w8a8 quantization.

Where each module of the scales file is in the graph: the CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV or
FULLY_CONNECTED op whose constant weight equals the module's weight channel by channel up to a factor
(litert-torch folds a Conv-BN pair's BatchNorm into the conv: each output channel times gamma /
sqrt(var + eps)). A module missing from the graph must be one whose output does not depend on the inputs
or does not reach the outputs (the converter folded it away: e.g. TinyViT's MBConv branches whose last
BatchNorm weight is zero, as in freshly initialised weights); any other missing module is an error.

What is set: each weight's per-channel min/max, so that ai-edge-quantizer's scale (max / 127) is the
PTQ scale (times |factor| where a BatchNorm was folded: the same integer grid), and the input range of
each op the recipe gives int8 inputs (w8a8: the encoder's fully-connected layers), on the tensor the
quantizer takes its range from (the op's input followed up through reshapes and transposes, which copy
their input's range). Every other activation is int16 in the recipe: those entries, the matmuls' among
them, keep their calibrated ranges and are counted as such. calibration/export.py decides what one
per-tensor range cannot hold (twin-uniform, head-wise); that and ranges merged on a tensor several ops
read are counted in the report. `verify` reads the quantized flatbuffer back and checks that every placed
scale arrived.
"""

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..calibration.capture import quantizable_ops
from ..calibration.export import OUTPUT_AXIS, per_channel_scale, weight_grid
from ..calibration.quantizers import qmax
from ..calibration.scales import ScalesFile
from ..errors import TinySamError
from .ptq_placement import (SCALE_TOLERANCE, WEIGHT_LEVEL, ScalesReport, activation_notes, channel_factors,
                            weight_rows)

# LiteRT layer op (ai-edge-quantizer's name): (weight input, activation input, axes turning the weight
# into PyTorch's layout: (O, I, kh, kw), (I, O, kh, kw) for TRANSPOSE_CONV, (O, I)), and the output
# channel axis of the LiteRT weight (ai-edge-quantizer's per-channel axis).
LAYER_OPS = {
    "CONV_2D": (1, 0, (0, 3, 1, 2), 0),
    "DEPTHWISE_CONV_2D": (1, 0, (3, 0, 1, 2), 3),
    "CONV_2D_TRANSPOSE": (1, 2, (3, 0, 1, 2), 0),
    "FULLY_CONNECTED": (1, 0, (0, 1), 0),
}
# ai-edge-quantizer gives these ops' outputs their input's range (SAME_AS_INPUT_SCALE in common_quantize).
SAME_RANGE_OPS = frozenset({"RESHAPE", "TRANSPOSE", "SLICE", "STRIDED_SLICE", "SPLIT", "PAD", "MIRROR_PAD",
                            "GATHER", "GATHER_ND", "BROADCAST_TO", "UNPACK", "SPACE_TO_DEPTH", "MAX_POOL_2D",
                            "AVERAGE_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "REDUCE_MIN"})
# ai-edge-quantizer's name of the int8 copy it makes of an int16 tensor that an int8 op reads
REQUANTIZED_SUFFIX = "_quantized"


@dataclass
class GraphPlan:
    """What one flatbuffer (all its signatures) takes from the scales file, by tensor name."""

    activation_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # range-giving tensor
    weight_scales: dict[str, tuple[np.ndarray, int, int]] = field(default_factory=dict)  # (scales, axis, rank)
    input_checks: dict[str, str] = field(default_factory=dict)  # op input tensor -> tensor giving its range

    def apply(self, qsvs: dict[str, Any]) -> dict[str, Any]:
        """Calibration results with each weight's min/max set so that max / 127 is the PTQ scale."""
        out = dict(qsvs)
        for name, (scale, axis, rank) in self.weight_scales.items():
            shape = [1] * rank
            shape[axis] = scale.size
            bound = (WEIGHT_LEVEL * scale).reshape(shape).astype(np.float32)
            out[name] = {"min": -bound, "max": bound}
        return out


@dataclass
class _Graph:
    """One subgraph of a flatbuffer: op names, tensors, the op producing each tensor."""

    model: Any
    index: int

    def __post_init__(self) -> None:
        from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

        self.fb = fb
        self.subgraph = self.model.subgraphs[self.index]
        codes = self.model.operatorCodes
        # ai-edge-quantizer's op names ('' for ops it does not quantize, e.g. SIN)
        self.op_names = [getattr(fb.TFL_OP_CODE_TO_NAME.get(max(codes[op.opcodeIndex].builtinCode,
                                                                codes[op.opcodeIndex].deprecatedBuiltinCode)),
                                 "value", "") for op in self.subgraph.operators]
        self.producer = {t: i for i, op in enumerate(self.subgraph.operators) for t in op.outputs}

    def name(self, tensor: int) -> str:
        return self.fb.get_tensor_name(self.subgraph.tensors[tensor])

    def data(self, tensor: int) -> "np.ndarray | None":
        return self.fb.get_tensor_data(self.subgraph.tensors[tensor], self.model.buffers)

    def shape(self, tensor: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.subgraph.tensors[tensor].shape)

    def range_source(self, tensor: int) -> int:
        """The tensor whose calibrated range the quantizer gives `tensor`."""
        while tensor in self.producer and self.op_names[self.producer[tensor]] in SAME_RANGE_OPS:
            tensor = self.subgraph.operators[self.producer[tensor]].inputs[0]
        return tensor


@dataclass
class Trace:
    """PyTorch's view of one signature: quantizable modules in call order, folded ones."""

    calls: list[str]
    folded: set[str]


def trace(wrapper: nn.Module, inputs: dict[str, torch.Tensor]) -> Trace:
    """Run the exported wrapper once with hooks on every conv / linear / matmul. A module whose output
    does not depend on the inputs or gets a zero gradient is one the converter can fold to a constant."""
    calls, outputs, handles = [], [], []

    def hook(name: str) -> Callable:
        def record(module, args, output) -> None:
            calls.append(name)
            outputs.append(output)
        return record

    for name, (_, module) in quantizable_ops(wrapper).items():
        handles.append(module.register_forward_hook(hook(name)))
    inputs = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
    try:
        with torch.enable_grad():
            result = wrapper(**inputs)
            gen = torch.Generator().manual_seed(0)
            loss = sum((v * torch.randn(v.shape, generator=gen)).sum() for v in result.values())
            live = [o for o in outputs if o.requires_grad]
            grads = dict(zip(map(id, live), torch.autograd.grad(loss, live, allow_unused=True)))
    finally:
        for handle in handles:
            handle.remove()
    folded = {name for name, o in zip(calls, outputs) if grads.get(id(o)) is None or not bool(grads[id(o)].any())}
    return Trace(calls, folded)


def _place_layers(graph: _Graph, references: dict) -> dict[str, list[tuple[int, np.ndarray]]]:
    """{module: [(op index, channel factors)]} for every layer op whose weight is a module's weight."""
    placed: dict[str, list] = {}
    for i, (op, kind) in enumerate(zip(graph.subgraph.operators, graph.op_names)):
        if kind not in LAYER_OPS:
            continue
        weight_input, _, to_torch, _ = LAYER_OPS[kind]
        weight = graph.data(op.inputs[weight_input])
        if weight is None or weight.dtype != np.float32:
            continue
        rows = weight_rows(weight.transpose(to_torch), 1 if kind == "CONV_2D_TRANSPOSE" else 0)
        matches = [(name, f) for name, ref in references.get(rows.shape, [])
                   if (f := channel_factors(rows, ref)) is not None]
        if len(matches) > 1:
            raise TinySamError(f"LiteRT {kind} op #{i} has the weights of several modules: "
                               f"{', '.join(name for name, _ in matches)}")
        for name, factors in matches:
            placed.setdefault(name, []).append((i, factors))
    return placed


def _plan_signature(graph: _Graph, traced: Trace, model: nn.Module, scales: ScalesFile, plan: GraphPlan,
                    report: ScalesReport, references: dict, int8_inputs: frozenset) -> None:
    modules = quantizable_ops(model)
    ran = [n for n in dict.fromkeys(traced.calls) if n in scales.ops]
    layers = _place_layers(graph, references)
    matmuls = [n for n in ran if modules[n][0] == "matmul" and n not in traced.folded]
    missing = [n for n in ran if n not in layers and n not in matmuls and n not in traced.folded]
    if missing:
        raise TinySamError(f"cannot place {len(missing)} scales file entries in the LiteRT graph (no op with "
                           f"their weights): {', '.join(missing[:5])}")
    report.folded |= {n for n in ran if n in traced.folded and n not in layers}
    # BATCH_MATMUL of two activations: int16 operands in every full-integer recipe
    report.activations_16_bit |= {(n, operand) for n in matmuls for operand in ("a", "b")}

    sources: dict[int, list[tuple[str, int]]] = {}  # range-giving tensor -> [(module, op input)]
    for name, places in layers.items():
        weight = modules[name][1].weight.detach()
        scale = per_channel_scale(scales, name, weight)[0].double().numpy()
        stored = scales.weight_scale(name)
        report.weights[name] = "per_channel" if stored.numel() in (1, scale.size) else "from_block_scales"
        codes = weight_grid(scales, name, weight)[0]
        report.clipped_codes[name] = int((codes == -qmax(scales.weight_quantizer(name).bits)).sum())
        for i, factors in places:
            op = graph.subgraph.operators[i]
            weight_input, activation_input, _, axis = LAYER_OPS[graph.op_names[i]]
            # A folded BatchNorm scales the channel; a dead channel (factor 0) has codes 0 under any scale.
            folded_scale = np.where(factors != 0, scale * np.abs(factors), scale)
            tensor = op.inputs[weight_input]
            plan.weight_scales[graph.name(tensor)] = (folded_scale, axis, len(graph.shape(tensor)))
            if graph.op_names[i] in int8_inputs:
                sources.setdefault(graph.range_source(op.inputs[activation_input]), []).append(
                    (name, op.inputs[activation_input]))
            else:
                report.activations_16_bit.add((name, "input"))

    for source, readers in sources.items():
        ranges = {m: scales.activation_range(m, "input") for m, _ in readers}
        for m in ranges:
            report.activations.setdefault((m, "input"), set()).update(activation_notes(scales, m, "input"))
        if len(set(ranges.values())) > 1:
            for m in ranges:
                report.activations[(m, "input")].add("merged_on_shared_tensor")
        low, high = min(r[0] for r in ranges.values()), max(r[1] for r in ranges.values())
        plan.activation_ranges[graph.name(source)] = (low, high)
        for _, tensor in readers:
            plan.input_checks[graph.name(tensor)] = graph.name(source)


def _trace_inputs(graph: _Graph, signature, img_size: int) -> dict[str, torch.Tensor]:
    """Inputs of a signature's shapes with every path live: random pixels / embeddings / masks, points
    inside the image, positive labels, has_mask_input 1 (0 would cut the mask-prompt branch)."""
    gen = torch.Generator().manual_seed(0)
    fill = {"image": lambda s: torch.rand(s, generator=gen) * 255,
            "point_coords": lambda s: torch.rand(s, generator=gen) * img_size,
            "point_labels": torch.ones, "has_mask_input": torch.ones}
    shapes = {_text(t.name): graph.shape(t.tensorIndex) for t in signature.inputs}
    return {name: fill.get(name, lambda s: torch.randn(s, generator=gen))(shape) for name, shape in shapes.items()}


def _text(value: "str | bytes") -> str:
    return value.decode() if isinstance(value, bytes) else value


def plan_graph(float_model: bytes, wrapper: nn.Module, scales: ScalesFile, img_size: int,
               report: ScalesReport, int8_inputs: frozenset) -> GraphPlan:
    """The plan for one flatbuffer, every signature of it running `wrapper`; int8_inputs: the layer ops
    (LAYER_OPS) whose input the recipe quantizes to int8 (tflite.INT8_ENCODER_OPS), the others' inputs
    being int16."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(bytearray(float_model))
    references: dict[tuple[int, ...], list] = {}
    for name, (kind, module) in quantizable_ops(wrapper).items():
        if kind != "matmul" and name in scales.ops:
            rows = weight_rows(module.weight.detach().float().numpy(), OUTPUT_AXIS[kind])
            references.setdefault(rows.shape, []).append((name, rows))
    plan = GraphPlan()
    for signature in model.signatureDefs:
        graph = _Graph(model, signature.subgraphIndex)
        traced = trace(wrapper, _trace_inputs(graph, signature, img_size))
        _plan_signature(graph, traced, wrapper, scales, plan, report, references, int8_inputs)
    return plan


def verify(quantized: bytes, plan: GraphPlan) -> None:
    """Raise unless every weight scale and activation range of the plan is in the quantized flatbuffer."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    tensors: dict[str, list] = {}
    buffers: dict[int, list] = {}
    for subgraph in fb.read_model(bytearray(quantized)).subgraphs:
        for tensor in subgraph.tensors:
            tensors.setdefault(fb.get_tensor_name(tensor), []).append(tensor)
            if tensor.buffer and tensor.quantization is not None and tensor.quantization.scale is not None:
                buffers.setdefault(tensor.buffer, []).append(tensor)
    for shared in buffers.values():  # the decoder's signatures share weights and biases: one set of codes
        if any(not np.array_equal(t.quantization.scale, shared[0].quantization.scale) for t in shared[1:]):
            raise TinySamError(f"LiteRT tensors {', '.join(fb.get_tensor_name(t) for t in shared)} share "
                               "one buffer but not one scale")

    def quantization(name: str, int8_read: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        """(scale, zero point) of the tensors named `name`; int8_read: of the int8 tensors an op reads as
        `name` (the tensor itself, or the quantizer's int8 copy of it where an int16 op produces it)."""
        names, int8 = ((name, name + REQUANTIZED_SUFFIX) if int8_read else (name,)), fb.TENSOR_TYPE_TO_CODE["INT8"]
        found = [(np.asarray(t.quantization.scale), np.asarray(t.quantization.zeroPoint))
                 for n in names for t in tensors.get(n, []) if (t.type == int8 or not int8_read)
                 and t.quantization is not None and t.quantization.scale is not None]
        if not found:
            raise TinySamError(f"LiteRT quantization left {name!r} without {'int8' if int8_read else 'integer'} "
                               "parameters")
        return found

    for name, (scale, _, _) in plan.weight_scales.items():
        for got, _ in quantization(name):
            if got.shape != scale.shape or not np.allclose(got, scale, rtol=SCALE_TOLERANCE, atol=0):
                raise TinySamError(f"the int8 weight scales of {name!r} are not the PTQ scales")
    for name, source in plan.input_checks.items():
        want_scale, want_zero = activation_params(*plan.activation_ranges[source])
        for got_scale, got_zero in quantization(name, int8_read=True):
            if not (np.allclose(got_scale, want_scale, rtol=SCALE_TOLERANCE, atol=0) and np.all(got_zero == want_zero)):
                raise TinySamError(f"the quantized range of {name!r} is not the PTQ range")


class _SharedBufferRewrites(logging.Filter):
    """ai-edge-quantizer warns whenever a buffer the decoder's two signatures share (weights, biases) is
    written a second time; with PTQ scales both writes hold the same codes (`verify` checks the scales)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Quantized data for tensor")


@contextlib.contextmanager
def quiet_shared_buffer_rewrites() -> Iterator[None]:
    root = logging.getLogger()
    notice = _SharedBufferRewrites()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)


def activation_params(low: float, high: float) -> tuple[float, int]:
    """(scale, zero point) of an asymmetric int8 tensor covering [low, high] (and 0), as LiteRT stores them."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max(high - low, 1e-9) / 255
    return scale, int(np.rint(-128 - low / scale))
