"""A contact sheet a person can judge at a glance: predictions on real photos and on held-out scenes."""

from pathlib import Path

import numpy as np
from PIL import Image

from ..calibration.dataset import scikit_image_photo
from ..data import SceneConfig, generate_scene
from ..predictor import TinySamPredictor
from ..utils.visualize import distinct_colors, draw_prompts, overlay_masks, save_png
from .evaluation import innermost_pixel

# (scikit-image photo, clicks as (x, y, label), box or None), placed by looking at each photo.
PHOTO_PROMPTS = (
    ("chelsea", [(230, 140, 1)], None),
    ("astronaut", [(225, 120, 1)], None),
    ("astronaut", [], (275, 340, 512, 512)),
    ("coffee", [(290, 150, 1)], None),
    ("coffee", [], (170, 15, 420, 300)),
    ("rocket", [(320, 250, 1)], None),
    ("coins", [(155, 50, 1)], None),
    ("coins", [(340, 180, 1)], None),
)
PANEL_HEIGHT = 256


def photo_panels(predictor: TinySamPredictor) -> list[np.ndarray]:
    """Each photo with its prompt and the kept mask (highest predicted IoU) drawn over it."""
    panels, current = [], None
    for name, clicks, box in PHOTO_PROMPTS:
        photo = scikit_image_photo(name)
        if name != current:
            predictor.set_image(photo)
            current = name
        coords = np.array([c[:2] for c in clicks], np.float32) if clicks else None
        labels = np.array([c[2] for c in clicks], np.float32) if clicks else None
        box_arr = np.array(box, np.float32) if box is not None else None
        masks, _, _ = predictor.predict(coords, labels, box_arr, multimask_output=False)
        panels.append(draw_prompts(overlay_masks(photo, [masks[0]]), coords, labels, box_arr))
    return panels


def scene_panels(predictor: TinySamPredictor, seeds: list[int], height: int, width: int) -> list[np.ndarray]:
    """Held-out scenes, twice: the true masks, then each object's one-click prediction."""
    panels = []
    for seed in seeds:
        scene = generate_scene(seed, SceneConfig(height=height, width=width))
        predictor.set_image(scene.image)
        clicks = np.stack([innermost_pixel(m) for m in scene.masks])
        predicted = [predictor.predict(xy[None], np.ones(1, np.float32), multimask_output=False)[0][0]
                     for xy in clicks]
        colors = distinct_colors(len(scene.masks))
        ones = np.ones(len(clicks), np.float32)
        panels.append(overlay_masks(scene.image, list(scene.masks), colors))
        panels.append(draw_prompts(overlay_masks(scene.image, predicted, colors), clicks, ones))
    return panels


def _row(panels: list[np.ndarray]) -> np.ndarray:
    resized = [np.asarray(Image.fromarray(p).resize((round(p.shape[1] * PANEL_HEIGHT / p.shape[0]), PANEL_HEIGHT),
                                                    Image.BILINEAR)) for p in panels]
    gap = np.full((PANEL_HEIGHT, 8, 3), 255, np.uint8)
    return np.concatenate([x for p in resized for x in (p, gap)][:-1], axis=1)


def write_sheet(predictor: TinySamPredictor, path: "str | Path", scene_seeds: list[int],
                height: int = 480, width: int = 640, per_row: int = 4) -> None:
    panels = photo_panels(predictor) + scene_panels(predictor, scene_seeds, height, width)
    rows = [_row(panels[i:i + per_row]) for i in range(0, len(panels), per_row)]
    wide = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 8), (0, wide - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    save_png(np.concatenate(rows, axis=0), path)
