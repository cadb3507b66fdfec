"""What accelerators will make of a LiteRT model: integer-only check (NPUs), XNNPACK partitions (CPU),
LiteRT's GPU-delegate compatibility analysis."""

import collections
from pathlib import Path

from ..errors import ArtifactError

FLOAT_TENSOR_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")


def float_ops(model: "Path | bytes") -> dict[str, int]:
    """{op name: count} of the ops that read or write a floating-point tensor, over every signature."""
    from ai_edge_litert.schema_py_generated import BuiltinOperator
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    op_names = {code: name for name, code in vars(BuiltinOperator).items() if not name.startswith("_")}
    flatbuffer = fb.read_model(bytearray(model) if isinstance(model, bytes) else Path(model))
    counts: collections.Counter = collections.Counter()
    for subgraph in flatbuffer.subgraphs:
        for op in subgraph.operators:
            tensors = [i for i in list(op.inputs) + list(op.outputs) if i >= 0]
            if any(fb.TENSOR_CODE_TO_TYPE[subgraph.tensors[i].type] in FLOAT_TENSOR_TYPES for i in tensors):
                code = flatbuffer.operatorCodes[op.opcodeIndex]
                counts[op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]] += 1
    return dict(counts)


def check_integer_only(path: Path) -> None:
    """Raise ArtifactError naming every op that still computes in floating point."""
    found = float_ops(path)
    if found:
        listed = ", ".join(f"{name} x{count}" for name, count in sorted(found.items()))
        raise ArtifactError(f"{Path(path).name} is not integer-only: floating-point ops {listed}")


def _xnnpack_split(model: "Path | bytes") -> tuple[int, list[dict]]:
    """(XNNPACK partition count, details of each op left to LiteRT's own kernels) for the first subgraph.

    An op runs outside XNNPACK when none of its outputs leaves a delegate partition and its outputs
    feed a partition, a graph output or another such op (walked from the graph's end backwards).
    """
    from ai_edge_litert.interpreter import Interpreter

    # default resolver: XNNPACK applied
    interpreter = (Interpreter(model_content=model, num_threads=1) if isinstance(model, bytes)
                   else Interpreter(str(model), num_threads=1))
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # lists the original nodes and the DELEGATE nodes
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    delegate_in = {i for op in delegates for i in op["inputs"]}
    delegate_out = {o for op in delegates for o in op["outputs"]}
    graph_out = {d["index"] for d in interpreter.get_output_details()}
    consumers = collections.defaultdict(list)
    for op in ops:
        if op["op_name"] != "DELEGATE":
            for i in op["inputs"]:
                consumers[i].append(op["index"])
    outside: set[int] = set()
    for op in reversed([op for op in ops if op["op_name"] != "DELEGATE"]):
        outputs = list(op["outputs"])
        if any(o in delegate_out for o in outputs):
            continue
        if any(o in delegate_in or o in graph_out or any(c in outside for c in consumers[o]) for o in outputs):
            outside.add(op["index"])
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    return len(delegates), [{"op": ops[i]["op_name"], "outputs": [names[o] for o in ops[i]["outputs"] if o >= 0]}
                            for i in sorted(outside)]


def ops_outside_xnnpack(model: "Path | bytes") -> list[dict]:
    """Each op XNNPACK leaves to LiteRT's own kernels: {'op': name, 'outputs': output tensor names}."""
    return _xnnpack_split(model)[1]


def xnnpack_partitions(model: "Path | bytes") -> dict:
    """How XNNPACK splits the model: partition count and the ops it leaves to LiteRT's own kernels."""
    count, outside = _xnnpack_split(model)
    return {"partitions": count, "ops_outside_xnnpack": dict(collections.Counter(op["op"] for op in outside))}


def gpu_compatibility_report(path: Path) -> str:
    """LiteRT's model analyzer with the GPU-delegate compatibility check (text, as the tool prints it)."""
    from ai_edge_litert import _pywrap_analyzer_wrapper as analyzer

    return analyzer.ModelAnalyzer(str(path), True, True)
