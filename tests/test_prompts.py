"""User prompts -> the decoder's tokens: exactly SAM's predictor's, never padded further."""

import numpy as np
import pytest

from tinysam_mobile.errors import PromptError
from tinysam_mobile.utils.prompts import encode_prompts

SIZE = (300, 451)  # h, w -> resized (681, 1024)
SX, SY = 1024 / 451, 681 / 300


def test_points_then_pad_point_without_box():
    coords, labels = encode_prompts(np.array([[10.0, 20.0], [30.0, 40.0]]), np.array([1, 0]), None, SIZE, 1024)
    assert coords.shape == (1, 3, 2) and labels.tolist() == [[1.0, 0.0, -1.0]]
    np.testing.assert_allclose(coords[0, :2], [[10 * SX, 20 * SY], [30 * SX, 40 * SY]], rtol=1e-6)
    assert coords[0, 2].tolist() == [0.0, 0.0]


def test_box_corners_follow_points_and_replace_the_pad():
    coords, labels = encode_prompts(np.array([[5.0, 5.0]]), np.array([1]), np.array([1.0, 2.0, 300.0, 200.0]),
                                    SIZE, 1024)
    assert labels.tolist() == [[1.0, 2.0, 3.0]]
    np.testing.assert_allclose(coords[0, 1:], [[1 * SX, 2 * SY], [300 * SX, 200 * SY]], rtol=1e-6)


def test_a_decoders_token_limit_refuses_more_and_pads_nothing():
    coords, labels = encode_prompts(None, None, np.array([0.0, 0.0, 10.0, 10.0]), SIZE, 1024, max_tokens=5)
    assert labels.tolist() == [[2.0, 3.0]] and coords.shape == (1, 2, 2)
    coords, labels = encode_prompts(np.zeros((3, 2)), np.ones(3), np.array([0.0, 0.0, 10.0, 10.0]), SIZE, 1024,
                                    max_tokens=5)
    assert labels.tolist() == [[1.0, 1.0, 1.0, 2.0, 3.0]]
    with pytest.raises(PromptError, match="6 prompt tokens .* exceed the decoder's 5"):
        encode_prompts(np.zeros((4, 2)), np.ones(4), np.array([0.0, 0.0, 10.0, 10.0]), SIZE, 1024, max_tokens=5)


def test_prompt_shapes_cover_every_token_count_once_per_box_choice():
    from tinysam_mobile.utils.prompts import prompt_shapes, token_count

    shapes = prompt_shapes(10)
    assert len(shapes) == len(set(shapes)) == 19
    assert sorted({token_count(k, box) for k, box in shapes}) == list(range(1, 11))
    assert max(token_count(k, box) for k, box in shapes) == 10


@pytest.mark.parametrize("points, labels, box, message", [
    (None, None, None, "at least one"),
    (np.array([[452.0, 10.0]]), np.array([1]), None, "outside"),
    (np.array([[-1.0, 10.0]]), np.array([1]), None, "outside"),
    (np.array([[1.0, 10.0]]), np.array([2]), None, "labels"),
    (np.array([[1.0, 10.0]]), None, None, "required"),
    (None, None, np.array([10.0, 10.0, 5.0, 20.0]), "x0 < x1"),
    (None, None, np.array([10.0, 10.0, 500.0, 20.0]), "outside"),
])
def test_bad_prompts_are_refused(points, labels, box, message):
    with pytest.raises(PromptError, match=message):
        encode_prompts(points, labels, box, SIZE, 1024)


def test_points_on_the_image_border_are_accepted():
    coords, _ = encode_prompts(np.array([[451.0, 300.0], [0.0, 0.0]]), np.array([1, 1]), None, SIZE, 1024)
    np.testing.assert_allclose(coords[0, 0], [1024.0, 681.0], rtol=1e-6)


def test_app_side_point_features_equal_the_prompt_encoders(small_model):
    """The w8a8 LiteRT decoder takes the points' Fourier features from the app: the glue's numpy version
    must give what the prompt encoder computes in PyTorch, for points anywhere in the input frame."""
    import torch

    from tinysam_mobile.utils.prompts import point_features

    encoder = small_model.prompt_encoder
    coords = np.random.default_rng(0).uniform(-0.5, 256.5, (3, 5, 2)).astype(np.float32)
    want = encoder.point_features(torch.from_numpy(coords)).numpy()
    gaussian = encoder.pe_layer.positional_encoding_gaussian_matrix.numpy()
    got = point_features(coords, gaussian, encoder.input_image_size)
    assert got.shape == (3, 5, 256) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-5)
