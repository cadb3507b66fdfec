"""`tinysam-mobile golden`: write the golden vectors the iOS and Android glue tests check against."""

from pathlib import Path

import typer

from . import app


@app.command()
def golden(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder; replaced whole when writing succeeds.",
                             show_default=False),
    seed: int = typer.Option(0, help="Seed of the generated images and low-res logits."),
) -> None:
    """Write inputs and expected outputs of every app glue function, from the Python reference pipeline.

    Cases: preprocessing (longest-side resize, normalise, pad) of photos and noise images of odd,
    extreme and exact sizes; prompt transforms, padding, mask upscaling, thresholding and best-mask
    choice for points, negatives and boxes; prompts the pipeline refuses. The format (index.txt plus
    one little-endian binary file per case) is described in tinysam_mobile/golden.py.

    Example: tinysam-mobile golden --out /tmp/golden, then
    'cd sample_apps/ios && TINYSAM_GOLDEN=/tmp/golden swift test' (Linux or Mac).
    """
    from rich.progress import Progress

    from ..golden import GoldenConfig, count_cases, write_golden
    from ..utils.files import atomic_directory, check_outputs

    check_outputs(folders=(out,))
    config = GoldenConfig(seed=seed)
    with Progress(transient=True) as progress, atomic_directory(out) as work_dir:
        task = progress.add_task("golden vectors", total=count_cases(config))
        rows = write_golden(work_dir, config, on_case=lambda name: progress.update(
            task, advance=1, description=f"golden: {name}"))
    typer.echo(f"{len(rows)} golden cases: {out}")
