"""What each CoreML precision does to the weights (and, for w8a8, activations), with a per-layer report.

int8 / w8a8 weights are put on their int8 grid in PyTorch (coreml_weights) so the package holds the
exact codes the scales imply; w8a8 activation quantize/dequantize pairs go in with coremltools' own
graph pass, fed with activation ranges from a TinySAM scales file instead of a macOS-only calibration run.

Palettes come three ways (PALETTE_METHODS): plain k-means LUTs from coremltools.optimize.coreml after
conversion; sensitivity-weighted k-means (coremltools.optimize.torch's SKMPalettizer) weighing each
weight by the squared task-loss gradient `calibrate` stored in the scales file; or TinySAM's own grid
(a LUT of integer codes times the scales file's per-channel scale). The last two are fitted in PyTorch,
and coremltools turns the LUT buffers they leave on each layer into the package's palettes. Below 8 bits,
the k-means methods keep the layers of WIDE_PALETTE_LAYERS at WIDE_PALETTE_BITS.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..calibration.export import activation_ranges
from ..calibration.scales import read_scales
from ..errors import TinySamError
from ..modeling import TinySam
from .config import W8A8_FLOAT_INPUTS, WIDE_PALETTE_BITS, WIDE_PALETTE_LAYERS, ConvertConfig
from .coreml_package import load_program, program_ops
from .coreml_weights import (attach_grid_palettes, attach_int8_weights, channel_axis, folded_copy, max_abs_grids,
                             per_channel, quantized_layers, scales_file_grids)

LAYER_OPS = ("conv", "linear", "conv_transpose")  # the MIL ops whose weights are compressed
PALETTE_GROUP_SIZE = 16  # output channels sharing one LUT (per-grouped-channel, iOS18)
MIN_PALETTIZED_ELEMENTS = 2048  # coremltools' default: smaller constants (biases, tiny convs) stay float
PE_TABLE_PREFIX = "b_dense_pe_"  # exported names of coreml.Decoder's dense_pe buffers (b_<module path>)
PALETTE_METHODS = {
    "kmeans": "k-means LUTs (coremltools.optimize.coreml.palettize_weights)",
    "sensitive-kmeans": "sensitivity-weighted k-means LUTs (coremltools.optimize.torch SKMPalettizer), "
                        "weights weighed by the scales file's squared task-loss gradients",
    "ptq-grid": "TinySAM's PTQ grid: a LUT of the integer codes times the scales file's per-channel scale",
}
SENSITIVITY_FLOOR = 1e-6  # relative to a layer's largest: tiny weights that never reach 0 keep k-means stable


@dataclass
class CompressionPlan:
    """The torch model to export, and how to compress each converted package."""

    model: TinySam
    summary: dict[str, Any]
    palette_bits: Optional[int] = None
    palette_ops: tuple[str, ...] = LAYER_OPS  # what plain k-means palettizes after conversion
    wide_layers: tuple[str, ...] = ()  # torch layers whose palettes take WIDE_PALETTE_BITS instead
    activation_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # layer -> input range
    weight_report: list[dict[str, Any]] = field(default_factory=list)  # int8: per torch layer


def int8_report(model: TinySam, grids: dict) -> list[dict[str, Any]]:
    """Relative RMS error of each int8 layer against its float weight (BatchNorm folded, as exported)."""
    folded, factors = folded_copy(model)
    layers = quantized_layers(folded)
    report = []
    for name, (codes, scale) in grids.items():
        w = layers[name].weight.detach()
        axis = channel_axis(layers[name])
        dequant = codes.float() * per_channel(scale, w, axis)
        if name in factors:
            dequant = dequant * per_channel(factors[name], w, axis)
        error = float(torch.linalg.vector_norm(dequant - w) / torch.linalg.vector_norm(w).clamp_min(1e-12))
        report.append({"layer": name, "bits": 8, "granularity": "per_output_channel", "relative_rms_error": error})
    return report


def plan_for(model: TinySam, config: ConvertConfig, checkpoint_sha256: str) -> CompressionPlan:
    precision = config.precision
    if precision in ("fp16", "fp32"):
        return CompressionPlan(folded_copy(model)[0], {"weights": f"float{precision[2:]}"})
    if precision.startswith("palettize"):
        return palette_plan(model, config, int(precision.removeprefix("palettize")), checkpoint_sha256)
    if config.palette is not None:
        raise TinySamError("--palette applies to --precision palettize4 / palettize6 / palettize8 only")
    if precision == "w8a8" and config.scales is None:
        raise TinySamError("w8a8 needs activation scales: pass --scales from 'tinysam-mobile calibrate'")
    scales = read_scales(config.scales, checkpoint_sha256) if config.scales is not None else None
    grids = scales_file_grids(model, scales) if scales is not None else max_abs_grids(model)
    summary = {"weights": "int8 codes, symmetric, one scale per output channel (constexpr_affine_dequantize)",
               "weight_scales": f"scales file {Path(config.scales).name} ({scales.method})" if scales else
               "max-abs per output channel (max|w| / 127)", "quantized_layers": len(grids),
               "other_constants": f"int8 per tensor (max-abs) above {MIN_PALETTIZED_ELEMENTS} elements: attention-bias "
                                  "tables; positional-encoding tables and smaller ones (biases, norms) float16"}
    ranges = {}
    if precision == "w8a8":
        ranges = {name: operands["input"] for name, operands in activation_ranges(scales).items()
                  if "input" in operands and not W8A8_FLOAT_INPUTS.search(name)}
        summary["activations"] = ("int8 quantize/dequantize before every conv / linear input, symmetric per "
                                  "tensor, covering the scales file's activation range (iOS17 quantize ops), "
                                  "but the encoder's convolution stage, patch merging and local convolutions "
                                  "(float inputs)")
    return CompressionPlan(attach_int8_weights(model, grids), summary, activation_ranges=ranges,
                           weight_report=int8_report(model, grids))


def palette_plan(model: TinySam, config: ConvertConfig, bits: int, checkpoint_sha256: str) -> CompressionPlan:
    method = config.palette or ("sensitive-kmeans" if config.scales is not None else "kmeans")
    if method not in PALETTE_METHODS:
        raise TinySamError(f"unknown --palette {method!r}; choose one of {', '.join(PALETTE_METHODS)}")
    summary = {"weights": f"{bits}-bit palettes: {PALETTE_METHODS[method]}", "palette_method": method,
               "ops": list(LAYER_OPS), "other_weights": "float16"}
    wide = wide_palette_layers(model, bits) if method != "ptq-grid" else ()
    if wide:
        summary["wide_layers"] = (f"{len(wide)} layers (the encoder's convolution stage and patch merging) take "
                                  f"{WIDE_PALETTE_BITS}-bit palettes")
    if method == "kmeans":
        if config.scales is not None:
            raise TinySamError("--palette kmeans uses no scales file; drop --scales or choose sensitive-kmeans / ptq-grid")
        return CompressionPlan(folded_copy(model)[0], {
            **summary, "granularity": "per_grouped_channel", "group_size": PALETTE_GROUP_SIZE,
            "min_elements": MIN_PALETTIZED_ELEMENTS}, palette_bits=bits, wide_layers=wide)
    if config.scales is None:
        raise TinySamError(f"--palette {method} needs --scales from 'tinysam-mobile calibrate'")
    scales = read_scales(config.scales, checkpoint_sha256)
    weight_bits = scales.bits["weight"]
    summary["scales"] = f"{Path(config.scales).name} ({scales.method}, W{weight_bits})"
    if method == "ptq-grid":
        if weight_bits != bits:
            raise TinySamError(f"--palette ptq-grid holds the scales file's grid: palettize{bits} needs a "
                               f"--bits {bits} scales file, {config.scales} is W{weight_bits}")
        grids = scales_file_grids(model, scales)
        palettized = attach_grid_palettes(model, grids, bits)
        return CompressionPlan(palettized, {**summary, "granularity": "one LUT per layer, scale per output channel",
                                            "palettized_layers": len(grids)}, palette_bits=bits, palette_ops=(),
                               weight_report=torch_weight_report(model, palettized, grids, bits))
    palettized, layers = sensitive_palettes(model, scales, bits, wide)
    return CompressionPlan(palettized, {**summary, "granularity": "per_grouped_channel",
                                        "group_size": PALETTE_GROUP_SIZE, "min_elements": MIN_PALETTIZED_ELEMENTS,
                                        "sensitivity_weighted_layers": len(layers),
                                        "plain_kmeans": "after conversion, as --palette kmeans: ConvTranspose2d "
                                                        "(SKMPalettizer does not take it) and layers no gradient "
                                                        "reached (zero sensitivity carries no information)"},
                           palette_bits=bits, wide_layers=wide,
                           weight_report=torch_weight_report(model, palettized, layers, bits, wide))


def wide_palette_layers(model: TinySam, bits: int) -> tuple[str, ...]:
    """The layers palettized at WIDE_PALETTE_BITS when the palettes are narrower (see WIDE_PALETTE_LAYERS)."""
    if bits >= WIDE_PALETTE_BITS:
        return ()
    return tuple(name for name in quantized_layers(model) if WIDE_PALETTE_LAYERS.search(name))


def layer_sensitivities(model: TinySam, scales, factors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{layer name: importance of each weight of the BatchNorm-folded layer, in (0, 1]} for the layers
    with a non-zero sensitivity. Folding scales a channel's weights by f, so their gradients by 1 / f:
    the squared gradients divide by f^2 (factors: folded_copy's)."""
    layers = quantized_layers(model)
    importances = {}
    for name, sensitivity in scales.weight_sensitivity.items():
        if name in factors:
            sensitivity = sensitivity / per_channel(factors[name], sensitivity, channel_axis(layers[name])).pow(2)
        if sensitivity.max() > 0:
            importances[name] = (sensitivity / sensitivity.max()).clamp_min(SENSITIVITY_FLOOR)
    return importances


def sensitive_palettes(model: TinySam, scales, bits: int, wide: tuple[str, ...] = ()) -> tuple[TinySam, list[str]]:
    """A BatchNorm-folded copy whose large conv and linear weights coremltools' SKMPalettizer has fitted
    to `bits`-bit LUTs (WIDE_PALETTE_BITS for the `wide` layers; one LUT per 16 output channels), each
    weight weighed by its sensitivity."""
    import tempfile

    import coremltools.optimize.torch.palettization as ctp

    if not scales.weight_sensitivity:
        raise TinySamError("the scales file holds no weight sensitivities (written by an older calibrate, or "
                           "imported from Q-TinySAM): re-run 'tinysam-mobile calibrate' for sensitive-kmeans")
    folded, factors = folded_copy(model)
    importances = layer_sensitivities(model, scales, factors)
    names = [name for name, layer in quantized_layers(folded).items()  # the others: see palette_plan
             if layer.weight.numel() > MIN_PALETTIZED_ELEMENTS and name in importances
             and not isinstance(layer, torch.nn.ConvTranspose2d)]
    if not names:
        return folded, names
    layer_configs = {width: ctp.ModuleSKMPalettizerConfig(n_bits=width, granularity="per_grouped_channel",
                                                          group_size=PALETTE_GROUP_SIZE)
                     for width in (bits, WIDE_PALETTE_BITS)}
    config = ctp.SKMPalettizerConfig(global_config=None, module_name_configs={
        name: layer_configs[WIDE_PALETTE_BITS if name in wide else bits] for name in names})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sensitivity.pt"
        torch.save({f"{name}.weight": importances[name] for name in names}, path)
        palettized = ctp.SKMPalettizer(folded, config).compress(sensitivity_path=str(path))
    return palettized, names


def torch_weight_report(model: TinySam, palettized: TinySam, layers, bits: int,
                        wide: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Relative RMS and max error of each palettized layer against its float (folded) weight."""
    reference, compressed = quantized_layers(folded_copy(model)[0]), quantized_layers(palettized)
    report = []
    for name in layers:
        w, wp = reference[name].weight.detach(), compressed[name].weight.detach()
        report.append({"layer": name, "bits": WIDE_PALETTE_BITS if name in wide else bits, "relative_rms_error":
                       float(torch.linalg.vector_norm(wp - w) / torch.linalg.vector_norm(w).clamp_min(1e-12)),
                       "max_abs_error": float((wp - w).abs().max())})
    return report


def layer_weights(mlmodel, op_types: tuple[str, ...] = LAYER_OPS) -> dict[str, tuple[str, np.ndarray]]:
    """{conv / linear op name: (weight name, float weight)}, constexpr-compressed weights decompressed."""
    import coremltools.optimize.coreml as cto

    return {op.name: (op.weight.op.name, np.asarray(op.weight.val, np.float32))
            for op in program_ops(load_program(cto.decompress_weights(mlmodel)), op_types)}


def palettize(mlmodel, bits: int, op_types: tuple[str, ...] = LAYER_OPS, wide_ops: frozenset[str] = frozenset()):
    """Plain k-means palettes for the weights of `op_types`; WIDE_PALETTE_BITS for the MIL ops `wide_ops`."""
    import coremltools.optimize.coreml as cto

    def palette(width: int):
        return cto.OpPalettizerConfig(mode="kmeans", nbits=width, granularity="per_grouped_channel",
                                      group_size=PALETTE_GROUP_SIZE, weight_threshold=MIN_PALETTIZED_ELEMENTS)

    wide = {name: palette(WIDE_PALETTE_BITS) for name in wide_ops}
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(op_type_configs={op: palette(bits) for op in op_types},
                                                                 op_name_configs=wide))


def reconstruction_report(before, after, bits: int, op_types: tuple[str, ...] = LAYER_OPS,
                          wide_ops: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Per palettized layer: relative RMS and max error of the LUT weights against the float ones."""
    original, compressed = layer_weights(before, op_types), layer_weights(after, op_types)
    already = {op.name for op in program_ops(load_program(before), op_types) if op.weight.op.op_type != "const"}
    report = []
    for op_name, (weight_name, w) in original.items():
        if w.size <= MIN_PALETTIZED_ELEMENTS or op_name in already:  # coremltools compresses larger float weights
            continue
        wp = compressed[op_name][1]
        report.append({"op": op_name, "weight": weight_name, "shape": list(w.shape),
                       "bits": WIDE_PALETTE_BITS if op_name in wide_ops else bits,
                       "granularity": f"per_grouped_channel/{PALETTE_GROUP_SIZE}",
                       "relative_rms_error": float(np.linalg.norm(wp - w) / max(np.linalg.norm(w), 1e-12)),
                       "max_abs_error": float(np.abs(wp - w).max())})
    return report


def mil_layer_names(program, layer_names) -> dict[str, str]:
    """{MIL conv / linear op name: torch layer name}, matched through the weight's name, which
    torch.export derives from the parameter path (p_[model_]<path with _>_weight...)."""
    keys = {name.replace(".", "_") + "_weight": name for name in layer_names}
    matched = {}
    for op in program_ops(program, LAYER_OPS):
        if op.weight.op is not None:
            found = re.match(r"p_(?:model_)?(.+?_weight)", op.weight.op.name)
            if found and found.group(1) in keys:
                matched[op.name] = keys[found.group(1)]
    return matched


def quantize_activations(mlmodel, ranges: dict[str, tuple[float, float]]):
    """Insert int8 quantize/dequantize before the input of every conv / linear with a known range,
    through coremltools' insert_prefix_quantize_dequantize_pair pass (what linear_quantize_activations
    runs after its macOS-only calibration)."""
    import coremltools.optimize.coreml as cto
    from coremltools import _SPECIFICATION_VERSION_IOS_17
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils

    program = mlmodel._mil_program
    names = mil_layer_names(program, ranges)
    stats = {}
    op_configs = {}
    for op in program_ops(program, LAYER_OPS):
        if op.name in names:
            low, high = ranges[names[op.name]]
            stats[op.x.name] = {"rmin": low, "rmax": high}
            op_configs[op.name] = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
    config = cto.OptimizationConfig(op_name_configs=op_configs)
    insert = PASS_REGISTRY["compression::insert_prefix_quantize_dequantize_pair"]
    insert.set_options([PassOption("config", config), PassOption("activation_stats", stats)])
    return model_utils._apply_graph_pass(
        mlmodel, [insert, PASS_REGISTRY["common::dequantize_quantize_pair_elimination"]],
        spec_version=_SPECIFICATION_VERSION_IOS_17, pymil_load_func=milproto_load, skip_model_load=True), len(op_configs)


def quantize_other_constants(mlmodel):
    """int8 for the large float constants that are no layer's weight (the encoder's gathered
    attention-bias tables): coremltools' max-abs symmetric quantizer. The decoder's positional-encoding
    tables stay float16: int8 would save 32 KB and raise the encoding's max error from 1.1e-3 to
    1.2e-2 (the whole encoding as one int8 constant had 4.6e-3)."""
    import coremltools.optimize.coreml as cto

    config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_tensor",
                                         weight_threshold=MIN_PALETTIZED_ELEMENTS)
    keep = {op.name: None for op in program_ops(load_program(mlmodel), ("const",))
            if op.name.startswith(PE_TABLE_PREFIX)}
    return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=config, op_name_configs=keep))


def compress(plan: CompressionPlan, mlmodel, role: str) -> tuple[Any, list[dict[str, Any]]]:
    """The package compressed as planned, and the per-layer report of what happened to its weights."""
    report = [r for r in plan.weight_report if r["layer"].split(".")[0] in ROLE_PREFIXES[role]]
    if plan.palette_bits is not None:  # palettes fitted in PyTorch are in the package already
        if plan.palette_ops:
            wide_ops = frozenset(mil_layer_names(load_program(mlmodel), plan.wide_layers))
            palettized = palettize(mlmodel, plan.palette_bits, plan.palette_ops, wide_ops)
            report += reconstruction_report(mlmodel, palettized, plan.palette_bits, plan.palette_ops, wide_ops)
            mlmodel = palettized
        return mlmodel, report
    if plan.weight_report:
        mlmodel = quantize_other_constants(mlmodel)
    if plan.activation_ranges:
        mlmodel, count = quantize_activations(mlmodel, plan.activation_ranges)
        if count == 0:
            raise TinySamError(f"no {role} layer matched the scales file's activation ranges")
    return mlmodel, report


ROLE_PREFIXES = {"encoder": ("image_encoder",), "decoder": ("prompt_encoder", "mask_decoder"),
                 "decoder_batch": ("prompt_encoder", "mask_decoder")}
