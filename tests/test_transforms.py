"""SAM geometry against hand-computed cases."""

import numpy as np
import pytest

from tinysam_mobile.utils.transforms import (
    PIXEL_MEAN, PIXEL_STD, apply_boxes, apply_coords, normalize_and_pad, pad_pixels, preprocess, resized_shape, upscale_logits,
)


@pytest.mark.parametrize("size, expected", [
    ((300, 451), (681, 1024)),   # 300 * 1024/451 = 681.15
    ((451, 300), (1024, 681)),   # portrait
    ((600, 400), (1024, 683)),   # 400 * 1024/600 = 682.67 -> 683
    ((1, 500), (2, 1024)),       # 1 * 2.048 + 0.5 = 2.548 -> 2
    ((500, 1), (1024, 2)),
    ((1, 1), (1024, 1024)),
    ((2048, 1024), (1024, 512)),
    ((3, 7), (439, 1024)),       # 3 * 146.29 = 438.86 -> 439
])
def test_resized_shape_hand_computed(size, expected):
    assert resized_shape(*size, 1024) == expected


def test_resized_shape_small_target():
    assert resized_shape(300, 451, 256) == (170, 256)  # 300 * 256/451 = 170.29


def test_normalize_and_pad_values_and_zero_padding():
    resized = np.zeros((2, 3, 3), np.uint8)
    resized[0, 0] = (255, 0, 128)
    out = normalize_and_pad(resized, 8)
    assert out.shape == (1, 3, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], [(255 - 123.675) / 58.395, (0 - 116.28) / 57.12,
                                                 (128 - 103.53) / 57.375], rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 1, 2], -PIXEL_MEAN / PIXEL_STD, rtol=1e-6)
    assert not out[0, :, 2:, :].any() and not out[0, :, :, 3:].any()


def test_pad_pixels_nhwc_mean_padding_normalises_like_zero_padding():
    resized = np.zeros((2, 3, 3), np.uint8)
    resized[0, 0] = (255, 0, 128)
    resized[1, 2] = (1, 2, 3)
    out = pad_pixels(resized, 8)
    assert out.shape == (1, 8, 8, 3) and out.dtype == np.float32
    assert out[0, 0, 0].tolist() == [255.0, 0.0, 128.0] and out[0, 1, 2].tolist() == [1.0, 2.0, 3.0]
    assert out[0, 1, 1].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(out[0, 2:], np.broadcast_to([123.675, 116.28, 103.53], (6, 8, 3)).astype(np.float32))
    np.testing.assert_array_equal(out[0, :, 3:], np.broadcast_to([123.675, 116.28, 103.53], (8, 5, 3)).astype(np.float32))
    # What the exported encoders compute inside: (pixels - mean) / std equals the normalised, zero-padded input.
    np.testing.assert_allclose(((out - PIXEL_MEAN) / PIXEL_STD).transpose(0, 3, 1, 2), normalize_and_pad(resized, 8),
                               atol=1e-6)


def test_preprocess_one_pixel_wide_image():
    image = np.full((1, 500, 3), 200, np.uint8)
    tensor, input_size = preprocess(image, 1024)
    assert input_size == (2, 1024)
    np.testing.assert_allclose(tensor[0, :, :2, :], ((200 - PIXEL_MEAN) / PIXEL_STD)[:, None, None]
                               * np.ones((3, 2, 1024)), rtol=1e-5)
    assert not tensor[0, :, 2:, :].any()


def test_coordinates_scale_per_axis_and_round_trip():
    coords = np.array([[0.0, 0.0], [451.0, 300.0], [100.5, 37.25]])
    out = apply_coords(coords, (300, 451), 1024)
    np.testing.assert_allclose(out[1], [1024.0, 681.0], rtol=1e-6)
    np.testing.assert_allclose(out[2], [100.5 * 1024 / 451, 37.25 * 681 / 300], rtol=1e-6)
    back = out * np.array([451 / 1024, 300 / 681])
    np.testing.assert_allclose(back, coords, atol=1e-4)
    boxes = apply_boxes(np.array([10.0, 20.0, 30.0, 40.0]), (300, 451), 1024)
    np.testing.assert_allclose(boxes, [10 * 1024 / 451, 20 * 681 / 300, 30 * 1024 / 451, 40 * 681 / 300], rtol=1e-6)


def test_upscale_step_edge_lands_in_the_middle():
    # Half-pixel bilinear from 256 to 1024: a step between low-res columns 127 and 128 crosses zero
    # at x = (127.5 + 0.5) * 4 - 0.5 = 511.5, so columns >= 512 are foreground.
    low = np.full((1, 1, 256, 256), -1.0, np.float32)
    low[..., 128:] = 1.0
    out = upscale_logits(low, (1024, 1024), (1024, 1024), 1024)
    assert out.shape == (1, 1, 1024, 1024)
    mask = out[0, 0] > 0
    assert mask[:, 512:].all() and not mask[:, :512].any()


def test_upscale_crops_padding_before_resizing_to_original():
    # Only the resized region (top 512 rows) maps back to the image; the padded rows must not.
    low = np.full((1, 3, 256, 256), 5.0, np.float32)
    low[..., 128:, :] = -5.0  # padding region
    out = upscale_logits(low, (512, 1024), (300, 600), 1024)
    assert out.shape == (1, 3, 300, 600)
    assert (out > 0).all()


def test_too_elongated_image_is_refused():
    from tinysam_mobile.errors import ImageError

    with pytest.raises(ImageError, match="too elongated"):
        preprocess(np.zeros((1, 3000, 3), np.uint8), 1024)
