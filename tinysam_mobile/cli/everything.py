"""`tinysam-mobile everything`: every object in one image, as COCO RLE masks in a JSON file."""

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import TinySamError
from . import app
from .dataset import (JournalOption, RayOption, ThreadsOption, WorkersOption, check_dataset_options,
                      run_dataset, summary_line)
from .options import (ArtifactsOption, BackendOption, CheckpointOption, HighScoreThreshOption, PredIouThreshOption,
                      StabilityThreshOption)

MODES = ("hierarchical", "dense")


def generator_class(mode: str):
    from ..automatic_mask_generator import TinySamDenseMaskGenerator, TinySamHierarchicalMaskGenerator

    if mode not in MODES:
        raise TinySamError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return TinySamHierarchicalMaskGenerator if mode == "hierarchical" else TinySamDenseMaskGenerator


def progress_bar(description: str):
    """A rich progress bar and the (done, planned[, label]) callback the generators report to."""
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task(description, total=None)

    def report(done: int, planned: int, label: Optional[str] = None) -> None:
        bar.update(task, completed=done, total=planned, **({"description": label} if label else {}))

    return bar, report


@app.command()
def everything(
    image: Path = typer.Argument(..., help="Photo to segment (JPEG, PNG, ...; EXIF rotation is honoured), or a "
                                 "folder of photos (searched recursively) or a .txt list of photo paths, one per "
                                 "line.", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="JSON file of the masks (COCO RLE) with their scores; for "
                             "a folder or list, one COCO-style file for all the photos.", show_default=False),
    mode: str = typer.Option("hierarchical", "--mode", "-m", help="hierarchical: TinySAM's two rounds (an 8x8 "
                             "grid, then the uncovered points of the 32x32 lattice). dense: SAM's full 32x32 grid."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Also write a PNG with every mask coloured "
                                           "over the photo.", show_default=False),
    checkpoint: Optional[Path] = CheckpointOption,
    backend: str = BackendOption,
    artifacts: Optional[Path] = ArtifactsOption,
    points_per_side: int = typer.Option(32, help="Side of the dense grid and of the hierarchical lattice."),
    points_per_batch: int = typer.Option(64, help="Prompts per decoder call."),
    pred_iou_thresh: float = PredIouThreshOption,
    stability_score_thresh: float = StabilityThreshOption,
    box_nms_thresh: float = typer.Option(0.7, help="Drop a mask whose box overlaps a better one by more than "
                                         "this IoU."),
    high_score_thresh: float = HighScoreThreshOption,
    min_mask_region_area: int = typer.Option(0, help="Fill holes and drop islands smaller than this many pixels "
                                             "(0: keep masks as predicted)."),
    ray: Optional[str] = RayOption,
    workers: Optional[int] = WorkersOption,
    threads: Optional[int] = ThreadsOption,
    journal: Optional[Path] = JournalOption,
) -> None:
    """Segment everything in IMAGE and write the masks, best predicted IoU first.

    Each JSON record holds segmentation (COCO RLE, decodable with pycocotools.mask.decode), area,
    bbox (X, Y, W, H), predicted_iou, stability_score and point_coords (the prompt that produced it).
    Example: tinysam-mobile everything photo.jpg --out masks.json --overlay masks.png

    A folder or list gives one COCO-style file: images (id, file_name below the folder or as listed,
    height, width), annotations (the records above with id, image_id, category_id 1, iscrowd 0) and
    failed (file_name, error: photos that could not be read, each also reported on one line as the
    run goes). Each photo's record is appended to a journal as it finishes, so an interrupted run
    resumes where it stopped; the output is written once all are done, whole.
    Example: tinysam-mobile everything photos/ --out annotations.json --ray auto
    """
    from dataclasses import asdict

    from ..automatic_mask_generator import EverythingConfig
    from ..dataset import is_image_list
    from ..dataset.work import RunnerSpec
    from ..runners.factory import make_runner
    from ..utils.amg import decode_rle
    from ..utils.files import atomic_path, check_outputs
    from ..utils.image_io import load_image
    from ..utils.visualize import overlay_masks, save_png

    # Options and image are checked before the model loads.
    generator = generator_class(mode)
    config = EverythingConfig(
        output_mode="coco_rle", points_per_side=points_per_side, points_per_batch=points_per_batch,
        pred_iou_thresh=pred_iou_thresh, stability_score_thresh=stability_score_thresh,
        box_nms_thresh=box_nms_thresh, high_score_thresh=high_score_thresh,
        min_mask_region_area=min_mask_region_area)
    dataset = is_image_list(image)
    check_dataset_options(dataset, ray, workers, threads, journal, "a folder or list of images")
    if dataset:
        if overlay is not None:
            raise TinySamError("--overlay draws one photo; it does not apply to a folder or list of images")
        everything_dataset(image, out, mode, config, RunnerSpec.of(backend, checkpoint, artifacts, threads or 1),
                           journal or out.with_name(out.name + ".journal"), ray, workers)
        return
    check_outputs(files=(out, overlay))
    rgb = load_image(image)
    generator = generator(make_runner(backend, checkpoint, artifacts), config)
    bar, report = progress_bar(f"{mode}: decoding prompts")
    with bar:
        records = generator.generate(rgb, progress=report)
    stats = generator.stats
    result = {
        "image": str(image),
        "height": rgb.shape[0],
        "width": rgb.shape[1],
        "mode": mode,
        "backend": backend,
        "prompts": stats.prompts,
        "prompts_per_round": stats.prompts_per_round,
        "seconds": round(stats.total_s, 3),
        "config": asdict(generator.config),
        "masks": records,
    }
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result))
    typer.echo(f"{len(records)} masks from {stats.prompts} prompts in {stats.total_s:.1f} s ({mode}, {backend}): {out}")
    if overlay is not None:
        by_area = sorted(records, key=lambda r: -r["area"])  # small masks drawn last stay visible
        masks = decode_rle([r["segmentation"] for r in by_area], rgb.shape[:2])
        save_png(overlay_masks(rgb, list(masks)), overlay)
        typer.echo(f"overlay: {overlay}")


def everything_dataset(source: Path, out: Path, mode: str, config, runner, journal_path: Path, ray: Optional[str],
                       workers: Optional[int]) -> None:
    """`everything` over a folder or list: every photo through one runner (here or per Ray worker), then
    one COCO-style file."""
    from ..dataset import list_images
    from ..dataset.coco import write_coco
    from ..dataset.work import EverythingJob
    from ..utils.files import check_outputs

    check_outputs(files=(out, journal_path))
    listing = list_images(source)
    job = EverythingJob(runner, mode, config)
    summary, journal = run_dataset(job, listing, journal_path, ray, workers, f"everything ({mode}, {runner.backend})")
    counts = write_coco(out, journal, listing.names, {"description": "tinysam-mobile everything", **job.settings()})
    typer.echo(summary_line(summary, "images"))
    typer.echo(f"{counts['images']} images, {counts['annotations']} masks, {counts['failed']} failed: {out}")
