"""Op registry: MIL op type -> numpy implementation, plus how the executor must feed it.

Implementations take the op's MIL inputs as keyword arguments (numpy arrays, numpy scalars, Python
strings, or lists for variadic inputs) and return one array or a tuple of arrays. They never round
to the program's dtypes themselves: the executor casts every result to the dtype the program
declares for it.
"""

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class OpDef:
    fn: Callable
    # Arithmetic ops receive fp16 tensors promoted to fp32 (the result is rounded back by the
    # executor); pure data-movement ops receive them as stored, which is exact and avoids copies.
    promote_fp16: bool
    variadic: tuple[str, ...]  # inputs that are lists of tensors (concat's values, ...)


OPS: dict[str, OpDef] = {}


def register(*op_types: str, promote_fp16: bool = True, variadic: tuple[str, ...] = ()):
    """Decorator: implement the MIL op types `op_types` with the decorated function."""

    def wrap(fn: Callable) -> Callable:
        for op_type in op_types:
            if op_type in OPS:
                raise ValueError(f"op {op_type!r} registered twice")
            OPS[op_type] = OpDef(fn, promote_fp16, variadic)
        return fn

    return wrap
