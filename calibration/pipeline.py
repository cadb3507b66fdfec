"""Calibration end to end: samples -> capture -> search -> ScalesFile, with rich progress bars."""

from pathlib import Path
from typing import Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..modeling.tinysam import TinySam
from .capture import OpData, capture
from .config import CalibrationConfig
from .dataset import PromptedImage, default_images, folder_images, prompted_images
from .scales import ScalesFile
from .search import minmax_scales, search_scales


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=True)


def calibration_samples(config: CalibrationConfig, img_size: int, images: Optional[Path] = None,
                        held_out: bool = False) -> list[PromptedImage]:
    """config.num_images images (a folder's first ones, or photos + scenes) with sampled prompts."""
    if images is not None:
        pictures = [(rgb, None) for rgb in folder_images(images, config.num_images, img_size)]
    else:
        pictures = default_images(config.num_images, held_out=held_out, seed=config.seed)
    seed = config.seed + (1 if held_out else 0)
    return prompted_images(pictures, img_size, config.prompts_per_image, config.num_points, seed)


def capture_with_progress(model: TinySam, samples: list[PromptedImage], config: CalibrationConfig
                          ) -> dict[str, OpData]:
    """The capture does not depend on bits or method: one serves every search."""
    with progress_bar() as bar:
        task = bar.add_task("capturing activations and gradients", total=len(samples))
        return capture(model, samples, config, progress=lambda: bar.advance(task))


def scales_from_capture(captured: dict[str, OpData], config: CalibrationConfig, checkpoint_sha256: str,
                        method: str = "tinysam-ptq") -> ScalesFile:
    """TinySAM PTQ scales (method 'tinysam-ptq') or the min/max baseline ('minmax')."""
    if method == "minmax":
        scales = minmax_scales(captured, config.bits, checkpoint_sha256)
    else:
        with progress_bar() as bar:
            task = bar.add_task(f"searching W{config.bits}A{config.bits} scales", total=len(captured))
            scales = search_scales(captured, config, checkpoint_sha256, progress=lambda name: bar.advance(task))
    scales.weight_sensitivity = {name: data.weight_grad2 for name, data in captured.items()
                                 if data.weight_grad2 is not None}
    return scales
