"""Reading .mlpackage files on any OS: the spec, the MIL ops and the tensor contract (no CoreML runtime)."""

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from ..errors import ArtifactError


def import_coremltools():
    """coremltools, without its import-time warnings about the macOS-only runtime on Linux."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import coremltools

    return coremltools


def load_spec(path: "str | Path"):
    """The protobuf spec of an .mlpackage, without compiling or loading it."""
    ct = import_coremltools()
    path = Path(path)
    if not (path / "Manifest.json").is_file():
        raise ArtifactError(f"{path}: not an .mlpackage (no Manifest.json inside)")
    try:
        return ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as exc:  # corrupt protobuf or blob: coremltools raises many kinds
        raise ArtifactError(f"{path}: unreadable ML package ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None


def load_program(mlmodel):
    """The MIL program (pymil) of an in-memory or loaded MLModel, with its weights' values."""
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
    from coremltools.models.utils import _convert_model_spec_to_pymil_prog

    return _convert_model_spec_to_pymil_prog(mlmodel, mlmodel.get_spec().specificationVersion, milproto_load)


def program_ops(program, op_types=None) -> list:
    """Ops of the main function (nested blocks included), optionally only the given types."""
    def walk(block):
        for op in block.operations:
            yield op
            for inner in op.blocks:
                yield from walk(inner)

    return [op for op in walk(program.functions["main"]) if op_types is None or op.op_type in op_types]


def main_operations(spec) -> Iterator[Any]:
    """Every operation of the program's main function, nested blocks included."""
    if spec.WhichOneof("Type") != "mlProgram":
        raise ArtifactError("not an ML Program (neural-network models are not supported)")
    function = spec.mlProgram.functions["main"]

    def walk(block):
        for op in block.operations:
            yield op
            for inner in op.blocks:
                yield from walk(inner)

    yield from walk(function.block_specializations[function.opset])


def op_histogram(spec) -> Counter:
    return Counter(op.type for op in main_operations(spec))


def _feature_spec(feature) -> dict[str, Any]:
    kind = feature.type.WhichOneof("Type")
    if kind == "imageType":
        image = feature.type.imageType
        colour = {10: "GRAYSCALE", 20: "RGB", 30: "BGR"}.get(image.colorSpace, str(image.colorSpace))
        return {"name": feature.name, "kind": "image", "color_space": colour,
                "shape": [1, 3, int(image.height), int(image.width)], "description": feature.shortDescription}
    array = feature.type.multiArrayType
    dtype = {65568: "float32", 65552: "float16", 131104: "int32"}.get(array.dataType, str(array.dataType))
    enumerated = ({"enumerated_shapes": sorted([int(d) for d in shape.shape] for shape in array.enumeratedShapes.shapes)}
                  if array.WhichOneof("ShapeFlexibility") == "enumeratedShapes" else {})
    return {"name": feature.name, "kind": "tensor", "shape": [int(d) for d in array.shape], "dtype": dtype,
            **enumerated, "description": feature.shortDescription}


def tensor_specs(spec) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs as the package declares them (name, shape, dtype or image colour space)."""
    return {"inputs": [_feature_spec(f) for f in spec.description.input],
            "outputs": [_feature_spec(f) for f in spec.description.output]}
