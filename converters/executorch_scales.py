"""TinySAM PTQ scales placed on the observers of a PT2E-prepared graph (ExecuTorch XNNPACK w8a8, `--scales`).

Where each module of the scales file is in the graph: the aten conv2d / conv_transpose2d / linear / matmul (bmm)
node that torch.export recorded as called from that module (`nn_module_stack`). The quantizer's filter
(executorch.quantized_node) leaves the weights of the layers outside the recipe float: those are counted
(`left_in_float_by_recipe`), not placed. A quantized layer's weight argument is an observer of the weight
as prepare_pt2e left it (checked to be the module's weight up to a per-channel factor, which a folded
BatchNorm would bring; the recipe's layers have none), its activation arguments observers of the input
tensors. One observer instance can sit under several names: XNNPACK's quantizer shares the qparams of a
copy op's input and output (transpose, permute, reshape), so both observers are the same module; the plan
keys each instance by its first name and `apply` replaces it under all of them (replacing one name would
give the copy op different input and output qparams, which XNNPACK's static transpose refuses when the
program loads).

What is set, after calibration and before convert_pt2e: the weight observer's per-channel min / max, so
that XNNPACK's symmetric int8 scale (max / 127) is the PTQ scale (times |factor|: the same integer grid);
each activation observer is replaced by a MinMaxObserver of the same int8 format holding the module's
(min, max), the union where several modules read one tensor. `verify` reads the converted graph back:
every placed weight's dequantize carries the placed scales, every placed activation's the scale and zero
point of its range.
"""

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..calibration.capture import quantizable_ops
from ..calibration.export import per_channel_scale, weight_grid
from ..calibration.quantizers import qmax
from ..calibration.scales import ScalesFile
from ..errors import TinySamError
from .ptq_placement import (SCALE_TOLERANCE, WEIGHT_LEVEL, ScalesReport, activation_notes, channel_factors,
                            weight_rows)

# aten op -> (activation operands of the scales file, in argument order; index of the weight argument)
LAYER_NODES = {
    torch.ops.aten.conv2d.default: (("input",), 1),
    torch.ops.aten.conv_transpose2d.input: (("input",), 1),
    torch.ops.aten.linear.default: (("input",), 1),
    torch.ops.aten.matmul.default: (("a", "b"), None),
    torch.ops.aten.bmm.default: (("a", "b"), None),  # export_modules.BmmMatMul
}


@dataclass
class ObserverPlan:
    """What one prepared graph takes from the scales file, by observer module name."""

    weight_bounds: dict[str, np.ndarray] = field(default_factory=dict)  # observer -> per-channel max |w|
    activation_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # observer -> (min, max)
    # (module, node argument) -> observer, for the read-back
    weight_nodes: dict[tuple[str, int], str] = field(default_factory=dict)
    activation_nodes: dict[tuple[str, int], str] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)  # observer name -> every name of its instance


def _observer_names(prepared: torch.fx.GraphModule) -> dict[str, list[str]]:
    """{name: every attribute name of the same observer instance, the first one first}. `_modules`, not
    named_children(), which lists a shared instance once."""
    by_instance: dict[int, list[str]] = {}
    for name, module in prepared._modules.items():
        if "activation_post_process" in name:
            by_instance.setdefault(id(module), []).append(name)
    return {name: names for names in by_instance.values() for name in names}


def _module_of(node: torch.fx.Node) -> "str | None":
    stack = node.meta.get("nn_module_stack")
    return list(stack.values())[-1][0] if stack else None


def _layer_nodes(graph: torch.fx.GraphModule, names) -> list[tuple[str, torch.fx.Node]]:
    return [(module, node) for node in graph.graph.nodes
            if node.op == "call_function" and node.target in LAYER_NODES and (module := _module_of(node)) in names]


def _observer(arg: Any) -> "str | None":
    """The observer module called on this argument, or None where the quantizer left it in float."""
    if isinstance(arg, torch.fx.Node) and arg.op == "call_module" and "activation_post_process" in str(arg.target):
        return str(arg.target)
    return None


def plan_observers(prepared: torch.fx.GraphModule, model: nn.Module, scales: ScalesFile,
                   report: ScalesReport) -> ObserverPlan:
    """Find every scales file module in the prepared graph and what its observers must hold."""
    modules = quantizable_ops(model)
    plan = ObserverPlan(names=_observer_names(prepared))

    def canonical(arg: Any) -> "str | None":
        """The first name of the observer instance called on arg (None: left in float)."""
        observer = _observer(arg)
        return plan.names[observer][0] if observer is not None else None

    for module, node in _layer_nodes(prepared, scales.ops):
        kind, layer = modules[module]
        operands, weight_arg = LAYER_NODES[node.target]
        weight_observer = canonical(node.args[weight_arg]) if weight_arg is not None else None
        if weight_observer is None:
            # Outside the recipe's layers (quantized_node: layers with weights only). An operand of such a layer
            # can still pass an observer, its producer's output one (a linear's output feeding a matmul).
            report.left_float.add(module)
            continue
        weight_node = node.args[weight_arg].args[0]
        observed = functools.reduce(getattr, weight_node.target.split("."), prepared).detach().float().numpy()
        scale, axis = per_channel_scale(scales, module, layer.weight)
        if getattr(prepared, weight_observer).ch_axis != axis:
            raise TinySamError(f"the int8 graph quantizes {module!r} along axis "
                               f"{getattr(prepared, weight_observer).ch_axis}, the scales file along {axis}")
        reference = weight_rows(layer.weight.detach().float().numpy(), axis)
        factors = channel_factors(weight_rows(observed, axis), reference)
        if factors is None:
            raise TinySamError(f"the int8 graph's weight of {module!r} is not the module's weight up to a "
                               "per-channel factor")
        bound = WEIGHT_LEVEL * scale.double().numpy() * np.abs(factors)
        plan.weight_bounds[weight_observer] = bound.astype(np.float32)
        plan.weight_nodes[(module, weight_arg)] = weight_observer
        stored = scales.weight_scale(module)
        report.weights[module] = "per_channel" if stored.numel() in (1, scale.numel()) else "from_block_scales"
        codes = weight_grid(scales, module, layer.weight)[0]
        report.clipped_codes[module] = int((codes == -qmax(scales.weight_quantizer(module).bits)).sum())
        for index, operand in enumerate(operands):
            notes = activation_notes(scales, module, operand)
            observer = canonical(node.args[index])
            if observer is None:
                raise TinySamError(f"the int8 graph holds the {operand} of {module!r} unquantized")
            low, high = scales.activation_range(module, operand)
            if observer in plan.activation_ranges:
                seen = plan.activation_ranges[observer]
                low, high = min(low, seen[0]), max(high, seen[1])
                notes.add("merged_on_shared_tensor")
            plan.activation_ranges[observer] = (low, high)
            plan.activation_nodes[(module, index)] = observer
            report.activations[(module, operand)] = notes
    return plan


def apply(prepared: torch.fx.GraphModule, plan: ObserverPlan) -> None:
    """Set the planned weight bounds and replace each planned activation observer, under every name of its
    instance, by one holding its range."""
    from torchao.quantization.pt2e.observer import MinMaxObserver

    for name, bound in plan.weight_bounds.items():
        observer = getattr(prepared, name)
        observer.min_val = torch.from_numpy(-bound)
        observer.max_val = torch.from_numpy(bound)
    for name, (low, high) in plan.activation_ranges.items():
        old = getattr(prepared, name)
        fixed = MinMaxObserver(dtype=old.dtype, qscheme=old.qscheme, quant_min=old.quant_min,
                               quant_max=old.quant_max, eps=old.eps)
        fixed.min_val, fixed.max_val = torch.tensor(float(low)), torch.tensor(float(high))
        for alias in plan.names[name]:
            setattr(prepared, alias, fixed)


def expected_params(prepared: torch.fx.GraphModule, plan: ObserverPlan) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{observer: (scale, zero point)} the planned observers give (read before convert_pt2e removes them)."""
    return {name: tuple(np.asarray(t) for t in getattr(prepared, name).calculate_qparams())
            for name in (*plan.weight_bounds, *plan.activation_ranges)}


def _constant(graph: torch.fx.GraphModule, arg: Any) -> np.ndarray:
    if isinstance(arg, torch.fx.Node):
        return functools.reduce(getattr, arg.target.split("."), graph).detach().numpy()
    return np.asarray(arg)


def verify(converted: torch.fx.GraphModule, plan: ObserverPlan, expected: dict) -> None:
    """Raise unless each placed weight and activation of the converted graph is dequantized with the scale
    and zero point its planned observer gave."""
    placed = {**plan.weight_nodes, **plan.activation_nodes}
    nodes = {(module, index): node.args[index] for module, node in _layer_nodes(converted, {m for m, _ in placed})
             for index in range(len(node.args))}
    for (module, index), observer in placed.items():
        dequantize = nodes.get((module, index))
        if not isinstance(dequantize, torch.fx.Node) or "dequantize" not in str(dequantize.target):
            raise TinySamError(f"the int8 graph left argument {index} of {module!r} unquantized")
        scale, zero = _constant(converted, dequantize.args[1]), _constant(converted, dequantize.args[2])
        want_scale, want_zero = expected[observer]
        if not (np.allclose(scale, want_scale, rtol=SCALE_TOLERANCE, atol=0) and np.all(zero == want_zero)):
            raise TinySamError(f"the int8 {'weight' if (module, index) in plan.weight_nodes else 'input'} scales "
                               f"of {module!r} are not the PTQ scales")
