"""Real photo textures from the pictures scikit-image ships (no download needed)."""

from functools import lru_cache

import numpy as np
from PIL import Image

# Bundled with scikit-image itself; the pooch-fetched ones (lily, skin, ...) would need the network.
TEXTURE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                 "brick", "grass", "gravel", "camera", "moon", "coins", "retina", "clock", "cell", "page",
                 "text", "colorwheel")


@lru_cache(maxsize=1)
def texture_photos() -> tuple[np.ndarray, ...]:
    """Every texture photo as HxWx3 uint8 RGB (grayscale ones replicated to three channels)."""
    import skimage.data

    photos = []
    for name in TEXTURE_NAMES:
        photo = np.asarray(getattr(skimage.data, name)())
        if photo.ndim == 2:
            photo = np.repeat(photo[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(photo[..., :3].astype(np.uint8)))
    return tuple(photos)


def texture_patch(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random crop of a random photo, resized to height x width, flipped/rotated and tinted: float RGB."""
    photos = texture_photos()
    photo = photos[rng.integers(len(photos))]
    ph, pw = photo.shape[:2]
    crop = int(rng.uniform(0.15, 1.0) * min(ph, pw))
    top, left = rng.integers(0, ph - crop + 1), rng.integers(0, pw - crop + 1)
    patch = Image.fromarray(photo[top:top + crop, left:left + crop]).resize((width, height), Image.BILINEAR)
    out = np.asarray(patch, np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = out[::-1]
    gain = rng.uniform(0.6, 1.4, size=3) if rng.random() < 0.5 else np.full(3, rng.uniform(0.7, 1.3))
    return np.ascontiguousarray(out * gain + rng.uniform(-30, 30, size=3))
