"""`tinysam-mobile convert`: checkpoint -> mobile artifacts + manifest, written whole or not at all."""

import importlib
from pathlib import Path
from typing import Optional

import typer

from ..converters.config import DEFAULT_EVERYTHING_BATCH
from ..errors import TinySamError
from ..utils.prompts import DEFAULT_MAX_TOKENS
from . import app
from .options import CheckpointOption

TARGETS = ("tflite", "coreml", "onnx", "executorch")


@app.command()
def convert(
    target: str = typer.Option(..., "--target", "-t", help="tflite (LiteRT, Android), coreml (ML Program, iOS), "
                               "onnx (ONNX Runtime Mobile) or executorch (.pte programs).", show_default=False),
    precision: str = typer.Option(
        "fp32", "--precision", help="tflite: fp32 | fp16 | int8 (weights) | w8a8 (integer-only: int8 weights, int8 "
        "activations at the encoder's fully-connected inputs, int16 elsewhere) | w8a16 (integer-only, int16 "
        "activations) | int8-xnnpack "
        "(static int8 for XNNPACK's integer kernels: the encoder's fully-connected layers and neck, the rest float). "
        "coreml: fp16 | fp32 | int8 | palettize4 | palettize6 | palettize8 | w8a8. onnx: fp32 | int8. "
        "executorch: fp32 | int8 (dynamic int8 linear layers, the rest float) | w8a8 (static int8 linear layers "
        "and encoder neck, the rest float) (--backend xnnpack), fp16 (--backend coreml)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="executorch only: the delegate the programs are "
                                          "lowered to, xnnpack (default; CPUs) or coreml (Apple devices).",
                                          show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder; replaced whole when the conversion "
                             "succeeds, untouched when it fails.", show_default=False),
    checkpoint: Optional[Path] = CheckpointOption,
    max_tokens: int = typer.Option(DEFAULT_MAX_TOKENS, help="Most prompt tokens the interactive decoder takes: a "
                                   "prompt's points, then 2 box corners or 1 padding point (10: 8 clicks and a "
                                   "box). The decoder takes every count from 1 up, exactly, never padded."),
    everything_batch: int = typer.Option(DEFAULT_EVERYTHING_BATCH, help="Prompts per call of the batched everything-mode decoder."),
    scales: Optional[Path] = typer.Option(None, help="TinySAM PTQ scales from 'tinysam-mobile calibrate': "
                                          "weight grids and activation ranges of coreml int8 / w8a8, tflite "
                                          "w8a8 and executorch w8a8; weight sensitivities or grids of coreml "
                                          "palettize*.",
                                          show_default=False),
    calibration_images: Optional[Path] = typer.Option(
        None, help="Folder of images for activation ranges (w8a8 without --scales). Default: built-in photos "
        "and generated scenes.", show_default=False),
    compute_precision: str = typer.Option("fp16", help="CoreML compute precision: fp16 or fp32."),
    palette: Optional[str] = typer.Option(
        None, help="CoreML palettize4/6/8: how the LUTs are fitted. kmeans (plain k-means, the default without "
        "--scales); sensitive-kmeans (each weight weighed by its task-loss sensitivity from the --scales file, "
        "the default with --scales); ptq-grid (the LUT is TinySAM's quantization grid of a scales file of the "
        "same bit width). Below 8 bits, k-means and sensitive-kmeans keep the encoder's convolution stage and "
        "patch merging at 8-bit palettes.", show_default=False),
) -> None:
    """Convert a TinySAM checkpoint into encoder and decoder artifacts for one mobile runtime.

    The output folder holds the artifacts and manifest.json (hashes, tensor specs, preprocessing
    constants, prompt conventions) that the apps and 'tinysam-mobile validate' check.
    """
    from ..checkpoint import checkpoint_id, load_tinysam
    from ..converters.config import ConvertConfig
    from ..utils.files import atomic_directory, check_outputs

    if target not in TARGETS:
        raise TinySamError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    converter = importlib.import_module(f"tinysam_mobile.converters.{target}")
    if precision not in converter.PRECISIONS:
        raise TinySamError(f"unknown precision {precision!r} for {target}; choose one of {', '.join(converter.PRECISIONS)}")
    if backend is not None and target != "executorch":
        raise TinySamError("--backend applies to --target executorch only")
    if palette is not None and not precision.startswith("palettize"):
        raise TinySamError("--palette applies to --target coreml --precision palettize4 / palettize6 / palettize8 only")
    for path, what in ((scales, "--scales"), (calibration_images, "--calibration-images")):
        if path is not None and not path.exists():
            raise TinySamError(f"{what} {path} does not exist")
    config = ConvertConfig(target=target, precision=precision, max_tokens=max_tokens,
                           everything_batch=everything_batch, scales=scales,
                           calibration_images=calibration_images, compute_precision=compute_precision, palette=palette,
                           **({"backend": backend} if backend is not None else {}))
    check_outputs(folders=(out,))
    model = load_tinysam(checkpoint)
    with atomic_directory(out) as work_dir:
        manifest = converter.convert(model, config, work_dir, checkpoint_sha256=checkpoint_id(checkpoint))
    for record in manifest["artifacts"]:
        typer.echo(f"{record['role']:>20}: {out / record['file']} ({record['size_bytes'] / 1e6:.1f} MB)")
        for method, info in record.get("methods", {}).items():  # ExecuTorch: what the delegate left out
            outside = ", ".join(f"{op} x{count}" for op, count in info["outside_delegate"].items()) or "nothing"
            typer.echo(f"{method:>20}: {info['delegated_subgraphs']} {info['delegate']} subgraphs; outside: {outside}")
    typer.echo(f"{'manifest':>20}: {out / 'manifest.json'}")
