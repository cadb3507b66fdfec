"""What accelerators will make of a LiteRT model: integer-only check (NPUs), XNNPACK partitions (CPU),
LiteRT's GPU-delegate compatibility analysis."""

import collections
from pathlib import Path

from ..errors import ArtifactError

FLOAT_TENSOR_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")


def float_ops(path: Path) -> dict[str, int]:
    """{op name: count} of the ops that read or write a floating-point tensor, over every signature."""
    from ai_edge_litert.schema_py_generated import BuiltinOperator
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    op_names = {code: name for name, code in vars(BuiltinOperator).items() if not name.startswith("_")}
    model = fb.read_model(Path(path))
    counts: collections.Counter = collections.Counter()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            tensors = [i for i in list(op.inputs) + list(op.outputs) if i >= 0]
            if any(fb.TENSOR_CODE_TO_TYPE[subgraph.tensors[i].type] in FLOAT_TENSOR_TYPES for i in tensors):
                code = model.operatorCodes[op.opcodeIndex]
                counts[op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]] += 1
    return dict(counts)


def check_integer_only(path: Path) -> None:
    """Raise ArtifactError naming every op that still computes in floating point."""
    found = float_ops(path)
    if found:
        listed = ", ".join(f"{name} x{count}" for name, count in sorted(found.items()))
        raise ArtifactError(f"{Path(path).name} is not integer-only: floating-point ops {listed}")


def xnnpack_partitions(path: Path) -> dict:
    """How XNNPACK splits the model: partition count and the ops it leaves to LiteRT's own kernels.

    An op runs outside XNNPACK when none of its outputs leaves a delegate partition and its outputs
    feed a partition, a graph output or another such op (walked from the graph's end backwards).
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path), num_threads=1)  # default resolver: XNNPACK applied
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
    return {"partitions": len(delegates),
            "ops_outside_xnnpack": dict(collections.Counter(ops[i]["op_name"] for i in outside))}


def gpu_compatibility_report(path: Path) -> str:
    """LiteRT's model analyzer with the GPU-delegate compatibility check (text, as the tool prints it)."""
    from ai_edge_litert import _pywrap_analyzer_wrapper as analyzer

    return analyzer.ModelAnalyzer(str(path), True, True)
