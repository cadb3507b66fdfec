"""`tinysam-mobile validate`: how close converted artifacts are to FP32 PyTorch, with pass/fail."""

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import TinySamError
from ..utils.prompts import DEFAULT_PROMPTS_PER_IMAGE
from . import app
from .dataset import (JournalOption, RayOption, ThreadsOption, WorkersOption, check_dataset_options,
                      run_dataset, summary_line)
from .options import CheckpointOption, DelegateOption, runner_options

DEFAULT_IMAGES = 8  # held-out photos and generated scenes, never used for calibration


@app.command()
def validate(
    artifacts: Path = typer.Argument(..., help="Folder written by 'tinysam-mobile convert'.", show_default=False),
    images: Optional[Path] = typer.Option(None, "--images", help="Photos to validate on, any number: a folder "
                                          "(searched recursively) or a .txt list of paths, one per line. Each "
                                          "photo's prompts are drawn from a seed of its contents. Default: held-out "
                                          "scikit-image photos and generated scenes.", show_default=False),
    checkpoint: Optional[Path] = CheckpointOption,
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON here.",
                                            show_default=False),
    prompts_per_image: int = typer.Option(DEFAULT_PROMPTS_PER_IMAGE, min=1, help="Prompts per image, as a user "
                                          "gives them: 0 to 9 points without a box, 0 to 8 with one (every "
                                          "token count the decoder takes), in turn across the images."),
    delegate: str = DelegateOption,
    per_half: bool = typer.Option(False, "--per-half", help="Also measure each half alone: the artifacts' "
                                  "encoder with PyTorch's decoder, and PyTorch's encoder with the artifacts' "
                                  "decoder (three times the work). Pass / fail stays on the whole pipeline."),
    ray: Optional[str] = RayOption,
    workers: Optional[int] = WorkersOption,
    threads: Optional[int] = ThreadsOption,
    journal: Optional[Path] = typer.Option(None, "--journal", show_default=False, help=JournalOption.help.replace(
        "(default: beside the output)", "(default: ARTIFACTS.validate.journal, beside the artifacts folder)")),
) -> None:
    """Verify the manifest's hashes, then compare the artifacts with FP32 PyTorch on many prompts.

    Both sides are TinySamPredictor as a user calls it, each prompt exactly as the user gave it.
    Reports embedding cosine and maximum error, the mask IoU distribution (mean, min, 5th percentile;
    every mask of every prompt, at the image's size), its mean per prompt-token count (a prompt's
    points, then 2 box corners or 1 padding point) and the IoU-prediction error. Exits with 1 when the
    mean mask IoU misses the precision's threshold (fp32 0.995, fp16 0.99, int8 0.98, w8a8 and w8a16 0.95,
    palettize8 0.98, palettize6 0.97; others 0.99), with 2
    when the artifacts are missing, modified or do not match the checkpoint.

    With --images, each photo's figures are appended to a journal as it finishes (an interrupted run
    resumes; unreadable photos are reported on one line each and left out), optionally on Ray, and the
    report covers every photo in the journal that the folder or list holds.
    Example: tinysam-mobile validate out/tflite-fp32 --images photos/ --ray auto
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from ..calibration.dataset import default_images
    from ..checkpoint import checkpoint_id, load_tinysam
    from ..converters.manifest import load_manifest
    from ..runners import TorchRunner
    from ..runners.factory import make_runner
    from ..utils.files import atomic_path, check_outputs
    from ..validation import THRESHOLDS, HalfSwap, ParityConfig, measure_parity

    check_dataset_options(images is not None, ray, workers, threads, journal, "--images")
    check_outputs(files=(json_out,))
    manifest = load_manifest(artifacts)  # refuses modified artifacts before anything runs
    if manifest["checkpoint_sha256"] != checkpoint_id(checkpoint):
        raise TinySamError(f"{artifacts} was converted from checkpoint {manifest['checkpoint_sha256'][:16]}..., "
                           f"not from {checkpoint_id(checkpoint)[:16]}...; pass the same --checkpoint")
    target, precision = manifest["target"], manifest["precision"]
    options = runner_options(target, delegate)
    if images is not None:
        default_journal = artifacts.absolute().with_name(artifacts.absolute().name + ".validate.journal")
        measured = validate_dataset(images, artifacts, manifest, checkpoint, options, prompts_per_image, per_half,
                                    threads or 1, journal or default_journal, ray, workers)
    else:
        pictures = default_images(DEFAULT_IMAGES, held_out=True)
        runner = make_runner(target, artifacts=artifacts, **options)
        reference = TorchRunner(load_tinysam(checkpoint))
        runs = {"pipeline": runner}
        if per_half:
            runs.update(encoder_only=HalfSwap(runner, reference), decoder_only=HalfSwap(reference, runner))
        measured = {}
        with Progress(transient=True) as bar:
            for name, candidate in runs.items():
                task = bar.add_task(f"{target} {precision} vs PyTorch: {name.replace('_', ' ')}", total=len(pictures))
                measured[name] = measure_parity(candidate, reference, pictures,
                                                ParityConfig(prompts_per_image=prompts_per_image),
                                                on_image=lambda task=task: bar.advance(task))
    threshold = THRESHOLDS[precision] if precision in THRESHOLDS else THRESHOLDS["fp16"]
    passed = measured["pipeline"]["mask_iou"]["mean"] >= threshold
    figures = {"artifacts": str(artifacts), "target": target, "precision": precision, "delegate": delegate,
               **measured.pop("pipeline"), "threshold_mean_mask_iou": threshold, "passed": passed,
               **({"per_half": measured} if per_half else {})}

    table = Table(title=f"{target} {precision} vs FP32 PyTorch: {figures['images']} images, {figures['prompts']} prompts")
    table.add_column("metric")
    columns = {"value": figures, **{name.replace("_", " "): half for name, half in measured.items()}}
    for title in columns:
        table.add_column(title, justify="right")
    rows = {"embedding cosine (mean / min)": lambda f: f"{f['embedding_cosine']['mean']:.5f} / "
                                                       f"{f['embedding_cosine']['min']:.5f}",
            "embedding max abs error": lambda f: f"{f['embedding_max_abs_error']:.4g}",
            "mask IoU mean / min / p5": lambda f: f"{f['mask_iou']['mean']:.4f} / {f['mask_iou']['min']:.4f} / "
                                                  f"{f['mask_iou']['p5']:.4f}",
            "IoU prediction abs error (mean / max)": lambda f: f"{f['iou_prediction_abs_error']['mean']:.4f} / "
                                                               f"{f['iou_prediction_abs_error']['max']:.4f}"}
    for tokens in figures["mask_iou_by_tokens"]:
        rows[f"  mask IoU mean, {tokens}-token prompts"] = lambda f, t=tokens: f"{f['mask_iou_by_tokens'][t]['mean']:.4f}"
    for name, cell in rows.items():
        table.add_row(name, *(cell(f) for f in columns.values()))
    table.add_row("threshold (mean mask IoU)", f"{threshold}")
    table.add_row("result", "PASS" if passed else "FAIL")
    Console().print(table)
    if json_out is not None:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(figures, indent=2) + "\n")
    if not passed:
        raise typer.Exit(1)


def validate_dataset(images: Path, artifacts: Path, manifest: dict, checkpoint: Optional[Path], options: dict,
                     prompts_per_image: int, per_half: bool, threads: int, journal_path: Path, ray: Optional[str],
                     workers: Optional[int]) -> dict:
    """validate --images: every photo through the artifacts and FP32 PyTorch (here or per Ray worker), one
    journal line each; returns the figures of each run (pipeline, and with per_half the two halves)."""
    from ..dataset import list_images
    from ..dataset.work import ParityJob, RunnerSpec
    from ..utils.files import check_outputs
    from ..validation import summarize_parity

    check_outputs(files=(journal_path,))
    listing = list_images(images)
    runner = RunnerSpec.of(manifest["target"], None, artifacts, threads, **options)
    job = ParityJob(runner, checkpoint and str(checkpoint.absolute()), manifest["preprocessing"]["input_size"],
                    prompts_per_image, per_half)
    summary, journal = run_dataset(job, listing, journal_path, ray, workers,
                                   f"{manifest['target']} {manifest['precision']} vs PyTorch")
    typer.echo(summary_line(summary, "photos"), err=True)
    if all("error" in record for record in journal.records(listing.names)):
        raise TinySamError(f"{images}: none of the photos could be read")
    return {name: summarize_parity(record["runs"][name] for record in journal.records(listing.names)
                                   if "error" not in record)
            for name in ["pipeline", *(("encoder_only", "decoder_only") if per_half else ())]}
