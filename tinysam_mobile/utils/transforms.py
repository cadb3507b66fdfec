"""SAM's image and prompt geometry: longest-side resize, normalise, pad; coordinates; mask upsampling.

This file is the specification the Swift (TinySAMKit) and Kotlin (core) glue mirror line for line.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ImageError

PIXEL_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
MASK_THRESHOLD = 0.0


def resized_shape(height: int, width: int, target: int) -> tuple[int, int]:
    """(new_h, new_w) with the longest side = target, rounding as SAM does: int(old * scale + 0.5)."""
    scale = target / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_longest_side(image: np.ndarray, target: int) -> np.ndarray:
    """HxWx3 uint8 -> resized uint8 through PIL's bilinear filter (what the public code uses)."""
    new_h, new_w = resized_shape(image.shape[0], image.shape[1], target)
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))


def normalize_and_pad(resized: np.ndarray, target: int) -> np.ndarray:
    """Resized HxWx3 uint8 -> (1, 3, target, target) float32: (x - mean) / std, then zeros bottom/right."""
    h, w = resized.shape[:2]
    out = np.zeros((1, 3, target, target), dtype=np.float32)
    out[0, :, :h, :w] = ((resized.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)
    return out


def pad_pixels(resized: np.ndarray, target: int) -> np.ndarray:
    """Resized HxWx3 uint8 -> (1, target, target, 3) float32 RGB pixels 0-255 (NHWC), PIXEL_MEAN bottom/right:
    the input of encoders with normalisation inside (LiteRT, ONNX); the mean pads to SAM's zeros there."""
    h, w = resized.shape[:2]
    out = np.empty((1, target, target, 3), dtype=np.float32)
    out[...] = PIXEL_MEAN
    out[0, :h, :w] = resized
    return out


def normalized_to_pixels(image: np.ndarray, channels_last: bool = True) -> np.ndarray:
    """The Runner contract's (1, 3, S, S) normalised, zero-padded image -> 0-255 RGB pixels (zero padding
    becomes the mean colour), NHWC for LiteRT / ONNX encoders, NCHW for CoreML's image input."""
    pixels = image * PIXEL_STD.reshape(1, 3, 1, 1) + PIXEL_MEAN.reshape(1, 3, 1, 1)
    return np.ascontiguousarray(pixels.transpose(0, 2, 3, 1) if channels_last else pixels, dtype=np.float32)


def preprocess(image: np.ndarray, target: int) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB uint8 image -> (encoder input, (new_h, new_w) size of the image inside the padded square)."""
    if min(resized_shape(image.shape[0], image.shape[1], target)) == 0:
        raise ImageError(f"a {image.shape[1]}x{image.shape[0]} image is too elongated: its short side would "
                         f"shrink to 0 pixels at {target}")
    resized = resize_longest_side(image, target)
    return normalize_and_pad(resized, target), resized.shape[:2]


def apply_coords(coords: np.ndarray, original_size: tuple[int, int], target: int) -> np.ndarray:
    """(..., 2) (x, y) pixel coordinates of the original image -> coordinates in the resized frame."""
    old_h, old_w = original_size
    new_h, new_w = resized_shape(old_h, old_w, target)
    coords = np.asarray(coords, dtype=np.float32).copy()
    coords[..., 0] *= new_w / old_w
    coords[..., 1] *= new_h / old_h
    return coords


def apply_boxes(boxes: np.ndarray, original_size: tuple[int, int], target: int) -> np.ndarray:
    """(..., 4) XYXY boxes -> the resized frame."""
    boxes = np.asarray(boxes, dtype=np.float32)
    return apply_coords(boxes.reshape(-1, 2, 2), original_size, target).reshape(boxes.shape)


def upscale_logits(low_res: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int],
                   target: int) -> np.ndarray:
    """(B, C, l, l) low-res logits -> (B, C, H, W) logits at the original size.

    Bilinear (align_corners=False) to the padded square, crop the padding away, bilinear again
    to the original size; exactly SAM's postprocess_masks.
    """
    x = torch.from_numpy(np.ascontiguousarray(low_res, dtype=np.float32))
    x = F.interpolate(x, size=(target, target), mode="bilinear", align_corners=False)
    x = x[..., : input_size[0], : input_size[1]]
    x = F.interpolate(x, size=original_size, mode="bilinear", align_corners=False)
    return x.numpy()
