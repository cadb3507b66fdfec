"""The learning curve: held-out quality at the shipping size, measured during training, as CSV and PNG."""

import csv
from pathlib import Path

from ..modeling import TinySam, TinySamConfig
from ..predictor import TinySamPredictor
from ..utils.files import atomic_path
from .evaluation import EvalConfig, evaluate_scenes

COLUMNS = ("step", "seconds", "miou_point", "miou_points3", "miou_box", "miou_point_best_of_3", "iou_correlation")


def measure(model: TinySam, config: EvalConfig, img_size: int = 1024) -> dict:
    """Held-out figures of the training model's current weights, run by a separate eval-mode copy at
    img_size (the training model keeps its mode, size and weights)."""
    shipped = TinySam(TinySamConfig(img_size))
    shipped.load_state_dict(model.state_dict(), strict=True)
    return evaluate_scenes(TinySamPredictor(shipped.eval()), config)


def append_point(path: "str | Path", step: int, seconds: float, figures: dict) -> None:
    path = Path(path)
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({"step": step, "seconds": round(seconds, 1), **{
            k: ("" if figures.get(k) is None else round(figures[k], 4)) for k in COLUMNS[2:]}})


def read_curve(path: "str | Path") -> list[dict]:
    with open(path, newline="") as handle:
        return [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(handle)]


def plot_curve(csv_path: "str | Path", png_path: "str | Path", title: str) -> None:
    """mIoU per prompt kind and the IoU-head correlation against training hours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_curve(csv_path)
    hours = [row["seconds"] / 3600 for row in rows]
    figure, axis = plt.subplots(figsize=(7, 4), dpi=120)
    for key, label in (("miou_point", "1 click"), ("miou_points3", "3 clicks"), ("miou_box", "box"),
                       ("iou_correlation", "IoU-head correlation")):
        points = [(h, row[key]) for h, row in zip(hours, rows) if row[key] is not None]
        if points:
            axis.plot(*zip(*points), marker="o", markersize=3, label=label,
                      linestyle="--" if key == "iou_correlation" else "-")
    axis.set_xlabel("training wall time (hours)")
    axis.set_ylabel("held-out mIoU at 1024 / correlation")
    axis.set_ylim(-0.05, 1.0)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", fontsize=8)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
