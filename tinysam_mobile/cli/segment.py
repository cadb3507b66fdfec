"""`tinysam-mobile segment`: one image, point and box prompts, one mask."""

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..predictor import TinySamPredictor
from ..runners.factory import make_runner
from ..utils.files import check_outputs
from ..utils.image_io import load_image
from ..utils.visualize import MASK_COLOR, draw_prompts, overlay_masks, save_png
from . import app
from .options import (ArtifactsOption, BackendOption, CheckpointOption, DelegateOption, parse_box, parse_points,
                      runner_options)


@app.command()
def segment(
    image: Path = typer.Argument(..., help="Photo to segment (JPEG, PNG, ...; EXIF rotation is honoured).",
                                 show_default=False),
    point: list[str] = typer.Option(
        [], "--point", "-p", show_default=False,
        help="A click as X,Y (foreground) or X,Y,LABEL with LABEL 1 foreground / 0 background, in pixels "
             "of the original image. Repeat for several clicks."),
    box: Optional[str] = typer.Option(None, "--box", help="Box prompt X0,Y0,X1,Y1 in pixels.", show_default=False),
    out: Path = typer.Option(Path("mask.png"), "--out", "-o", help="Binary mask PNG (0/255) at the image's size."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Also write the mask drawn over the photo.",
                                           show_default=False),
    checkpoint: Optional[Path] = CheckpointOption,
    backend: str = BackendOption,
    artifacts: Optional[Path] = ArtifactsOption,
    delegate: str = DelegateOption,
) -> None:
    """Segment the object at the given clicks and/or box and write its mask.

    TinySAM predicts three candidate masks; the one with the highest predicted IoU is written.
    Example: tinysam-mobile segment photo.jpg --point 320,240 --point 100,80,0 --out mask.png
    """
    coords, labels = parse_points(point)
    box_arr = parse_box(box)
    check_outputs(files=(out, overlay))
    rgb = load_image(image)
    predictor = TinySamPredictor(make_runner(backend, checkpoint, artifacts, **runner_options(backend, delegate)))
    predictor.set_image(rgb)
    masks, iou, _ = predictor.predict(coords, labels, box_arr, multimask_output=False)
    mask = masks[0]
    save_png(mask.astype(np.uint8) * 255, out)
    typer.echo(f"mask: {out} ({int(mask.sum())} pixels, predicted IoU {float(iou[0]):.3f}, backend {backend})")
    if overlay is not None:
        picture = draw_prompts(overlay_masks(rgb, [mask], np.array([MASK_COLOR])), coords, labels, box_arr)
        save_png(picture, overlay)
        typer.echo(f"overlay: {overlay}")
