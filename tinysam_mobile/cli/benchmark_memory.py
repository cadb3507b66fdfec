"""`tinysam-mobile benchmark-memory`: peak memory of segment, everything and convert on the largest image."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from . import app


@app.command("benchmark-memory")
def benchmark_memory(
    verbs: str = typer.Option("segment,everything,convert", help="Comma-separated verbs to measure."),
    photo: str = typer.Option("chelsea", help="scikit-image sample photo, upscaled to --pixels."),
    pixels: Optional[int] = typer.Option(None, help="Pixels of the upscaled photo (default: the largest "
                                         "image accepted, MAX_PIXELS).", show_default=False),
    baseline: bool = typer.Option(True, help="Also run each verb on the photo at its own size."),
    pred_iou_thresh: Optional[float] = typer.Option(
        None, help="everything's --pred-iou-thresh (default: its own); lower keeps more masks, the "
                   "full-resolution work this benchmark is about.", show_default=False),
    stability_score_thresh: Optional[float] = typer.Option(
        None, help="everything's --stability-score-thresh (default: its own).", show_default=False),
    out: Optional[Path] = typer.Option(None, help="Also write the figures as JSON here.", show_default=False),
) -> None:
    """Run each verb as a user would, in its own process, on a real photo upscaled to the largest image
    this tool accepts, and report its peak resident memory (the kernel's figure for that process) and
    wall time. segment clicks the centre; everything runs hierarchical mode on PyTorch; convert makes
    LiteRT int8-xnnpack artifacts with the photo as the calibration image. The embedded demo model
    throughout. Times depend on the machine and its load; memory much less.
    """
    import skimage.data

    from ..benchmarks.memory import VERBS, MemoryBenchmarkConfig, measure_memory
    from ..errors import TinySamError
    from ..utils.files import atomic_path, check_outputs
    from ..utils.image_io import MAX_PIXELS

    chosen = tuple(verb for verb in verbs.split(",") if verb)
    unknown = [verb for verb in chosen if verb not in VERBS]
    if unknown or not chosen:
        raise TinySamError(f"--verbs takes {', '.join(VERBS)}; got {verbs!r}")
    if not callable(getattr(skimage.data, photo, None)):
        raise TinySamError(f"unknown scikit-image photo {photo!r}")
    pixels = MAX_PIXELS if pixels is None else pixels
    if not 1 <= pixels <= MAX_PIXELS:
        raise TinySamError(f"--pixels must be between 1 and {MAX_PIXELS:,} (the largest image accepted)")
    check_outputs(files=(out,))
    config = MemoryBenchmarkConfig(verbs=chosen, pixels=pixels, baseline=baseline, pred_iou_thresh=pred_iou_thresh,
                                   stability_score_thresh=stability_score_thresh)

    def report(m) -> None:
        typer.echo(f"{m.verb:>10} {m.image:>8} {m.width}x{m.height}: peak {m.peak_rss_mb:,.0f} MB, "
                   f"{m.seconds:.1f} s  ({m.output})")

    try:
        results = measure_memory(getattr(skimage.data, photo)(), config, report)
    except RuntimeError as exc:
        raise TinySamError(str(exc)) from None
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps({"config": asdict(config), "results": [asdict(m) for m in results]}, indent=2))
        typer.echo(f"figures: {out}")
