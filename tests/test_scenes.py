"""The scene generator: deterministic, exact disjoint masks of what is visible, varied content."""

import numpy as np
import pytest
from scipy import ndimage

from tinysam_mobile.data import SceneConfig, generate_scene
from tinysam_mobile.data.scenes import SHAPES

SEEDS = range(40)


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene(seed) for seed in SEEDS]


def test_same_seed_same_scene_other_seed_other_scene():
    config = SceneConfig(height=160, width=224)
    a, b, c = generate_scene(11, config), generate_scene(11, config), generate_scene(12, config)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks) and a.shapes == b.shapes
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (160, 224, 3) and a.image.dtype == np.uint8
    assert a.masks.shape[1:] == (160, 224) and a.masks.dtype == bool


@pytest.mark.parametrize("seed", range(8))
def test_masks_are_exactly_the_visible_pixels_of_each_object(seed):
    # With one flat colour per object, the picture itself says which object shows at each pixel.
    scene = generate_scene(seed, SceneConfig(flat_fills=True, min_objects=4))
    assert len(scene.masks) >= 2
    assert scene.masks.sum(axis=0).max() <= 1  # disjoint
    colours = []
    for mask in scene.masks:
        pixels = np.unique(scene.image[mask], axis=0)
        assert len(pixels) == 1, "a mask covers pixels of more than one object"
        colours.append(pixels[0])
    background = np.unique(scene.image[~scene.masks.any(axis=0)], axis=0)
    assert len(background) == 1, "pixels outside every mask show something besides the background"
    assert len({tuple(c) for c in colours} | {tuple(background[0])}) == len(colours) + 1
    for mask, colour in zip(scene.masks, colours):
        assert np.array_equal(np.all(scene.image == colour, axis=-1), mask)


def test_small_objects_are_kept_and_tiny_leftovers_dropped(scenes):
    areas = np.array([m.sum() for s in scenes for m in s.masks])
    assert areas.min() >= SceneConfig().min_visible_pixels
    assert (areas < 0.005 * 256 * 256).sum() >= 5  # objects under ~18x18 pixels occur


def test_variety(scenes):
    counts = [len(s.masks) for s in scenes]
    assert min(counts) <= 3 and max(counts) >= 7
    assert {kind for s in scenes for kind in s.shapes} == set(SHAPES)
    masks = [m for s in scenes for m in s.masks]
    touching = [m for m in masks if m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()]
    assert len(touching) >= 0.1 * len(masks)
    with_holes = [m for m in masks if (ndimage.binary_fill_holes(m) & ~m).any()]
    assert len(with_holes) >= 5
    occluded_into_pieces = [m for m in masks if ndimage.label(m)[1] > 1]
    assert len(occluded_into_pieces) >= 3
    # Textured, not flat: most objects show many distinct colours.
    textured = [len(np.unique(s.image[m], axis=0)) > 50 for s in scenes for m in s.masks if m.sum() > 400]
    assert np.mean(textured) > 0.7
