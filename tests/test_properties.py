"""Properties of the pure parts every platform mirrors (prompt encoding, geometry, mask post-processing,
the manifest and golden-file readers), over random sizes, prompts and corruptions."""

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinysam_mobile.converters.manifest import MANIFEST_NAME, artifact_record, load_manifest, write_manifest
from tinysam_mobile.errors import ArtifactError, ImageError, PromptError
from tinysam_mobile.golden import MAGIC, GoldenFormatError, RecordingRunner, read_tensors, write_tensors
from tinysam_mobile.predictor import TinySamPredictor
from tinysam_mobile.utils.prompts import encode_prompts
from tinysam_mobile.utils.transforms import (apply_boxes, apply_coords, pad_pixels, preprocess, resized_shape,
                                             upscale_logits)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TARGETS = st.sampled_from([64, 256, 1024])
image_sizes = st.tuples(st.integers(1, 5000), st.integers(1, 5000))  # (h, w)
unit = st.floats(0, 1, allow_nan=False)


@st.composite
def valid_prompts(draw, sizes=image_sizes):
    """(size, target, points (N, 2) or None, labels or None, box or None, max_tokens or None), all inside the image."""
    h, w = draw(sizes)
    target = draw(TARGETS)
    n = draw(st.integers(0, 6))
    points = labels = box = None
    if n or draw(st.booleans()):
        points = np.array([[draw(unit) * w, draw(unit) * h] for _ in range(n)], np.float64).reshape(n, 2)
        labels = np.array([draw(st.sampled_from([0, 1])) for _ in range(n)], np.float64)
    if draw(st.booleans()) or points is None:
        xs = sorted(draw(st.lists(unit, min_size=2, max_size=2, unique=True)))
        ys = sorted(draw(st.lists(unit, min_size=2, max_size=2, unique=True)))
        box = np.array([xs[0] * w, ys[0] * h, xs[1] * w, ys[1] * h])
        assume(box[0] < box[2] and box[1] < box[3])  # distinct fractions can round to equal pixels
    used = (0 if points is None else n) + (2 if box is not None else 1)
    max_tokens = draw(st.one_of(st.none(), st.integers(used, used + 4)))
    return (h, w), target, points, labels, box, max_tokens


@SETTINGS
@given(valid_prompts())
def test_valid_prompts_land_inside_the_resized_frame(prompts):
    size, target, points, labels, box, max_tokens = prompts
    coords, codes = encode_prompts(points, labels, box, size, target, max_tokens)
    new_h, new_w = resized_shape(*size, target)
    n = 0 if points is None else len(points)
    expected = n + (2 if box is not None else 1)  # exactly SAM's tokens, whatever the limit
    assert coords.shape == (1, expected, 2) and codes.shape == (1, expected)
    assert coords.dtype == np.float32 and codes.dtype == np.float32
    tolerance = 1e-4 * target  # float32 rounding of x * (new / old)
    assert np.all(coords >= 0) and np.all(coords[0, :, 0] <= new_w + tolerance)
    assert np.all(coords[0, :, 1] <= new_h + tolerance) and np.all(coords <= target + tolerance)
    real = [1.0 if label else 0.0 for label in (labels if labels is not None else [])]
    tail = [2.0, 3.0] if box is not None else [-1.0]
    assert codes[0].tolist() == real + tail
    assert np.all(coords[0, codes[0] == -1] == 0)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)


@SETTINGS
@given(size=image_sizes, target=TARGETS,
       points=st.one_of(st.none(), hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                                              elements=finite_or_not)),
       labels=st.one_of(st.none(), hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
                                              elements=st.sampled_from([0.0, 1.0, 2.0, -1.0, 0.5, np.nan]))),
       box=st.one_of(st.none(), hnp.arrays(np.float64, st.integers(0, 6), elements=finite_or_not)),
       max_tokens=st.one_of(st.none(), st.integers(0, 8)))
def test_any_prompt_is_encoded_inside_the_frame_or_refused_with_a_prompt_error(size, target, points, labels, box,
                                                                              max_tokens):
    try:
        coords, codes = encode_prompts(points, labels, box, size, target, max_tokens)
    except PromptError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    new_h, new_w = resized_shape(*size, target)
    assert np.all(np.isfinite(coords)) and np.all(coords >= 0)
    assert np.all(coords[0, :, 0] <= new_w + 1e-4 * target) and np.all(coords[0, :, 1] <= new_h + 1e-4 * target)
    assert set(np.unique(codes).tolist()) <= {-1.0, 0.0, 1.0, 2.0, 3.0}


@SETTINGS
@given(size=image_sizes, target=TARGETS, fractions=hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(4)),
                                                              elements=unit))
def test_resized_shape_and_box_transform(size, target, fractions):
    h, w = size
    new_h, new_w = resized_shape(h, w, target)
    assert max(new_h, new_w) == target and 0 <= min(new_h, new_w) <= target
    boxes = fractions * np.array([w, h, w, h])
    moved = apply_boxes(boxes, size, target)
    assert moved.shape == boxes.shape
    np.testing.assert_allclose(moved.reshape(-1, 2, 2), apply_coords(boxes.reshape(-1, 2, 2), size, target))
    assert np.all(moved[:, [0, 2]] <= new_w + 1e-4 * target) and np.all(moved[:, [1, 3]] <= new_h + 1e-4 * target)


@SETTINGS
@given(h=st.integers(1, 160), w=st.integers(1, 160), target=st.sampled_from([16, 64]), seed=st.integers(0, 2**16))
def test_preprocess_pads_to_the_square_or_refuses_a_sliver(h, w, target, seed):
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    new_h, new_w = resized_shape(h, w, target)
    if min(new_h, new_w) == 0:
        with pytest.raises(ImageError, match="too elongated"):
            preprocess(image, target)
        return
    tensor, input_size = preprocess(image, target)
    assert tensor.shape == (1, 3, target, target) and tensor.dtype == np.float32
    assert input_size == (new_h, new_w)
    assert not tensor[..., new_h:, :].any() and not tensor[..., :, new_w:].any()
    resized = np.zeros((new_h, new_w, 3), np.uint8)
    assert pad_pixels(resized, target).shape == (1, target, target, 3)


@SETTINGS
@given(b=st.integers(1, 2), c=st.integers(1, 3), target=st.sampled_from([64, 128]),
       h=st.integers(1, 200), w=st.integers(1, 200))
def test_upscaled_masks_have_the_original_size(b, c, target, h, w):
    input_size = resized_shape(h, w, target)
    assume(min(input_size) > 0)
    low = np.random.default_rng(h * w).standard_normal((b, c, target // 4, target // 4)).astype(np.float32)
    masks = upscale_logits(low, input_size, (h, w), target)
    assert masks.shape == (b, c, h, w) and np.all(np.isfinite(masks))


@SETTINGS
# Images up to 300 px a side keep the upscaling cheap (drawn small, not filtered: filtering trips Hypothesis).
@given(prompts=valid_prompts(st.tuples(st.integers(1, 300), st.integers(1, 300))), multimask=st.booleans(),
       seed=st.integers(0, 2**16))
def test_predictor_outputs_have_the_image_size(prompts, multimask, seed):
    (h, w), _, points, labels, box, _ = prompts
    target = 64
    assume(min(resized_shape(h, w, target)) > 0)
    rng = np.random.default_rng(seed)
    low_res, iou = rng.standard_normal((1, 3, 16, 16)).astype(np.float32), rng.random((1, 3)).astype(np.float32)
    runner = RecordingRunner(target, None, low_res, iou)
    predictor = TinySamPredictor(runner)
    predictor.set_image(np.zeros((h, w, 3), np.uint8))
    masks, scores, logits = predictor.predict(points, labels, box, multimask_output=multimask)
    count = 3 if multimask else 1
    assert masks.shape == (count, h, w) and masks.dtype == bool
    assert scores.shape == (count,) and logits.shape == (count, 16, 16)
    if not multimask:
        assert scores[0] == iou[0].max()
    with pytest.raises(PromptError, match="mask_input"):
        predictor.predict(points, labels, box, mask_input=np.zeros((1, 8, 8), np.float32))


# ---- manifest.json: corruptions of a real small manifest are refused with an ArtifactError ----------------

@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("manifest") / "artifacts"
    root.mkdir()
    (root / "encoder.tflite").write_bytes(b"encoder weights" * 10)
    (root / "decoder.mlpackage" / "Data").mkdir(parents=True)
    (root / "decoder.mlpackage" / "Data" / "weight.bin").write_bytes(b"decoder weights")
    records = [artifact_record(root, "encoder.tflite", "encoder"), artifact_record(root, "decoder.mlpackage", "decoder")]
    write_manifest(root, target="coreml", precision="fp16", checkpoint_sha256="ab" * 32, img_size=1024,
                   artifacts=records, prompt_tokens={"min": 1, "max": 5}, everything_batch=64)
    load_manifest(root)  # the uncorrupted manifest loads
    return root


def load_with(artifacts: Path, tmp_path: Path, text: "bytes | str"):
    """load_manifest over a copy of the artifact folder whose manifest holds `text`."""
    import shutil

    root = tmp_path / "copy"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(artifacts, root)
    (root / MANIFEST_NAME).write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_manifest(root)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_byte_corruptions_of_the_manifest_are_refused_cleanly(artifacts, tmp_path, data):
    original = (artifacts / MANIFEST_NAME).read_bytes()
    kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    at = data.draw(st.integers(0, len(original) - 1))
    if kind == "truncate":
        corrupted = original[:at]
    elif kind == "flip":
        corrupted = original[:at] + bytes([original[at] ^ data.draw(st.integers(1, 255))]) + original[at + 1:]
    elif kind == "insert":
        corrupted = original[:at] + data.draw(st.binary(min_size=1, max_size=8)) + original[at:]
    else:
        corrupted = original[:at] + original[at + data.draw(st.integers(1, 16)):]
    try:
        manifest = load_with(artifacts, tmp_path, corrupted)
    except ArtifactError as exc:
        assert "\n" not in str(exc) and str(tmp_path / "copy") in str(exc)
        return
    # harmless corruptions (whitespace, a descriptive text) load, with every field a reader needs intact
    assert manifest["format_version"] == 1 and isinstance(manifest["target"], str)
    assert [r["file"] for r in manifest["artifacts"]] == ["encoder.tflite", "decoder.mlpackage"]


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(allow_nan=False),
                        st.text(max_size=300), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
FIELDS = ["format_version", "target", "precision", "checkpoint_sha256", "artifacts", "preprocessing",
          "preprocessing.input_size", "prompt_tokens", "prompt_tokens.max", "everything_batch", "artifacts.0", "artifacts.0.file",
          "artifacts.1.file", "artifacts.0.sha256", "artifacts.1.size_bytes", "artifacts.0.role"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), delete=st.booleans(), value=JSON_VALUES)
def test_field_corruptions_of_the_manifest_are_refused_cleanly(artifacts, tmp_path, field, delete, value):
    manifest = json.loads((artifacts / MANIFEST_NAME).read_text())
    *parents, last = field.split(".")
    holder = manifest
    for key in parents:
        holder = holder[int(key)] if isinstance(holder, list) else holder[key]
    key = int(last) if isinstance(holder, list) else last
    before = holder[key]
    if delete:
        del holder[key]
    else:
        holder[key] = value
    try:
        loaded = load_with(artifacts, tmp_path, json.dumps(manifest))
    except ArtifactError as exc:
        assert "\n" not in str(exc)
        return
    # accepted: only a change a reader cannot notice (a descriptive string, an optional count, the same value)
    assert not delete or last in ("prompt_tokens", "everything_batch")  # optional: ONNX-style readers need neither
    assert delete or value == before or last in ("target", "precision", "checkpoint_sha256", "role",
                                                 "prompt_tokens", "max", "everything_batch", "input_size")
    for record in loaded["artifacts"]:
        assert isinstance(record["file"], str) and isinstance(record["size_bytes"], int)
    assert isinstance(loaded["preprocessing"]["input_size"], int)


# ---- golden vector files: truncated or corrupted files raise GoldenFormatError ---------------------------

tensors_strategy = st.dictionaries(
    st.text(alphabet="abcdefghij_", min_size=1, max_size=12),
    st.one_of(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)),
              hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=2, max_side=5)),
              hnp.arrays(np.int32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=5))),
    min_size=1, max_size=4)


@SETTINGS
@given(tensors=tensors_strategy, data=st.data())
def test_golden_files_round_trip_and_refuse_truncation_and_corruption(tensors, data, tmp_path):
    path = tmp_path / "case.bin"
    write_tensors(path, tensors)
    back = read_tensors(path)
    assert list(back) == list(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(back[name], value)
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
    original = path.read_bytes()

    cut = data.draw(st.integers(0, len(original) - 1))
    path.write_bytes(original[:cut])
    with pytest.raises(GoldenFormatError):
        read_tensors(path)

    path.write_bytes(original + data.draw(st.binary(min_size=1, max_size=8)))
    with pytest.raises(GoldenFormatError, match="unexpected bytes"):
        read_tensors(path)

    at = data.draw(st.integers(0, len(original) - 1))
    flipped = original[:at] + bytes([original[at] ^ data.draw(st.integers(1, 255))]) + original[at + 1:]
    path.write_bytes(flipped)
    try:
        corrupted = read_tensors(path)
    except GoldenFormatError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:  # a flipped value byte, or a name byte that is still ASCII: the layout still adds up
        for value in corrupted.values():
            assert value.nbytes == value.size * value.itemsize


def test_golden_reader_refuses_huge_declared_shapes(tmp_path):
    """A corrupted dimension must not make the reader allocate or overflow: the file is simply too short."""
    path = tmp_path / "huge.bin"
    path.write_bytes(MAGIC + struct.pack("<I", 1) + struct.pack("<H", 1) + b"x" + struct.pack("<BB", 0, 4)
                     + struct.pack("<4I", *(2**32 - 1,) * 4))
    with pytest.raises(GoldenFormatError, match="truncated"):
        read_tensors(path)
    path.write_bytes(b"TSGOLD02" + b"\0" * 8)
    with pytest.raises(GoldenFormatError, match="not a golden vector file"):
        read_tensors(path)
    assert math.prod((2**32 - 1,) * 4) > 2**64  # the product is exact, not an overflowed int64
