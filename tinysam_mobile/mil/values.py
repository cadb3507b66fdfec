"""Protobuf MIL values and types -> numpy, through coremltools' own readers.

coremltools' milproto loader already knows every encoding a Value can have (immediate tensors of
each dtype, fp16 and sub-byte types packed in bytes, BlobFileValue offsets into weight.bin read by
libmilstorage), so we reuse it rather than re-implement the storage format.
"""

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from coremltools.converters.mil.frontend.milproto.load import TranscriptionContext, _load_value
from coremltools.converters.mil.mil import types

from .errors import MilError


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor as the program declares it; None marks a flexible dimension."""

    name: str
    dtype: np.dtype
    shape: tuple[Optional[int], ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} ({self.dtype.name}, [{dims}])"


def tensor_spec(name: str, value_type) -> TensorSpec:
    """NamedValueType / ValueType proto -> TensorSpec (only tensors occur in the programs we run)."""
    if value_type.WhichOneof("type") != "tensorType":
        raise MilError(f"'{name}' is a {value_type.WhichOneof('type')}; only tensor values are supported")
    tensor = value_type.tensorType
    dtype = np.dtype(types.nptype_from_builtin(types.PROTO_TO_BUILTIN_TYPE[tensor.dataType]))
    shape = tuple(d.constant.size if d.WhichOneof("dimension") == "constant" else None for d in tensor.dimensions)
    return TensorSpec(name, dtype, shape)


class ValueReader:
    """Reads const values of one package, keeping each weight-blob reader open across calls."""

    def __init__(self, weights_dir: Optional[str]) -> None:
        self._context = TranscriptionContext(weights_dir or "")

    def read(self, value) -> Any:
        """Value proto -> writable numpy array, numpy scalar, or str (string scalars such as modes)."""
        loaded = _load_value(self._context, value)
        if isinstance(loaded, (str, np.generic)):
            return loaded
        # blob-backed arrays are read-only views; torch.from_numpy wants writable memory
        return np.array(loaded)
