"""Reading images the way phones hand them over: upright, 8-bit RGB, of a sane size."""

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError

# 64 MP covers every phone camera; anything larger is refused before it is decoded.
MAX_PIXELS = 64_000_000


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16 or (np.issubdtype(array.dtype, np.integer) and array.max(initial=0) > 255):
        return np.round(np.clip(array, 0, 65535) / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return np.clip(array, 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("image array contains NaN or infinite values")
        scale = 255.0 if array.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.round(array * scale), 0, 255).astype(np.uint8)
    raise ImageError(f"unsupported image array dtype {array.dtype}")


def as_rgb_array(array: np.ndarray) -> np.ndarray:
    """Any HxW, HxWx1, HxWx3 or HxWx4 array of a common dtype -> HxWx3 uint8 RGB."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(f"expected an HxW or HxWx{{1,3,4}} image array, got shape {array.shape}")
    h, w = array.shape[:2]
    if h == 0 or w == 0:
        raise ImageError(f"image is empty ({w}x{h})")
    if h * w > MAX_PIXELS:
        raise ImageError(f"image has {w}x{h} pixels, more than the {MAX_PIXELS:,} this tool accepts")
    array = _to_uint8(array)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return as_rgb_array(np.asarray(img))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Flatten transparency onto white, as photo viewers show it.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return as_rgb_array(np.asarray(img.convert("RGB")))


def _open_image(source: "Path | io.BytesIO", label: str) -> np.ndarray:
    """Decode a file or in-memory file into upright RGB, refusing oversized images before decoding them."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(source) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{label}: {w}x{h} pixels is more than the {MAX_PIXELS:,} this tool accepts")
                img.load()
                return _pil_to_rgb(img)
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"{label}: not a readable image ({exc.__class__.__name__})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{label}: cannot decode image ({exc})") from None


def load_image(image: "str | os.PathLike | np.ndarray | Image.Image") -> np.ndarray:
    """Path, PIL image or array -> upright HxWx3 uint8 RGB. Raises ImageError with a clear message."""
    if isinstance(image, np.ndarray):
        return as_rgb_array(image)
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    path = Path(image)
    if path.is_dir():
        raise ImageError(f"image {path} is a folder; pass an image file")
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    return _open_image(path, str(path))


def decode_image(data: bytes, label: str) -> np.ndarray:
    """An image file's bytes (as read by Ray Data or from disk) -> what load_image gives for the file;
    errors name `label` (the file's path)."""
    return _open_image(io.BytesIO(data), label)
