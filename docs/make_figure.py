"""Render docs/pipeline.png: what the apps must feed the encoder, and where everything mode prompts.

Run: .venv/bin/python docs/make_figure.py   (uses only the reference pipeline's own functions)
"""

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageDraw

from tinysam_mobile.utils.amg import grid_in_pixels, hierarchy_candidates
from tinysam_mobile.utils.transforms import pad_pixels, resize_longest_side

PANEL = 360
OUT = Path(__file__).with_name("pipeline.png")


def panel(image: np.ndarray, title: str) -> Image.Image:
    scale = PANEL / max(image.shape[:2])
    pil = Image.fromarray(image).resize((round(image.shape[1] * scale), round(image.shape[0] * scale)))
    canvas = Image.new("RGB", (PANEL, PANEL + 28), (255, 255, 255))
    canvas.paste(pil, (0, 28))
    ImageDraw.Draw(canvas).text((6, 8), title, fill=(0, 0, 0))
    return canvas


def main() -> None:
    photo = skimage.data.coffee()  # 400 x 600
    encoder_input = pad_pixels(resize_longest_side(photo, 1024), 1024)[0].round().astype(np.uint8)

    lattice = photo.copy()
    draw_target = Image.fromarray(lattice)
    draw = ImageDraw.Draw(draw_target)
    round1 = grid_in_pixels(8, photo.shape[:2])
    round2 = hierarchy_candidates(round1, photo.shape[:2], 32)
    for (x, y) in round2:
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 200, 0))
    for (x, y) in round1:
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(0, 200, 255), outline=(0, 0, 0))

    panels = [
        panel(photo, "photo (600x400)"),
        panel(encoder_input, "encoder input: longest side 1024, mean-colour pad"),
        panel(np.asarray(draw_target), f"everything: 8x8 round 1 (blue), {len(round2)} round-2 candidates"),
    ]
    sheet = Image.new("RGB", (PANEL * 3 + 20, PANEL + 28), (255, 255, 255))
    for i, p in enumerate(panels):
        sheet.paste(p, (i * (PANEL + 10), 0))
    sheet.save(OUT)
    print(OUT)


if __name__ == "__main__":
    main()
