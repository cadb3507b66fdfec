"""`tinysam-mobile benchmark`: PyTorch encoder/decoder latency and peak memory on this machine."""

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import TinySamError
from . import app
from .options import CheckpointOption


@app.command()
def benchmark(
    runs: int = typer.Option(5, help="Timed runs per stage; the median is reported."),
    threads: int = typer.Option(2, help="torch.set_num_threads for the measurement."),
    prompts: int = typer.Option(64, help="Batch size of the batched-decoder measurement."),
    checkpoint: Optional[Path] = CheckpointOption,
    out: Optional[Path] = typer.Option(None, help="Also write the figures as JSON here.", show_default=False),
) -> None:
    """Time the FP32 PyTorch encoder and decoder (median of RUNS after a warm-up) and report peak RSS.

    Figures are machine-specific: compare backends within one run, not against numbers from elsewhere.
    """
    from ..benchmarks.torch_latency import measure_torch
    from ..utils.files import atomic_path, check_outputs

    for option, value in (("--runs", runs), ("--threads", threads), ("--prompts", prompts)):
        if value < 1:
            raise TinySamError(f"{option} must be at least 1, got {value}")
    check_outputs(files=(out,))
    figures = measure_torch(checkpoint, runs=runs, threads=threads, batch=prompts)
    for key, value in figures.items():
        typer.echo(f"{key:>32}: {value}")
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(figures, indent=2))
        typer.echo(f"figures: {out}")
