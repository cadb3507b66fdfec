"""`tinysam-mobile benchmark-everything`: hierarchical vs dense everything mode, in one run."""

import json
from pathlib import Path
from typing import Optional

import typer

from . import app
from .options import (ArtifactsOption, BackendOption, CheckpointOption, HighScoreThreshOption, PredIouThreshOption,
                      StabilityThreshOption)


@app.command("benchmark-everything")
def benchmark_everything(
    out: Path = typer.Option(..., "--out", "-o", help="JSON file of the per-image figures and the summary.",
                             show_default=False),
    photos: str = typer.Option(",".join(("coffee", "chelsea", "astronaut", "rocket")),
                               help="Comma-separated scikit-image sample photos ('' for none)."),
    scenes: int = typer.Option(2, help="Generated scenes from the held-out seeds, with ground truth."),
    scene_size: int = typer.Option(512, help="Side of the generated scenes in pixels."),
    points_per_batch: int = typer.Option(64, help="Prompts per decoder call."),
    threads: int = typer.Option(2, help="torch.set_num_threads for the measurement."),
    pred_iou_thresh: float = PredIouThreshOption,
    stability_score_thresh: float = StabilityThreshOption,
    high_score_thresh: float = HighScoreThreshOption,
    checkpoint: Optional[Path] = CheckpointOption,
    backend: str = BackendOption,
    artifacts: Optional[Path] = ArtifactsOption,
) -> None:
    """Run hierarchical and dense everything mode on the same images with the same runner.

    Per image: decoder prompts, decoder calls, wall and CPU time (encoder included) of each mode,
    their ratios (hierarchical / dense), the number of masks, and matched_miou: for each dense mask the best IoU with a hierarchical
    one, averaged. On generated scenes also the share of ground-truth objects recovered at IoU >= 0.5
    (per scene, and pooled over the scenes in the summary).
    Times are for this machine and its current load: compare the modes within one run.
    """
    import skimage.data
    import torch

    from ..automatic_mask_generator import EverythingConfig
    from ..benchmarks.everything import EverythingBenchmarkConfig
    from ..benchmarks.everything import benchmark_everything as run
    from ..errors import TinySamError
    from ..runners.factory import make_runner
    from ..utils.files import atomic_path, check_outputs
    from .everything import progress_bar

    names = tuple(name for name in photos.split(",") if name)
    unknown = [name for name in names if not callable(getattr(skimage.data, name, None))]
    if unknown:
        raise TinySamError(f"unknown scikit-image photo(s): {', '.join(unknown)}")
    if scenes < 0 or scene_size < 16:
        raise TinySamError("--scenes must not be negative and --scene-size must be at least 16")
    if not names and scenes == 0:
        raise TinySamError("nothing to benchmark: --photos is empty and --scenes is 0")
    if threads < 1:
        raise TinySamError(f"--threads must be at least 1, got {threads}")
    check_outputs(files=(out,))
    torch.set_num_threads(threads)
    config = EverythingBenchmarkConfig(photos=names, scenes=scenes, scene_size=scene_size,
                                       generator=EverythingConfig(points_per_batch=points_per_batch,
                                                                  pred_iou_thresh=pred_iou_thresh,
                                                                  stability_score_thresh=stability_score_thresh,
                                                                  high_score_thresh=high_score_thresh))
    runner = make_runner(backend, checkpoint, artifacts)
    bar, report = progress_bar("everything benchmark")
    with bar:
        figures = run(runner, config, lambda label, done, planned: report(done, planned, label))
    for row in figures["images"]:
        h, d = row["hierarchical"], row["dense"]
        typer.echo(f"{row['image']:>22}: prompts {h['prompts']:4d} / {d['prompts']:4d}, wall {h['wall_s']:7.2f} / "
                   f"{d['wall_s']:7.2f} s (x{row['wall_ratio']}; CPU x{row['cpu_ratio']}), "
                   f"masks {h['objects']} / {d['objects']}, "
                   f"matched mIoU {row['matched_miou']}")
    typer.echo(f"{'summary (median)':>22}: {figures['summary']}")
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(figures, indent=2))
    typer.echo(f"figures: {out}")
