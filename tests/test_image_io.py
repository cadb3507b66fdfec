"""Images as phones and users hand them over."""

import numpy as np
import pytest
from PIL import Image

from tinysam_mobile.errors import ImageError
from tinysam_mobile.utils.image_io import MAX_PIXELS, load_image


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "g.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20).save(path)
    rgb = load_image(path)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == rgb[..., 2]).all() and rgb[1, 1, 0] == 100


def test_rgba_is_flattened_onto_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[1, 1] = (0, 0, 255, 0)    # fully transparent
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = load_image(path)
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[1, 1]) == (255, 255, 255)


def test_sixteen_bit_png_is_scaled_to_eight_bit(tmp_path):
    path = tmp_path / "d.png"
    Image.fromarray(np.array([[0, 65535], [257 * 100, 257 * 7]], np.uint16)).save(path)
    rgb = load_image(path)
    assert rgb[:, :, 0].tolist() == [[0, 255], [100, 7]]


def test_palette_image(tmp_path):
    path = tmp_path / "p.gif"
    Image.fromarray(np.full((5, 6, 3), (10, 200, 30), np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    assert tuple(load_image(path)[2, 2]) == (10, 200, 30)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (250, 0, 0)  # left half red
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "r.jpg"
    img.save(path, exif=exif, quality=95)
    rgb = load_image(path)
    assert rgb.shape == (40, 20, 3)
    assert rgb[2, 10, 0] > 200 and rgb[-3, 10, 0] < 50  # red half now on top


def test_huge_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (9000, 9000)).save(path)
    assert 9000 * 9000 > MAX_PIXELS
    with pytest.raises(ImageError, match="more than"):
        load_image(path)


def test_unreadable_and_missing_files(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"definitely not a jpeg")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(path)
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")
    truncated = tmp_path / "cut.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ImageError):
        load_image(truncated)


@pytest.mark.parametrize("array, expected", [
    (np.array([[0.0, 1.0]]), [0, 255]),
    (np.array([[True, False]]), [255, 0]),
    (np.array([[3, 250]], np.int64), [3, 250]),
])
def test_arrays_of_common_dtypes(array, expected):
    assert load_image(array)[0, :, 1].tolist() == expected


def test_bad_arrays_are_refused():
    with pytest.raises(ImageError):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError):
        load_image(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ImageError):
        load_image(np.full((2, 2), np.nan))
