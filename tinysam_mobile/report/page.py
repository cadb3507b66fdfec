"""The report page: a Markdown table, two plots and an overlay sheet, from the measured rows."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..utils.files import atomic_path
from ..utils.visualize import draw_prompts, overlay_masks, save_png
from .measure import SHEET_PROMPTS, unpack_masks

PAGE = "README.md"
SHEET_FILE = "overlays.png"
DISTRIBUTION_FILE = "mask_iou_distribution.png"
SIZE_FILE = "size_vs_mask_iou.png"
PANEL_HEIGHT = 200
LABEL_WIDTH = 170


def _megabytes(record: dict) -> "float | None":
    sizes = record.get("size_bytes")
    return None if not sizes else sum(sizes.values()) / 1e6


def _latency(record: dict) -> str:
    latency = record.get("latency")
    return "-" if latency is None else f"{latency['encoder_ms']} / {latency['decoder_ms_one_prompt']}"


def table(records: dict[str, dict], targets: dict[str, float]) -> str:
    """Markdown rows: mask IoU vs FP32 (mean / p5 / min) against the row's target, embedding cosine,
    IoU-score error, size, CPU latency. A record without mask_iou is the reference itself."""
    lines = ["| row | mask IoU mean | p5 | min | target | embedding cosine (min) | IoU-score error (mean / max) "
             "| MB (encoder + decoder) | CPU ms (encoder / prompt) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, record in records.items():
        if "mask_iou" not in record:
            lines.append(f"| {name} | (reference) | | | | | | | {_latency(record)} |")
            continue
        iou, score = record["mask_iou"], record["iou_prediction_abs_error"]
        target = targets.get(name)
        verdict = "-" if target is None else f"{target}: {'met' if iou['mean'] >= target else '**missed**'}"
        size = _megabytes(record)
        lines.append(f"| {name} | {iou['mean']:.4f} | {iou['p5']:.4f} | {iou['min']:.4f} | {verdict} "
                     f"| {record['embedding_cosine']['min']:.5f} | {score['mean']:.4f} / {score['max']:.4f} "
                     f"| {'-' if size is None else f'{size:.1f}'} | {_latency(record)} |")
    return "\n".join(lines)


def token_table(records: dict[str, dict]) -> str:
    """Mean mask IoU per prompt-token count (a prompt's points, then 2 box corners or 1 padding point)."""
    # str keys: a record read back from the cache has JSON's string keys, a fresh one validate's ints
    measured = {name: {str(t): v for t, v in r["mask_iou_by_tokens"].items()}
                for name, r in records.items() if "mask_iou_by_tokens" in r}
    counts = sorted({int(t) for by in measured.values() for t in by})
    lines = ["| row | " + " | ".join(f"{t} tok" for t in counts) + " |", "|---|" + "---|" * len(counts)]
    for name, by in measured.items():
        cells = [f"{by[str(t)]['mean']:.3f}" if str(t) in by else "-" for t in counts]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    _pyplot().close(figure)


def plot_distribution(records: dict[str, dict], path: Path) -> None:
    """Box plot of every row's mask IoU (whiskers: min and max, triangle: mean)."""
    plt = _pyplot()
    measured = {name: r for name, r in records.items() if "mask_iou" in r}
    stats = [{"label": name, "whislo": r["mask_iou"]["min"], "q1": r["mask_iou"]["p25"],
              "med": r["mask_iou"]["median"], "q3": r["mask_iou"]["p75"], "whishi": r["mask_iou"]["max"],
              "mean": r["mask_iou"]["mean"], "fliers": []} for name, r in measured.items()]
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(stats) + 1.2))
    axis.bxp(stats, vert=False, showmeans=True)
    axis.invert_yaxis()
    axis.set_xlabel("mask IoU vs FP32 PyTorch (every mask of every prompt)")
    figure.tight_layout()
    _save(figure, path)


def plot_size(records: dict[str, dict], path: Path) -> None:
    """Mean mask IoU of every row against its artifacts' total size."""
    figure, axis = _pyplot().subplots(figsize=(7, 4.5))
    for name, record in records.items():
        size = _megabytes(record)
        if "mask_iou" in record and size is not None:
            axis.scatter(size, record["mask_iou"]["mean"])
            axis.annotate(name, (size, record["mask_iou"]["mean"]), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
    axis.set_xlabel("artifact size, encoder + decoder (MB)")
    axis.set_ylabel("mean mask IoU vs FP32 PyTorch")
    figure.tight_layout()
    _save(figure, path)


def overlay_sheet(records: dict[str, dict], photo: np.ndarray, path: Path) -> None:
    """One strip per row: the sheet photo with each SHEET_PROMPTS mask, the prompt drawn, name at the left."""
    strips = []
    for name, record in records.items():
        panels = [draw_prompts(overlay_masks(photo, [mask]), points, labels, box)
                  for mask, (_, points, labels, box) in zip(unpack_masks(record), SHEET_PROMPTS)]
        width = round(photo.shape[1] * PANEL_HEIGHT / photo.shape[0])
        resized = [np.asarray(Image.fromarray(p).resize((width, PANEL_HEIGHT), Image.BILINEAR)) for p in panels]
        label = Image.new("RGB", (LABEL_WIDTH, PANEL_HEIGHT), "white")
        ImageDraw.Draw(label).text((8, PANEL_HEIGHT // 2 - 6), name, fill="black")
        strips.append(np.concatenate([np.asarray(label), *resized], axis=1))
    header = Image.new("RGB", (strips[0].shape[1], 24), "white")
    draw = ImageDraw.Draw(header)
    for i, (title, *_) in enumerate(SHEET_PROMPTS):
        draw.text((LABEL_WIDTH + 8 + i * (strips[0].shape[1] - LABEL_WIDTH) // len(SHEET_PROMPTS), 6), title,
                  fill="black")
    save_png(np.concatenate([np.asarray(header), *strips], axis=0), path)


def write_page(out: Path, records: dict[str, dict], targets: dict[str, float], header: str) -> Path:
    """out/README.md with the tables and the pictures (written beside it)."""
    from ..calibration.dataset import scikit_image_photo
    from .measure import SHEET_PHOTO

    plot_distribution(records, out / DISTRIBUTION_FILE)
    plot_size(records, out / SIZE_FILE)
    overlay_sheet(records, scikit_image_photo(SHEET_PHOTO), out / SHEET_FILE)
    text = (f"{header}\n\n{table(records, targets)}\n\n"
            f"Mean mask IoU per prompt-token count:\n\n{token_table(records)}\n\n"
            f"![mask IoU distribution per row]({DISTRIBUTION_FILE})\n\n![size against mask IoU]({SIZE_FILE})\n\n"
            f"The same prompts on `{SHEET_PHOTO}` through every row (the mask an app shows: highest predicted "
            f"IoU):\n\n![overlay sheet]({SHEET_FILE})\n")
    with atomic_path(out / PAGE) as tmp:
        tmp.write_text(text)
    return out / PAGE
