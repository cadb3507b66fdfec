"""MilProgram: the public entry point, shaped like MLModel.predict."""

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import MilError
from .executor import execute, promoted
from .loader import ImageInput, load_program
from .values import TensorSpec

# PIL modes the Core ML runtime converts an image to before the program sees it
PIL_MODES = {"RGB": "RGB", "BGR": "RGB", "GRAYSCALE": "L", "GRAYSCALE_FLOAT16": "L"}


def image_array(image, spec: TensorSpec, declared: ImageInput) -> np.ndarray:
    """PIL image -> the (1, C, H, W) 0-255 float tensor Core ML feeds an image input with."""
    if image.size != (declared.width, declared.height):
        raise MilError(f"input '{spec.name}' takes a {declared.width}x{declared.height} image, "
                       f"got {image.size[0]}x{image.size[1]}")
    pixels = np.asarray(image.convert(PIL_MODES[declared.color_space]), dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if declared.color_space == "BGR":
        pixels = pixels[:, :, ::-1]
    return pixels.transpose(2, 0, 1)[None]


def fits(shape: tuple[int, ...], spec: TensorSpec) -> bool:
    return len(shape) == len(spec.shape) and all(d is None or d == s for d, s in zip(spec.shape, shape))


class MilProgram:
    """Executes the `main` function of a Core ML ML Program package (.mlpackage) in numpy.

    program = MilProgram("encoder.mlpackage"); outputs = program.predict({"image": array})
    Inputs are cast to the declared dtypes; outputs come back in the declared dtypes (fp16 stays fp16).
    Image inputs take a PIL image of the declared size or a (1, C, H, W) array of 0-255 values in the
    declared channel order: the image scale and bias are ops inside the program.
    """

    def __init__(self, path: "str | Path") -> None:
        self.program = load_program(path)
        self._specs = {spec.name: spec for spec in self.program.inputs}
        # fp32 copies of fp16 weights, made once instead of at every prediction
        self._fp32_constants = {name: promoted(value) for name, value in self.program.constants.items()
                                if getattr(value, "dtype", None) == np.float16}

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.program.inputs]

    @property
    def output_names(self) -> list[str]:
        return list(self.program.outputs)

    @property
    def input_shapes(self) -> dict[str, tuple]:
        return {spec.name: spec.shape for spec in self.program.inputs}

    def _feed(self, name: str, value: Any) -> np.ndarray:
        spec = self._specs[name]
        image = self.program.image_inputs.get(name)
        if image is not None and hasattr(value, "convert"):  # a PIL image
            value = image_array(value, spec, image)
        try:
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                raise TypeError(array.dtype)
        except (TypeError, ValueError):
            raise MilError(f"input '{name}' must be a numeric array, got {type(value).__name__}") from None
        if not fits(array.shape, spec):
            raise MilError(f"input '{name}' has shape {list(array.shape)}, the program takes {spec.describe()}")
        return array.astype(spec.dtype, copy=False)

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        missing = [name for name in self._specs if name not in inputs]
        unknown = [name for name in inputs if name not in self._specs]
        if missing or unknown:
            raise MilError(f"{self.program.path.name} takes inputs {', '.join(self._specs)}; "
                           f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}")
        feeds = {name: self._feed(name, value) for name, value in inputs.items()}
        return execute(self.program, feeds, self._fp32_constants)
