"""Run a loaded program op by op, keeping every tensor in the dtype the program declares.

fp16 tensors stay fp16 between ops. Arithmetic ops compute on fp32 copies of their fp16 inputs and
their results are rounded back to fp16 (overflow becomes inf, as in fp16 hardware): one rounding
per op, where Core ML's fp16 backends may round inside an op too.
"""

from typing import Any, Mapping

import numpy as np

from .errors import MilError
from .ops import OPS
from .values import TensorSpec


def promoted(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype == np.float16:
        return value.astype(np.float32)
    return value


def conform(value: Any, spec: TensorSpec, where: str) -> np.ndarray:
    """Cast an op result to its declared dtype and check it has the declared shape."""
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.asarray(value).astype(spec.dtype, copy=False)
    if len(array.shape) != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape, array.shape)):
        raise MilError(f"{where} produced '{spec.name}' of shape {list(array.shape)}, "
                       f"but the program declares {spec.describe()}")
    return array


def run_operation(op, values: Mapping[str, Any], fp32_cache: "dict[str, Any] | None" = None) -> dict[str, np.ndarray]:
    """Execute one op reading its inputs from `values`; returns {output name: array}.

    fp32_cache (optional) memoises the fp32 copies of fp16 constants across calls."""
    op_def = OPS[op.type]
    kwargs = {}
    for input_name, names in op.inputs.items():
        args = []
        for name in names:
            value = values[name]
            if op_def.promote_fp16:
                if fp32_cache is not None and name in fp32_cache:
                    value = fp32_cache[name]
                else:
                    value = promoted(value)
            args.append(value)
        kwargs[input_name] = args if input_name in op_def.variadic else args[0]
    try:
        result = op_def.fn(**kwargs)
    except Exception as exc:
        exc.add_note(f"while executing {op.where()}")
        raise
    results = result if isinstance(result, (tuple, list)) else (result,)
    if len(results) != len(op.outputs):
        raise MilError(f"{op.where()} produced {len(results)} outputs, the program declares {len(op.outputs)}")
    return {spec.name: conform(value, spec, op.where()) for spec, value in zip(op.outputs, results)}


def execute(program, feeds: Mapping[str, np.ndarray], fp32_cache: "dict[str, Any] | None" = None) -> dict[str, np.ndarray]:
    """Run `main` on feeds (already in the declared dtypes and shapes); returns the program outputs."""
    values = dict(program.constants)
    values.update(feeds)
    for op in program.operations:
        values.update(run_operation(op, values, fp32_cache))
        for name in op.release:
            del values[name]
    return {name: values[name] for name in program.outputs}
