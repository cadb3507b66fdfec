"""`tinysam-mobile benchmark-dataset`: images/s of `everything` over a folder, here and on Ray, in one run."""

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import TinySamError
from . import app
from .options import ArtifactsOption, BackendOption, CheckpointOption


@app.command("benchmark-dataset")
def benchmark_dataset(
    images: Path = typer.Argument(..., help="Folder of photos (searched recursively) or a .txt list of paths.",
                                  show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="JSON file of the figures.", show_default=False),
    workers: str = typer.Option("1,2", help="Comma-separated Ray pool sizes to measure after the local run."),
    ray: str = typer.Option("auto", "--ray", metavar="auto|ADDRESS", help="The Ray to measure on: auto (the "
                            "cluster this machine belongs to, else a local Ray on this machine's CPUs) or an "
                            "address."),
    mode: str = typer.Option("hierarchical", "--mode", "-m", help="Everything mode: hierarchical or dense."),
    points_per_side: int = typer.Option(32, help="Side of the dense grid and of the hierarchical lattice."),
    threads: int = typer.Option(1, min=1, help="CPU threads of the runner, locally and in each Ray worker."),
    checkpoint: Optional[Path] = CheckpointOption,
    backend: str = BackendOption,
    artifacts: Optional[Path] = ArtifactsOption,
) -> None:
    """Run `everything` over IMAGES locally, then on Ray with each pool size, and compare.

    Per run: images/s over the whole run and steady (between the first and the last image, i.e. without
    the model's load or the actors' start), the time to the first image, the per-image cost split measured
    inside the worker (decode image, encoder, decoder, pre/post-processing: resizing, upsampling, scoring, NMS, RLE;
    wall time, and the CPU time of the whole image, which a shared machine's load does not inflate)
    and the 1-minute load average before and after. Ray's overhead per image: with one worker, the time
    the worker is idle between two images, Ray's minus the local run's, also as a share of the local
    cost per image; the startup (until the first image starts: model load, Ray's actors) apart. Nothing is written
    beside the photos; the runs' journals live in a temporary folder.
    Example: tinysam-mobile benchmark-dataset photos/ --out dataset-bench.json
    """
    from ..automatic_mask_generator import EverythingConfig
    from ..benchmarks.dataset import benchmark_dataset as measure
    from ..dataset import list_images
    from ..dataset.run import import_ray
    from ..dataset.work import EverythingJob, RunnerSpec
    from ..utils.files import atomic_path, check_outputs
    from .everything import generator_class

    try:
        sizes = tuple(int(n) for n in workers.split(","))
    except ValueError:
        raise TinySamError(f"--workers {workers!r}: expected comma-separated pool sizes, e.g. 1,2") from None
    if not sizes or min(sizes) < 1:
        raise TinySamError("--workers: every pool size must be at least 1")
    generator_class(mode)
    config = EverythingConfig(output_mode="coco_rle", points_per_side=points_per_side)
    check_outputs(files=(out,))
    import_ray()
    listing = list_images(images)
    job = EverythingJob(RunnerSpec.of(backend, checkpoint, artifacts, threads), mode, config)
    typer.echo(f"{len(listing.items)} images: local, then Ray with {', '.join(map(str, sizes))} worker(s) ...", err=True)
    figures = measure(job, listing, sizes, ray)
    figures["command"] = "tinysam-mobile benchmark-dataset " + " ".join(
        [str(images), "--out", str(out), "--workers", workers, "--mode", mode, "--points-per-side",
         str(points_per_side), "--threads", str(threads), "--backend", backend]
        + (["--checkpoint", str(checkpoint)] if checkpoint else []) + (["--artifacts", str(artifacts)] if artifacts else []))
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(figures, indent=2) + "\n")
    for run in figures["runs"]:
        cost = run["cost_per_image_s"]
        steady = run["steady_images_per_s"]
        typer.echo(f"{run['run']:>8}: {run['images_per_s']:.3f} images/s over {run['wall_s']:.1f} s, steady "
                   f"{'-' if steady is None else f'{steady:.3f}'} images/s, first image at {run['first_record_s']:.1f} s; "
                   f"per image: decode {cost['decode_image_s']:.3f} s, encoder {cost['encoder_s']:.2f} s, "
                   f"decoder {cost['decoder_s']:.2f} s, pre/post-processing {cost['pre_post_s']:.2f} s, CPU "
                   f"{cost['cpu_s']:.2f} s; startup "
                   f"{run['startup_s']:.1f} s (load {run['load_average_before_after']})")
    overhead = figures["ray_overhead_per_image"]
    if overhead:
        typer.echo(f"Ray overhead per image (1 worker's idle time between images, minus the local run's): "
                   f"{overhead['seconds_per_image']:.4f} s = "
                   f"{100 * overhead['share_of_local']:.1f}% of the local cost; Ray start {figures['ray_start_s']:.1f} s")
    typer.echo(f"figures: {out}")
