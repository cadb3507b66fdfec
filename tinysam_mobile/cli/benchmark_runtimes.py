"""`tinysam-mobile benchmark-runtimes`: PyTorch, ONNX Runtime, LiteRT and ExecuTorch side by side, in one run."""

import json
from pathlib import Path
from typing import Optional

import typer

from . import app
from .options import CheckpointOption


@app.command("benchmark-runtimes")
def benchmark_runtimes(
    artifacts: list[Path] = typer.Argument(..., help="Folders written by 'tinysam-mobile convert' (any targets "
                                           "and precisions), e.g. out/tflite-fp32 out/tflite-w8a8 out/onnx-fp32.",
                                           show_default=False),
    runs: int = typer.Option(5, min=1, help="Timed runs per measurement; the median is reported."),
    threads: int = typer.Option(2, min=1, help="Threads for every runtime (torch, XNNPACK, ONNX Runtime)."),
    prompts: int = typer.Option(64, min=1, help="Prompts of the batched-decoder measurement."),
    checkpoint: Optional[Path] = CheckpointOption,
    out: Optional[Path] = typer.Option(None, help="Also write the figures as JSON here.", show_default=False),
) -> None:
    """Median encoder latency, decoder latency per prompt (also per prompt-token count, timed interleaved)
    and per batch, and artifact sizes, for FP32 PyTorch eager and every given artifact folder, measured
    in this one process.

    LiteRT and ExecuTorch run on XNNPACK. Figures are machine-specific: compare rows of one run, not numbers from elsewhere.
    """
    from rich.console import Console
    from rich.table import Table

    from ..benchmarks.runtimes import TIMED_TOKENS, measure_runtimes
    from ..utils.files import atomic_path, check_outputs

    check_outputs(files=(out,))
    console = Console(stderr=True)
    figures = measure_runtimes(checkpoint, artifacts, runs, threads, prompts,
                               on_step=lambda name: console.print(f"timing {name} ..."))
    table = Table(title=f"TinySAM latency, median of {runs} ({figures['machine']})")
    counts = "/".join(str(t) for t in TIMED_TOKENS)
    for column in ("runtime", "encoder ms", "decoder ms / prompt", f"decoder ms at {counts} tokens",
                   f"decoder ms / {prompts}", "encoder MB", "decoder MB"):
        table.add_column(column, justify="right" if column != "runtime" else "left")
    for name, row in figures["runtimes"].items():
        sizes = row.get("size_bytes", {})
        table.add_row(name, f"{row['encoder_ms']}", f"{row['decoder_ms_one_prompt']}",
                      "/".join(str(ms) for ms in row["decoder_ms_by_tokens"].values()),
                      f"{row[f'decoder_ms_batch_{prompts}']}",
                      *(f"{sizes[k] / 1e6:.1f}" if k in sizes else "-" for k in ("encoder", "decoder")))
    Console().print(table)
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(figures, indent=2) + "\n")
        typer.echo(f"figures: {out}")
