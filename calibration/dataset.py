"""Calibration and held-out images with sampled prompts.

Default calibration set (the paper uses 8 images): real photos bundled with scikit-image plus
generated scenes; the held-out set for the report uses other photos and other scene seeds. Prompts
are sampled per image, on scenes from the exact object masks: for TinySAM PTQ as padded batches of one
positive point, a box, or a positive and a negative point (sample_prompts); for LiteRT calibration and
parity as a user gives them, of every token count (sample_user_prompts).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..data import SceneConfig, generate_scene
from ..errors import ImageError
from ..utils.image_io import load_image
from ..utils.prompts import pad_points, prompt_shapes, token_count
from ..utils.transforms import apply_coords, preprocess, resize_longest_side

CALIBRATION_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
HELD_OUT_PHOTOS = ("immunohistochemistry", "hubble_deep_field", "retina", "coins")  # not cat(): it is chelsea
HELD_OUT_SCENE_SEED = 10_000  # scene seeds at and above this are never used for calibration
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class PromptedImage:
    image: torch.Tensor          # (1, 3, S, S) normalised, padded
    input_size: tuple[int, int]  # the resized image inside the square
    original_size: tuple[int, int]
    coords: torch.Tensor         # (P, num_points, 2) in the input frame
    labels: torch.Tensor         # (P, num_points)


def scikit_image_photo(name: str) -> np.ndarray:
    import skimage.data

    return load_image(getattr(skimage.data, name)())


def generated_scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    scene = generate_scene(seed, SceneConfig(height=384, width=512))
    return scene.image, scene.masks


def sample_prompts(rng: np.random.Generator, original_size: tuple[int, int], masks: Optional[np.ndarray],
                   count: int, num_points: int, target: int) -> tuple[np.ndarray, np.ndarray]:
    """count prompts -> (count, num_points, 2) coords in the input frame and (count, num_points) labels."""
    h, w = original_size
    all_coords, all_labels = [], []
    for i in range(count):
        if masks is not None and len(masks):
            mask = masks[rng.integers(len(masks))]
            ys, xs = np.nonzero(mask)
            pick = rng.integers(len(ys))
            positive = np.array([xs[pick], ys[pick]], np.float32)
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
            outside = np.argwhere(~mask)
            negative = outside[rng.integers(len(outside))][::-1].astype(np.float32)
        else:
            positive = rng.uniform([0, 0], [w, h]).astype(np.float32)
            half = rng.uniform(0.1, 0.4) * np.array([w, h])
            box = np.concatenate([np.maximum(positive - half, 0), np.minimum(positive + half, [w, h])]).astype(np.float32)
            negative = rng.uniform([0, 0], [w, h]).astype(np.float32)
        kind = i % 3
        if kind == 0:
            points, labels = [positive, np.zeros(2, np.float32)], [1.0, -1.0]
        elif kind == 1:
            points, labels = [box[:2], box[2:]], [2.0, 3.0]
        else:
            points, labels = [positive, negative, np.zeros(2, np.float32)], [1.0, 0.0, -1.0]
        points = np.stack(points)
        is_pad = np.array(labels) == -1
        points[~is_pad] = apply_coords(points[~is_pad], original_size, target)
        coords, labels = pad_points(points, np.array(labels, np.float32), num_points)
        all_coords.append(coords)
        all_labels.append(labels)
    return np.stack(all_coords), np.stack(all_labels)


@dataclass(frozen=True)
class UserPrompt:
    """A prompt as a user gives it to TinySamPredictor.predict, in original-image pixels."""
    points: Optional[np.ndarray]  # (k, 2), None without points
    labels: Optional[np.ndarray]  # (k,) 1 / 0
    box: Optional[np.ndarray]     # (4,) XYXY

    @property
    def tokens(self) -> int:
        return token_count(0 if self.points is None else len(self.points), self.box is not None)


def sample_user_prompts(rng: np.random.Generator, original_size: tuple[int, int], masks: Optional[np.ndarray],
                        count: int, max_tokens: int, first: int = 0) -> list[UserPrompt]:
    """count prompts whose shapes run through prompt_shapes(max_tokens) from index `first` on (so a
    sequence of calls covers every token count): a positive point inside an object, then alternately
    negative points outside and positive points inside it, and its bounding box. On images without
    masks the object is a random rectangle."""
    h, w = original_size
    shapes = prompt_shapes(max_tokens)
    prompts = []
    for i in range(count):
        k, with_box = shapes[(first + i) % len(shapes)]
        if masks is not None and len(masks):
            mask = masks[rng.integers(len(masks))]
        else:
            centre = rng.uniform([0, 0], [w, h])
            half = rng.uniform(0.1, 0.4) * np.array([w, h])
            x0, y0 = np.floor(np.maximum(centre - half, 0)).astype(int)
            x1, y1 = np.ceil(np.minimum(centre + half, [w, h])).astype(int)
            mask = np.zeros((h, w), bool)
            mask[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = True
        inside, outside = np.argwhere(mask)[:, ::-1], np.argwhere(~mask)[:, ::-1]
        labels = np.array([1.0 if j % 2 == 0 or not len(outside) else 0.0 for j in range(k)], np.float32)
        points = np.array([(inside if label else outside)[rng.integers(len(inside if label else outside))]
                           for label in labels], np.float32).reshape(k, 2) + 0.5  # pixel centres
        box = None
        if with_box:
            ys, xs = np.nonzero(mask)
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        prompts.append(UserPrompt(points, labels, box) if k or not with_box else UserPrompt(None, None, box))
    return prompts


def folder_images(folder: Path, limit: int, max_side: int) -> list[np.ndarray]:
    """The folder's first `limit` images, each shrunk to `max_side` (the model's input size) as it is read:
    preprocessing resizes them to it anyway, and eight 64 MP photos would otherwise hold 1.5 GB."""
    if not Path(folder).is_dir():
        raise ImageError(f"images folder {folder} " + ("is a file" if Path(folder).exists() else "not found"))
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return [shrink_to(load_image(p), max_side) for p in files[:limit]]


def shrink_to(rgb: np.ndarray, max_side: int) -> np.ndarray:
    return resize_longest_side(rgb, max_side) if max(rgb.shape[:2]) > max_side else rgb


def default_images(count: int, held_out: bool = False, seed: int = 0) -> list[tuple[np.ndarray, Optional[np.ndarray]]]:
    """Half photos, half generated scenes (with masks), in a fixed order."""
    photos = HELD_OUT_PHOTOS if held_out else CALIBRATION_PHOTOS
    first_seed = HELD_OUT_SCENE_SEED + seed if held_out else seed
    n_photos = min(len(photos), (count + 1) // 2)
    images = [(scikit_image_photo(name), None) for name in photos[:n_photos]]
    images += [generated_scene(first_seed + i) for i in range(count - n_photos)]
    return images


def prompted_images(images: list[tuple[np.ndarray, Optional[np.ndarray]]], img_size: int, prompts_per_image: int,
                    num_points: int, seed: int) -> list[PromptedImage]:
    rng = np.random.default_rng(seed)
    out = []
    for rgb, masks in images:
        tensor, input_size = preprocess(rgb, img_size)
        coords, labels = sample_prompts(rng, rgb.shape[:2], masks, prompts_per_image, num_points, img_size)
        out.append(PromptedImage(torch.from_numpy(tensor), input_size, rgb.shape[:2],
                                 torch.from_numpy(coords), torch.from_numpy(labels)))
    return out
