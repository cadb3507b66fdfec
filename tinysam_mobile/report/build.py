"""Build the report: convert and measure the chosen rows (each kept in the cache, so the report can be
made in several runs), then write the page from every row measured for this checkpoint and settings."""

import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

from ..utils.files import atomic_path
from .measure import CPU_RUNTIMES, ReportConfig, artifact_source, converted, measure_row
from .rows import ROWS, Row

REFERENCE = "torch fp32 (reference)"
REFERENCE_RECORD = "torch-fp32-reference"


def row_target(row: Row) -> Optional[float]:
    """Mean mask IoU the row must reach: validate's threshold for its precision (palettize4: reported only)."""
    from ..validation import THRESHOLDS

    return THRESHOLDS.get(row.precision)


def _cached(path: Path, key: dict) -> Optional[dict]:
    if path.is_file():
        record = json.loads(path.read_text())
        if record.get("key") == key:
            return record
    return None


def _store(path: Path, key: dict, figures: dict) -> dict:
    record = {"key": key, **figures}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record) + "\n")
    return record


def row_scales(row: Row, scales: dict[int, Path]) -> Optional[Path]:
    """The scales file a row is converted with (None for the rows without TinySAM PTQ, or when the file of its
    width was not given)."""
    return scales.get(row.scales_bits) if row.ptq_scales else None


def build_report(model, checkpoint_sha256: str, rows: tuple[Row, ...], cache: Path, scales: dict[int, Path],
                 config: ReportConfig, images, progress: Callable[[str], None]) -> dict[str, dict]:
    """{row name: figures} for the reference and every row of ROWS measured with these settings (the ones
    asked for now are converted and measured unless already cached). scales: the scales files by weight
    width."""
    from ..runners import TorchRunner
    from ..runners.factory import make_runner

    settings = {**asdict(config), "img_size": model.config.img_size}
    plain = artifact_source(checkpoint_sha256, None)
    by_bits = {bits: artifact_source(checkpoint_sha256, path) for bits, path in scales.items()}  # each hashed once
    source = {row: by_bits[row.scales_bits] if row_scales(row, scales) else plain for row in ROWS}
    record_path = lambda name: cache / f"{name}.figures.json"  # noqa: E731
    reference = TorchRunner(model)
    path, key = record_path(REFERENCE_RECORD), {**plain, **settings}
    records = {REFERENCE: _cached(path, key)}
    if records[REFERENCE] is None:
        progress("timing FP32 PyTorch")
        cache.mkdir(parents=True, exist_ok=True)
        records[REFERENCE] = _store(path, key, measure_row(reference, None, images, config))
    for row in ROWS:  # the rows asked for are measured unless cached; every row measured with these settings shows
        path, key = record_path(row.folder), {**source[row], **settings}
        record = _cached(path, key)
        if record is None and row in rows:
            progress(f"{row.name}: converting (or reusing the cached artifacts)")
            folder = converted(row, model, checkpoint_sha256, cache, row_scales(row, scales), source[row])
            progress(f"{row.name}: measuring against FP32 PyTorch")
            options = {"threads": config.threads} if row.target in CPU_RUNTIMES else {}
            runner = make_runner(row.target, artifacts=folder, **options)
            record = _store(path, key, measure_row(runner, reference, images, config, folder))
        if record is not None:
            records[row.name] = record
    return records


def header(weights: str, checkpoint_sha256: str, command: str, config: ReportConfig, img_size: int,
           missing: list[str], scales: dict[int, Path]) -> str:
    machine = f"{platform.processor() or platform.machine()}, {config.threads} threads"
    lines = [
        "# Fidelity report: every target and precision against FP32 PyTorch",
        "",
        f"Weights: {weights} (SHA-256 `{checkpoint_sha256[:16]}...`). Input size {img_size}.",
        f"Reproduce: `{command}` (artifacts and figures are kept in the cache folder, so rows can be measured "
        "in several runs)." + (" The TinySAM PTQ rows' scales (the 8 default calibration images): " + ", ".join(
            f"`tinysam-mobile calibrate --bits {bits} --out {path}`" for bits, path in sorted(scales.items(),
                                                                                           reverse=True)) + "."
            if scales else ""),
        "",
        f"Both sides are `TinySamPredictor` as a user calls it, on {config.images} held-out images (scikit-image "
        f"photos and generated scenes never used for calibration or training), {config.prompts_per_image} prompts "
        "each: 0-9 points without a box and 0-8 with one, every prompt-token count 1-10, each exactly as given. "
        "Mask IoU compares every mask of every prompt (3 per prompt) at the image's size. CoreML runs through the "
        "project's MIL interpreter on Linux (no latency quoted); LiteRT on XNNPACK, ONNX Runtime on its CPU "
        f"provider: median of {config.latency_runs} runs on {machine}, one process, on a machine shared with "
        "other jobs. Rows measured in separate runs (the cache keeps each row's figures) saw different loads: "
        "compare latencies of rows measured together, never across machines.",
    ]
    if missing:
        lines += ["", "Not measured in this report: " + ", ".join(missing) + "."]
    return "\n".join(lines)
