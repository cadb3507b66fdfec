"""The report's rows: every precision of every target, from one checkpoint."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    target: str
    precision: str
    ptq_scales: bool = False  # converted with the TinySAM PTQ scales file (`calibrate`) instead of min/max
    palette: "str | None" = None  # CoreML palettes fitted from the scales file: sensitive-kmeans | ptq-grid

    @property
    def name(self) -> str:
        method = {True: " (TinySAM PTQ)", False: " (min/max)"}[self.ptq_scales] if self.precision == "w8a8" else ""
        return f"{self.target} {self.precision}{method}" + (f" ({self.palette})" if self.palette else "")

    @property
    def scales_bits(self) -> int:
        """Width of the scales file the row is converted with: a PTQ-grid palette holds that file's grid, so
        it takes the file of its own width; every other PTQ row takes the 8-bit one."""
        return int(self.precision.removeprefix("palettize")) if self.palette == "ptq-grid" else 8

    @property
    def folder(self) -> str:
        return (f"{self.target}-{self.precision}" + (f"-{self.palette}" if self.palette else "")
                + ("-ptq" if self.ptq_scales and not self.palette else ""))


# CoreML w8a8 takes its activation ranges from a scales file only (no macOS calibration run here).
ROWS = (
    Row("tflite", "fp32"), Row("tflite", "fp16"), Row("tflite", "int8"), Row("tflite", "int8-xnnpack"),
    Row("tflite", "w8a8"), Row("tflite", "w8a8", ptq_scales=True), Row("tflite", "w8a16"),
    Row("onnx", "fp32"), Row("onnx", "int8"),
    Row("coreml", "fp16"), Row("coreml", "int8"), Row("coreml", "palettize8"), Row("coreml", "palettize6"),
    Row("coreml", "palettize4"), Row("coreml", "w8a8", ptq_scales=True),
    # Palettes that carry TinySAM's PTQ: sensitivity-weighted k-means at every width (the sensitivities do
    # not depend on the scales file's width), and each width's own PTQ grid (a scales file per width).
    *(Row("coreml", f"palettize{bits}", ptq_scales=True, palette=palette)
      for palette in ("sensitive-kmeans", "ptq-grid") for bits in (8, 6, 4)),
)


def select_rows(names: "list[str] | None") -> tuple[Row, ...]:
    """ROWS whose folder name is listed (all when names is None); unknown names are refused."""
    from ..errors import TinySamError

    if not names:
        return ROWS
    known = {row.folder: row for row in ROWS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise TinySamError(f"unknown report row {unknown[0]!r}; choose from {', '.join(known)}")
    return tuple(known[name] for name in names)
