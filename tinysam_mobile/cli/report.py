"""`tinysam-mobile report`: the fidelity report of every target and precision, as one Markdown page."""

from pathlib import Path
from typing import Optional

import typer

from ..errors import TinySamError
from . import app
from ..utils.prompts import DEFAULT_PROMPTS_PER_IMAGE
from .options import CheckpointOption


def scales_by_width(paths: list[Path], checkpoint_sha256: str) -> dict[int, Path]:
    """{weight bits: file} of the --scales files, each checked to be of this checkpoint; two of one width are
    refused (which one a row took would be a guess)."""
    from ..calibration.scales import read_scales

    by_bits: dict[int, Path] = {}
    for path in paths:
        if not path.is_file():
            raise TinySamError(f"--scales {path} does not exist")
        bits = read_scales(path, checkpoint_sha256).bits["weight"]
        if bits in by_bits:
            raise TinySamError(f"--scales {by_bits[bits]} and {path} are both W{bits}; give one file per width")
        by_bits[bits] = path
    return by_bits


@app.command()
def report(
    context: typer.Context,
    out: Path = typer.Option(Path("docs/report"), "--out", "-o", help="Folder of the page (README.md) and its "
                             "pictures; replaced whole when the report is written."),
    checkpoint: Optional[Path] = CheckpointOption,
    cache: Path = typer.Option(Path("outputs/report-cache"), help="Where each row's artifacts and figures are kept "
                               "(reused while the checkpoint, scales file and settings are the same)."),
    row: Optional[list[str]] = typer.Option(None, "--row", help="Measure only these rows (folder names such as "
                                            "tflite-fp16, coreml-palettize6, tflite-w8a8-ptq); repeatable. The page "
                                            "still shows every row already measured. Default: all.",
                                            show_default=False),
    scales: Optional[list[Path]] = typer.Option(
        None, help="TinySAM PTQ scales from 'tinysam-mobile calibrate' (of the same checkpoint), one file per "
        "weight width; repeatable. The W8 file serves the w8a8 rows and the sensitivity-weighted palettes, each "
        "--bits N file the N-bit ptq-grid palette; rows whose file is not given are left out.",
        show_default=False),
    images: int = typer.Option(8, min=1, help="Held-out photos and generated scenes."),
    prompts_per_image: int = typer.Option(DEFAULT_PROMPTS_PER_IMAGE, min=1,
                                          help="Prompts per image, through every prompt shape in turn."),
    latency_runs: int = typer.Option(3, min=1, help="Timed runs per CPU latency figure (median)."),
    threads: int = typer.Option(2, min=1, help="CPU threads of PyTorch, LiteRT and ONNX Runtime."),
    img_size: int = typer.Option(1024, help="Model input side: 1024 as shipped; smaller multiples of 64 only "
                                 "for quick checks."),
) -> None:
    """Convert every precision of every target from one checkpoint (LiteRT fp32, fp16, int8, int8-xnnpack,
    w8a8 min/max and TinySAM PTQ, w8a16; ONNX fp32, int8; CoreML fp16, int8, palettize8/6/4, w8a8), compare
    each with FP32 PyTorch as 'validate' does, and write OUT/README.md: the table (mask IoU mean / p5 / min
    against each precision's target, embedding cosine, IoU-score error, size, CPU latency), mask IoU per
    prompt-token count, two plots and an overlay sheet of the same prompts through every row."""
    import torch
    from rich.progress import Progress

    from ..calibration.dataset import default_images
    from ..checkpoint import checkpoint_id, load_tinysam
    from ..modeling import TinySamConfig
    from ..report.build import build_report, header, row_target
    from ..report.measure import ReportConfig
    from ..report.page import write_page
    from ..report.rows import ROWS, select_rows
    from ..utils.files import atomic_directory, check_outputs

    chosen = select_rows(row)
    sha = checkpoint_id(checkpoint)
    scales_by_bits = scales_by_width(scales or [], sha)
    needing = [r for r in chosen if r.ptq_scales and r.scales_bits not in scales_by_bits]
    if needing and row:  # asked for by name; by default these rows are left out
        raise TinySamError(f"row {needing[0].folder} needs --scales with a --bits {needing[0].scales_bits} file "
                           "(from 'tinysam-mobile calibrate')")
    chosen = tuple(r for r in chosen if r not in needing)
    try:
        model_config = TinySamConfig(img_size)
    except ValueError as exc:
        raise TinySamError(f"--img-size: {exc}") from None
    check_outputs(folders=(out,))
    model = load_tinysam(checkpoint, model_config)
    torch.set_num_threads(threads)  # the reference's (and the pre/post-processing's) threads; runners take theirs
    config = ReportConfig(images, prompts_per_image, latency_runs, threads)
    with Progress(transient=True) as bar:
        task = bar.add_task("report", total=None)
        records = build_report(model, sha, chosen, cache, scales_by_bits, config, default_images(images, held_out=True),
                               progress=lambda text: bar.update(task, description=text))
    weights = ("the embedded demo model (tinysam_mobile/weights/MODEL_CARD.md)" if checkpoint is None
               else f"checkpoint {checkpoint.name}")
    missing = [r.name for r in ROWS if r.name not in records]
    # What regenerates the page: the options that differ from their defaults; the --row options only where
    # the page leaves rows out (a full page's rows may be measured in several runs, the cache keeps them).
    command = " ".join(["tinysam-mobile report"] + [
        f"{option.opts[0]} {value}" for option in context.command.params
        if (option.name != "row" or missing) and context.params[option.name] not in (None, option.default)
        for value in (context.params[option.name] if option.multiple else [context.params[option.name]])])
    targets = {r.name: row_target(r) for r in ROWS}
    with atomic_directory(out) as work:
        write_page(work, records, targets, header(weights, sha, command, config, img_size, missing,
                                                   scales_by_bits))
    typer.echo(f"report: {out / 'README.md'} ({len(records) - 1} rows measured"
               + (f"; not measured: {', '.join(missing)}" if missing else "") + ")")
