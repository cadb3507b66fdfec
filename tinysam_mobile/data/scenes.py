"""Seeded synthetic scenes: several objects over a background, with exact masks of what stays visible.

Objects are stacked back to front (painter's order); each mask is the part of its object that no later
object covers, so masks are disjoint and every masked pixel shows that object's fill. Objects whose
visible part would be too small are dropped before painting, so nothing unlabelled ends up in the image.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter
from skimage import draw

from .textures import texture_patch

SHAPES = ("ellipse", "polygon", "blob", "star", "thin", "ring", "crescent")


@dataclass(frozen=True)
class SceneConfig:
    height: int = 256
    width: int = 256
    min_objects: int = 2
    max_objects: int = 9
    min_radius: float = 0.025  # object radius as a fraction of the shorter image side (log-uniform)
    max_radius: float = 0.35
    min_visible_pixels: int = 24
    flat_fills: bool = False  # one exact colour per object, no noise or blur (makes masks checkable)
    noise_max: float = 8.0  # standard deviation of the pixel noise, drawn up to this
    blur_prob: float = 0.3


@dataclass
class Scene:
    image: np.ndarray  # H x W x 3 uint8
    masks: np.ndarray  # K x H x W bool, visible parts, disjoint, back-to-front order
    shapes: list[str]  # the shape kind of each mask


def _ellipse(rng, cy, cx, r, shape):
    return draw.ellipse(cy, cx, r * rng.uniform(0.4, 1.0), r, shape=shape, rotation=rng.uniform(-np.pi, np.pi))


def _radial_polygon(cy, cx, radii, angles, shape):
    return draw.polygon(cy + radii * np.sin(angles), cx + radii * np.cos(angles), shape=shape)


def _shape_mask(rng: np.random.Generator, kind: str, cy: float, cx: float, r: float,
                shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    if kind == "ellipse":
        mask[_ellipse(rng, cy, cx, r, shape)] = True
    elif kind == "polygon":
        n = rng.integers(3, 9)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        mask[_radial_polygon(cy, cx, r * rng.uniform(0.6, 1.0, n), angles, shape)] = True
    elif kind == "blob":  # smooth star-shaped outline: a few random harmonics of the radius
        angles = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        radii = np.ones_like(angles)
        for k in range(1, 5):
            radii += rng.uniform(0, 0.35 / k) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
        mask[_radial_polygon(cy, cx, r * radii / radii.max(), angles, shape)] = True
    elif kind == "star":  # concave
        n = rng.integers(3, 8)
        angles = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False) + rng.uniform(0, np.pi)
        radii = np.where(np.arange(2 * n) % 2 == 0, 1.0, rng.uniform(0.3, 0.6))
        mask[_radial_polygon(cy, cx, r * radii, angles, shape)] = True
    elif kind == "thin":  # a bar or a bent stroke a few pixels wide
        width = max(2.0, r * rng.uniform(0.06, 0.2))
        points = [(cy, cx)]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(1, 4)):
            length = r * rng.uniform(0.8, 2.0)
            points.append((points[-1][0] + length * np.sin(heading), points[-1][1] + length * np.cos(heading)))
            heading += rng.uniform(-1.5, 1.5)
        for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
            ny, nx = -(x1 - x0), (y1 - y0)
            norm = np.hypot(ny, nx) or 1.0
            ny, nx = ny / norm * width / 2, nx / norm * width / 2
            mask[draw.polygon([y0 + ny, y1 + ny, y1 - ny, y0 - ny], [x0 + nx, x1 + nx, x1 - nx, x0 - nx],
                              shape=shape)] = True
            mask[draw.disk((y1, x1), width / 2, shape=shape)] = True
    elif kind == "ring":  # an object with a hole
        mask[draw.ellipse(cy, cx, r, r * rng.uniform(0.7, 1.0), shape=shape)] = True
        mask[draw.disk((cy + rng.uniform(-0.1, 0.1) * r, cx), r * rng.uniform(0.3, 0.6), shape=shape)] = False
    elif kind == "crescent":
        mask[draw.disk((cy, cx), r, shape=shape)] = True
        angle = rng.uniform(0, 2 * np.pi)
        shift = r * rng.uniform(0.35, 0.7)
        mask[draw.disk((cy + shift * np.sin(angle), cx + shift * np.cos(angle)), r, shape=shape)] = False
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return mask


def _fill(rng: np.random.Generator, height: int, width: int, flat: bool) -> np.ndarray:
    """Float RGB fill: a photo texture (most often), a gradient, smooth noise or a flat colour."""
    if flat:
        return np.broadcast_to(rng.integers(0, 256, size=3).astype(np.float32), (height, width, 3))
    kind = rng.choice(["texture", "gradient", "noise", "flat"], p=[0.6, 0.15, 0.1, 0.15])
    if kind == "texture":
        return texture_patch(rng, height, width)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * np.linspace(0, 1, width)[None, :] + np.sin(angle) * np.linspace(0, 1, height)[:, None]
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        return (c0 + ramp[..., None] * (c1 - c0)).astype(np.float32)
    if kind == "noise":
        coarse = rng.uniform(0, 255, size=(rng.integers(2, 9), rng.integers(2, 9), 3)).astype(np.uint8)
        return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
    return np.broadcast_to(rng.uniform(0, 255, 3).astype(np.float32), (height, width, 3))


def _visible(shape_masks: list[np.ndarray]) -> list[np.ndarray]:
    """Each mask minus everything stacked above it."""
    covered = np.zeros_like(shape_masks[0]) if shape_masks else None
    visible = []
    for mask in reversed(shape_masks):
        visible.append(mask & ~covered)
        covered = covered | mask
    return visible[::-1]


def generate_scene(seed: int, config: SceneConfig = SceneConfig()) -> Scene:
    """The same seed and config always give the same scene."""
    rng = np.random.default_rng(seed)
    h, w = config.height, config.width
    side = min(h, w)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    kinds, masks = [], []
    for _ in range(count):
        kind = str(rng.choice(SHAPES))
        radius = side * np.exp(rng.uniform(np.log(config.min_radius), np.log(config.max_radius)))
        # Centres a little beyond the frame, so some objects are cut by the border.
        cy, cx = rng.uniform(-0.1, 1.1) * h, rng.uniform(-0.1, 1.1) * w
        mask = _shape_mask(rng, kind, cy, cx, radius, (h, w))
        if mask.any():
            kinds.append(kind)
            masks.append(mask)
    # Dropping an object can only uncover others, so one filtering pass suffices.
    keep = [i for i, m in enumerate(_visible(masks)) if m.sum() >= config.min_visible_pixels]
    kinds, masks = [kinds[i] for i in keep], [masks[i] for i in keep]
    image = _fill(rng, h, w, config.flat_fills).copy()
    for mask in masks:  # fill only the object's bounding box: the texture scales with the object
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        fill = _fill(rng, rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1, config.flat_fills)
        image[box][mask[box]] = fill[mask[box]]
    if not config.flat_fills:
        image += rng.normal(0, rng.uniform(0, config.noise_max), image.shape).astype(np.float32)
    image = image.clip(0, 255).astype(np.uint8)
    if not config.flat_fills and rng.random() < config.blur_prob:
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0))))
    visible = np.stack(_visible(masks)) if masks else np.zeros((0, h, w), bool)
    return Scene(image=image, masks=visible, shapes=kinds)
