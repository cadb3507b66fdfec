"""Peak memory of the image-taking verbs on the largest image this tool accepts.

Each verb runs as its own `python -m tinysam_mobile` process, so its peak resident set size (the kernel's
ru_maxrss for exactly that child, read with os.wait4) is the verb's alone, Python and torch included. A
baseline run of the same verb on the source photo at its own size separates what the image costs from
what the model and runtimes cost.
"""

import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from ..utils.image_io import MAX_PIXELS

VERBS = ("segment", "everything", "convert")


@dataclass(frozen=True)
class MemoryBenchmarkConfig:
    verbs: tuple[str, ...] = VERBS
    pixels: int = MAX_PIXELS
    baseline: bool = True
    # Everything mode keeps only confident masks; on a weak checkpoint its defaults keep none, which
    # would leave the full-resolution mask work unmeasured: lower thresholds measure that work.
    pred_iou_thresh: Optional[float] = None
    stability_score_thresh: Optional[float] = None


@dataclass(frozen=True)
class Measurement:
    verb: str
    image: str  # "limit" or "baseline"
    width: int
    height: int
    peak_rss_mb: float
    seconds: float
    output: str  # the verb's last output line: what it did


def scaled_photo(photo: np.ndarray, pixels: int, path: Path) -> tuple[int, int]:
    """Write `photo` upscaled to the largest size of its aspect with at most `pixels` pixels, as a JPEG
    (what a phone camera hands over); returns (width, height)."""
    h, w = photo.shape[:2]
    scale = math.sqrt(pixels / (w * h))
    width, height = int(w * scale), int(h * scale)
    while width * height > pixels:
        width -= 1
    Image.fromarray(photo).resize((width, height), Image.BICUBIC).save(path, quality=90)
    return width, height


def verb_arguments(verb: str, image: Path, work: Path, config: MemoryBenchmarkConfig) -> list[str]:
    """The command line a user would type for `verb` on `image` (outputs under `work`)."""
    if verb == "segment":
        with Image.open(image) as img:
            width, height = img.size
        return ["segment", str(image), "--point", f"{width // 2},{height // 2}", "--out", str(work / "mask.png")]
    if verb == "everything":
        thresholds = [("--pred-iou-thresh", config.pred_iou_thresh),
                      ("--stability-score-thresh", config.stability_score_thresh)]
        return ["everything", str(image), "--out", str(work / "masks.json"),
                *[part for option, value in thresholds if value is not None for part in (option, str(value))]]
    if verb == "convert":
        # The image reaches `convert` only as a calibration photo; int8-xnnpack calibrates the encoder on it.
        photos = work / "calibration"
        photos.mkdir(exist_ok=True)
        os.link(image, photos / image.name)
        return ["convert", "--target", "tflite", "--precision", "int8-xnnpack", "--calibration-images",
                str(photos), "--out", str(work / "artifacts")]
    raise ValueError(f"unknown verb {verb!r}")


def peak_rss(arguments: list[str]) -> tuple[float, float, str]:
    """Run `python -m tinysam_mobile ARGUMENTS`; (peak RSS in MB, wall seconds, its last output line)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-m", "tinysam_mobile", *arguments],
                                   stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        log.seek(0)
        lines = log.read().decode(errors="replace").strip().splitlines()
    last = lines[-1] if lines else ""
    if process.returncode != 0:
        raise RuntimeError(f"`tinysam-mobile {' '.join(arguments)}` exited {process.returncode}: {last}")
    return usage.ru_maxrss / 1024, seconds, last  # ru_maxrss is in KiB on Linux


def measure_memory(photo: np.ndarray, config: MemoryBenchmarkConfig,
                   report: Callable[[Measurement], None] = lambda _: None) -> list[Measurement]:
    """Each verb on `photo` scaled to config.pixels (and on `photo` itself when config.baseline)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="tinysam-memory-") as folder:
        folder = Path(folder)
        images = [("limit", folder / "limit.jpg", scaled_photo(photo, config.pixels, folder / "limit.jpg"))]
        if config.baseline:
            Image.fromarray(photo).save(folder / "baseline.png")
            images.append(("baseline", folder / "baseline.png", (photo.shape[1], photo.shape[0])))
        for verb in config.verbs:
            for label, image, (width, height) in images:
                work = Path(tempfile.mkdtemp(prefix=f"{verb}-{label}-", dir=folder))
                mb, seconds, output = peak_rss(verb_arguments(verb, image, work, config))
                output = output.replace(str(work), "OUT")  # the temporary folder is gone afterwards
                results.append(Measurement(verb, label, width, height, round(mb, 1), round(seconds, 1), output))
                report(results[-1])
    return results
