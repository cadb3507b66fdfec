"""What is inside a converted model: ops, precision, compressed weights, size and mobile-accelerator risks.

Risks are heuristics from what breaks Neural Engine / NPU compilation in practice (REFERENCE.md
section 6): tensors above rank 5, dynamic shapes, float32 compute (the ANE computes in float16
only) and ops that commonly fall back to the CPU or GPU. Xcode's performance report has the last word.
"""

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError
from .coreml_package import (import_coremltools, load_program, load_spec, main_operations, op_histogram,
                             program_ops, tensor_specs)
from .manifest import MANIFEST_NAME, path_size

MAX_RANK = 5
# Ops that commonly leave the Neural Engine (control flow, sorting, scatter/gather-heavy, random).
FALLBACK_OPS = {"cond", "while_loop", "topk", "argsort", "non_maximum_suppression", "cumsum", "einsum",
                "scatter", "scatter_nd", "scatter_along_axis", "gather_nd", "random_uniform",
                "random_normal", "random_bernoulli", "random_categorical", "band_part", "reverse_sequence"}
FLOAT32_EXEMPT_OPS = {"const", "cast", "constexpr_affine_dequantize", "constexpr_lut_to_dense",
                      "constexpr_blockwise_shift_scale", "constexpr_sparse_to_dense"}
SPEC_TO_TARGET = {7: "iOS16", 8: "iOS17", 9: "iOS18", 10: "iOS26"}
FLOAT32 = 11  # MIL.proto DataType
DTYPES = {1: "bool", 10: "float16", FLOAT32: "float32", 12: "float64", 21: "int8", 22: "int16", 23: "int32",
          24: "int64", 25: "int4", 31: "uint8", 35: "uint4", 38: "uint6"}


def _output_types(op):
    for output in op.outputs:
        if output.type.WhichOneof("type") == "tensorType":
            yield output.name, output.type.tensorType


def _granularity(child_type: str, params: dict[str, np.ndarray], weight_shape: tuple) -> tuple[int, str]:
    """(bits, granularity) of one constexpr-compressed weight from its stored parameters."""
    if child_type == "constexpr_lut_to_dense":
        lut = params["lut"]
        groups = int(np.prod(lut.shape[:-2])) if lut.ndim > 2 else 1
        bits = int(math.log2(lut.shape[-2] if lut.ndim > 2 else lut.size))
        if groups <= 1:
            return bits, "per_tensor"
        channel_axis = next((i for i, n in enumerate(lut.shape[:-2]) if n > 1), 0)
        return bits, f"per_grouped_channel ({weight_shape[channel_axis] // groups} channels per LUT)"
    data = params.get("quantized_data", params.get("data"))
    bits = 8 if data is None else int(np.iinfo(data.dtype).bits)
    scale = params.get("scale")
    if scale is None or scale.size == 1:
        return bits, "per_tensor"
    if scale.ndim <= 1:
        return bits, "per_channel"
    blocks = [w // s for w, s in zip(weight_shape, scale.shape) if s > 1 and w // s > 1]
    return bits, "per_block" if blocks else "per_channel"


def compressed_weights(path: Path) -> list[dict[str, Any]]:
    """Every constexpr-compressed weight: op type, shape, bits, granularity."""
    ct = import_coremltools()
    program = load_program(ct.models.MLModel(str(path), skip_model_load=True))
    report = []
    for op in program_ops(program):
        consumers = {child.op_type for child in op.outputs[0].child_ops}
        if op.op_type.startswith("constexpr_") and "constexpr_lut_to_dense" not in consumers:
            params = {k: np.asarray(v.val) for k, v in op.inputs.items() if v.val is not None}
            if op.op_type == "constexpr_lut_to_dense" and "lut" not in params:
                # a LUT computed by another constexpr (ptq-grid: integer codes times each channel's scale)
                params["lut"] = np.empty(op.inputs["lut"].shape, np.float16)
            shape = tuple(op.outputs[0].shape)
            bits, granularity = _granularity(op.op_type, params, shape)
            report.append({"weight": op.outputs[0].name, "op": op.op_type, "shape": list(shape), "bits": bits,
                           "granularity": granularity})
    return report


def neural_engine_risks(spec) -> list[str]:
    risks = []
    high_rank, dynamic, fp32_ops = [], [], Counter()
    for op in main_operations(spec):
        for name, tensor in _output_types(op):
            if tensor.rank > MAX_RANK:
                high_rank.append(f"{name} (rank {tensor.rank}, {op.type})")
            if any(d.WhichOneof("dimension") == "unknown" for d in tensor.dimensions):
                dynamic.append(name)
            if tensor.dataType == FLOAT32 and op.type not in FLOAT32_EXEMPT_OPS:
                fp32_ops[op.type] += 1
    if high_rank:
        risks.append(f"{len(high_rank)} tensors above rank {MAX_RANK}: " + ", ".join(high_rank[:5]))
    flexibility = {f.name: f.type.multiArrayType.WhichOneof("ShapeFlexibility") for f in spec.description.input}
    ranged = [name for name, kind in flexibility.items() if kind == "shapeRange"]
    # Enumerated shapes are each compiled ahead and can run on the Neural Engine (the symbolic dimensions they
    # leave in the program are fixed per shape); a ranged input runs there at its default shape only.
    if dynamic and (ranged or "enumeratedShapes" not in flexibility.values()):
        risks.append(f"{len(dynamic)} tensors with dynamic shapes: " + ", ".join(dynamic[:5]))
    for name in ranged:
        risks.append(f"input {name} has a ranged shape (the Neural Engine runs its default shape only)")
    if fp32_ops:
        risks.append(f"{sum(fp32_ops.values())} ops compute in float32 (the Neural Engine runs float16 only): "
                     + ", ".join(f"{k} x{v}" for k, v in fp32_ops.most_common(6)))
    fallback = sorted({op.type for op in main_operations(spec)} & FALLBACK_OPS)
    if fallback:
        risks.append("ops that commonly fall back to CPU/GPU: " + ", ".join(fallback))
    return risks


def manifest_report(path: Path) -> list[dict[str, Any]]:
    """The per-layer weight report that `convert` wrote for this package, if the manifest lies beside it."""
    manifest_path = path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        return []
    manifest = json.loads(manifest_path.read_text())
    roles = {r["file"]: r["role"] for r in manifest.get("artifacts", [])}
    reports = manifest.get("coreml", {}).get("weight_reports", {})
    return reports.get(roles.get(path.name, ""), [])


def inspect_mlpackage(path: Path) -> dict[str, Any]:
    spec = load_spec(path)
    weights_file = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    ops = op_histogram(spec)
    compute = Counter(DTYPES.get(t.dataType, str(t.dataType)) for op in main_operations(spec)
                      if op.type not in FLOAT32_EXEMPT_OPS for _, t in _output_types(op))
    return {
        "artifact": str(path), "format": "mlprogram",
        "deployment_target": SPEC_TO_TARGET.get(spec.specificationVersion, f"spec {spec.specificationVersion}"),
        "size_bytes": path_size(path), "weights_bytes": weights_file.stat().st_size if weights_file.is_file() else 0,
        **tensor_specs(spec),
        "metadata": dict(spec.description.metadata.userDefined),
        "op_histogram": dict(ops.most_common()), "compute_dtypes": dict(compute.most_common()),
        "compressed_weights": compressed_weights(path),
        "weight_report": manifest_report(path),
        "accelerator_risks": neural_engine_risks(spec),
    }


def inspect_tflite(path: Path) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except ValueError as exc:
        raise ArtifactError(f"{path}: not a readable .tflite model ({exc})") from None
    ops = Counter(op["op_name"] for op in interpreter._get_ops_details())
    tensors = interpreter.get_tensor_details()
    risks = []
    high_rank = [t["name"] for t in tensors if len(t["shape"]) > MAX_RANK]
    dynamic = [t["name"] for t in tensors if np.any(np.asarray(t.get("shape_signature", t["shape"])) < 0)]
    if high_rank:
        risks.append(f"{len(high_rank)} tensors above rank {MAX_RANK}: " + ", ".join(high_rank[:5]))
    if dynamic:
        risks.append(f"{len(dynamic)} tensors with dynamic shapes: " + ", ".join(dynamic[:5]))
    describe = lambda d: {"name": d["name"], "shape": [int(v) for v in d["shape"]],  # noqa: E731
                          "dtype": np.dtype(d["dtype"]).name}
    return {
        "artifact": str(path), "format": "tflite", "size_bytes": path_size(path),
        "inputs": [describe(d) for d in interpreter.get_input_details()],
        "outputs": [describe(d) for d in interpreter.get_output_details()],
        "op_histogram": dict(ops.most_common()),
        "tensor_dtypes": dict(Counter(np.dtype(t["dtype"]).name for t in tensors).most_common()),
        "accelerator_risks": risks,
    }


def inspect_artifact(path: "str | Path") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path} does not exist")
    if path.suffix == ".mlpackage":
        return inspect_mlpackage(path)
    if path.suffix == ".tflite":
        return inspect_tflite(path)
    raise ArtifactError(f"{path}: inspect reads .mlpackage and .tflite artifacts")
