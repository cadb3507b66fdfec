"""`tinysam-mobile evaluate`: mask quality on held-out generated scenes and an overlay sheet of real photos."""

import json
from pathlib import Path
from typing import Optional

import typer

from . import app
from .options import CheckpointOption


@app.command()
def evaluate(
    checkpoint: Optional[Path] = CheckpointOption,
    scenes: int = typer.Option(40, help="Held-out generated scenes to score (every object in each)."),
    seed_start: Optional[int] = typer.Option(None, help="First scene seed. Default: the start of the held-out "
                                                        "range (1e9), which training never draws from.",
                                             show_default=False),
    img_size: int = typer.Option(1024, help="Model input size (1024 is what artifacts ship at; smaller "
                                            "multiples of 64 show the quality at reduced resolution)."),
    sheet: Optional[Path] = typer.Option(None, help="Write an overlay sheet PNG: the model's masks on "
                                                    "scikit-image's photos and on held-out scenes.",
                                         show_default=False),
    out: Optional[Path] = typer.Option(None, help="Also write the figures as JSON here.", show_default=False),
    threads: int = typer.Option(2, help="CPU threads for torch."),
) -> None:
    """Score TinySAM on generated scenes it was not trained on (640x480, several objects each).

    Per object: one click at its innermost pixel, three clicks (that one plus two inside), and its tight
    box; each prompt keeps the mask with the highest predicted IoU. Reports the mean IoU per prompt kind,
    the one-click mean when the best of the three masks is picked, and the correlation of predicted and
    true IoU over all output masks (everything mode filters on the predicted IoU). A table then breaks
    the means down by shape kind and by size class (visible share of the image: tiny < 0.2%, small < 1%,
    medium < 5%, large), to show where a model fails.
    """
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from ..checkpoint import load_tinysam
    from ..errors import TinySamError
    from ..modeling import TinySamConfig
    from ..predictor import TinySamPredictor
    from ..training.evaluation import PROMPTS, EvalConfig, breakdown, score_objects, summarize
    from ..training.sheet import write_sheet
    from ..utils.files import atomic_path, check_outputs

    if scenes < 1:
        raise TinySamError("--scenes must be at least 1")
    try:
        model_config = TinySamConfig(img_size)
    except ValueError as exc:
        raise TinySamError(f"--img-size: {exc}") from None
    check_outputs(files=(sheet, out))
    torch.set_num_threads(max(1, threads))
    predictor = TinySamPredictor(load_tinysam(checkpoint, model_config))
    config = EvalConfig(scenes=scenes, **({} if seed_start is None else {"seed_start": seed_start}))
    with Progress(transient=True) as progress:
        task = progress.add_task("held-out scenes", total=scenes)
        scores = score_objects(predictor, config, on_scene=lambda done: progress.update(task, completed=done))
        if sheet is not None:
            progress.add_task("overlay sheet", total=None)
            write_sheet(predictor, sheet, scene_seeds=[config.seed_start + i for i in range(2)])
    figures = {"img_size": img_size, "checkpoint": str(checkpoint) if checkpoint else "embedded demo",
               **summarize(scores, scenes)}
    for key, value in figures.items():
        shown = f"{value:.4f}" if isinstance(value, float) else "undefined (constant)" if value is None else value
        typer.echo(f"{key:>22}: {shown}")
    figures["breakdown"] = breakdown(scores)
    table = Table(title="mean IoU of the kept mask, by shape and by size")
    for column in ("group", "objects", *PROMPTS):
        table.add_column(column, justify="left" if column == "group" else "right")
    for by, groups in figures["breakdown"].items():
        for name, group in groups.items():
            table.add_row(f"{by} {name}", str(group["objects"]), *(f"{group[f'miou_{kind}']:.3f}" for kind in PROMPTS))
    Console().print(table)
    if sheet is not None:
        typer.echo(f"sheet: {sheet}")
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(figures, indent=2))
        typer.echo(f"figures: {out}")
