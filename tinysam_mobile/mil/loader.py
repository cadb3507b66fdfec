"""Read the `main` function of an ML Program package into a flat, executable op list.

Const ops become values; constexpr ops (weight decompression: palettes, affine / block-wise
dequantisation, sparsity) are evaluated once here, as Core ML does at model load time, so each
prediction only runs the real ops. Every op type is checked against the registry up front: an
unknown op fails when the package is opened, naming the op and where it sits.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MilError, UnsupportedOpError
from .ops import OPS
from .values import TensorSpec, ValueReader, tensor_spec


@dataclass(frozen=True)
class Operation:
    index: int                            # position among main's operations (const ops included)
    type: str
    name: str
    inputs: dict[str, tuple[str, ...]]    # MIL input name -> names of the bound values
    outputs: tuple[TensorSpec, ...]
    release: tuple[str, ...] = ()         # runtime tensors whose last reader is this op

    def where(self) -> str:
        return f"op '{self.type}' named '{self.name}' (operation #{self.index} of main)"


@dataclass(frozen=True)
class ImageInput:
    """An input the model description declares as an image; the program sees (1, C, H, W) floats."""

    color_space: str  # RGB, BGR, GRAYSCALE or GRAYSCALE_FLOAT16
    width: int
    height: int


@dataclass
class Program:
    path: Path
    inputs: list[TensorSpec]
    outputs: list[str]
    image_inputs: dict[str, ImageInput]
    operations: list[Operation]
    constants: dict[str, Any] = field(default_factory=dict)
    decompressed: list[Operation] = field(default_factory=list)  # constexpr ops evaluated at load


def read_package(path: Path):
    """(spec, weights_dir) of an .mlpackage, without Core ML (which only exists on Apple platforms)."""
    import coremltools as ct

    if not path.exists():
        raise MilError(f"CoreML package not found: {path}")
    try:
        model = ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:  # coremltools raises assorted types for unreadable packages
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise MilError(f"{path}: not a readable CoreML package ({reason})") from None
    return model.get_spec(), model.weights_dir


def image_inputs(description) -> dict[str, ImageInput]:
    from coremltools.proto.FeatureTypes_pb2 import ImageFeatureType

    found = {}
    for feature in description.input:
        if feature.type.WhichOneof("Type") == "imageType":
            image = feature.type.imageType
            found[feature.name] = ImageInput(ImageFeatureType.ColorSpace.Name(image.colorSpace),
                                             image.width, image.height)
    return found


def main_block(spec, path: Path):
    if spec.WhichOneof("Type") != "mlProgram":
        raise MilError(f"{path}: holds a {spec.WhichOneof('Type')} model, not an ML Program")
    functions = spec.mlProgram.functions
    if "main" not in functions:
        raise MilError(f"{path}: the ML Program has no 'main' function")
    main = functions["main"]
    return main, main.block_specializations[main.opset]


def parse_operation(index: int, op, reader: ValueReader, constants: dict[str, Any]) -> Operation:
    outputs = tuple(tensor_spec(o.name, o.type) for o in op.outputs)
    name = reader.read(op.attributes["name"]) if "name" in op.attributes else outputs[0].name
    if op.blocks:
        raise UnsupportedOpError(f"control flow is not supported: op '{op.type}' named '{name}' "
                                 f"(operation #{index} of main) has nested blocks")
    inputs = {}
    for input_name, argument in op.inputs.items():
        bound = []
        for position, binding in enumerate(argument.arguments):
            if binding.WhichOneof("binding") == "name":
                bound.append(binding.name)
            else:  # an inline value: keep it with the constants under a name no variable can have
                key = f"{name}/{input_name}/{position}"
                constants[key] = reader.read(binding.value)
                bound.append(key)
        inputs[input_name] = tuple(bound)
    for attribute, value in op.attributes.items():  # iOS16 constexpr ops keep their parameters here
        if attribute != "name":
            key = f"{name}/{attribute}"
            constants[key] = reader.read(value)
            inputs[attribute] = (key,)
    return Operation(index, op.type, name, inputs, outputs)


def with_release_points(operations: list[Operation], keep: set[str]) -> list[Operation]:
    """Attach to each op the runtime tensors it reads last, so the executor can free them early."""
    last_reader = {}
    for op in operations:
        for names in op.inputs.values():
            for name in names:
                last_reader[name] = op.index
    release = {}
    for name, index in last_reader.items():
        if name not in keep:
            release.setdefault(index, []).append(name)
    return [Operation(op.index, op.type, op.name, op.inputs, op.outputs, tuple(release.get(op.index, ())))
            for op in operations]


def load_program(path: "str | Path") -> Program:
    from .executor import run_operation

    path = Path(path)
    spec, weights_dir = read_package(path)
    main, block = main_block(spec, path)
    reader = ValueReader(weights_dir)
    constants: dict[str, Any] = {}
    operations, decompressed = [], []
    for index, op in enumerate(block.operations):
        if op.type == "const":
            constants[op.outputs[0].name] = reader.read(op.attributes["val"])
            continue
        operation = parse_operation(index, op, reader, constants)
        if operation.type not in OPS:
            raise UnsupportedOpError(f"{path.name}: the MIL interpreter has no implementation of "
                                     f"{operation.where()}")
        if operation.type.startswith("constexpr_"):  # decompress weights once, at load time
            constants.update(run_operation(operation, constants))
            decompressed.append(operation)
        else:
            operations.append(operation)
    inputs = [tensor_spec(i.name, i.type) for i in main.inputs]
    outputs = list(block.outputs)
    operations = with_release_points(operations, keep=set(constants) | set(outputs))
    return Program(path, inputs, outputs, image_inputs(spec.description), operations, constants, decompressed)
