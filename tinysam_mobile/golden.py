"""Golden vectors: inputs and expected outputs of the app glue, produced by the Python reference pipeline.

The Kotlin (sample_apps/android/core) and Swift (sample_apps/ios TinySAMKit) tests read these and
check that the phone glue equals the Python pipeline. Every expected value comes from the real
functions in tinysam_mobile (TinySamPredictor, utils/transforms.py, utils/prompts.py); the network
itself is replaced by a recording runner that answers with given low-res logits, so the vectors
test the glue around the network and nothing else.

Format (readable with the standard library of Kotlin 1.3 and Swift Foundation): a folder holding
index.txt, one case per line as "<kind> <file>", and one little-endian binary file per case:
    8 bytes  magic "TSGOLD01"
    uint32   tensor count, then per tensor:
    uint16   name length, name (ASCII)
    uint8    dtype: 0 float32, 1 uint8, 2 int32
    uint8    rank, then uint32 dims[rank], then the values in C order
Kinds: preprocess (image -> resized image -> normalised encoder input, and the NHWC mean-padded
pixel input of the LiteRT encoder), predict (prompts + low-res logits ->
decoder prompts, masks, best mask; and the decoder points' Fourier features under a seeded projection,
which the app computes for the integer LiteRT decoders), prompt_error (prompts the pipeline refuses),
everything (TinySAM's hierarchical generator: every decoder call's prompts and answers, the round-1
coverage, the round-2 points and the final masks after NMS), image_error (image sizes preprocessing
refuses), image_read (RGBA pixels as stored in a file with an EXIF orientation -> load_image's upright
RGB, transparency over white). A prompt given as None has no tensor in its case file. The manifests/
subfolder holds CoreML manifests for the iOS manifest check (golden_manifests.py).
"""

import io
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .automatic_mask_generator import TinySamHierarchicalMaskGenerator
from .errors import ImageError, PromptError, TinySamError
from .golden_manifests import write_manifest_cases
from .predictor import TinySamPredictor
from .utils.image_io import load_image
from .utils.prompts import DEFAULT_MAX_TOKENS, point_features
from .utils.transforms import pad_pixels, preprocess, resize_longest_side, resized_shape

MAGIC = b"TSGOLD01"
DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.uint8): 1, np.dtype(np.int32): 2}
INDEX_NAME = "index.txt"
EMBEDDING_CHANNELS = 256


def write_tensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write named arrays (float32, uint8 or int32) in the golden binary format."""
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(tensors)))
        for name, value in tensors.items():
            array = np.ascontiguousarray(value)
            encoded = name.encode("ascii")
            f.write(struct.pack("<H", len(encoded)) + encoded)
            f.write(struct.pack("<BB", DTYPE_CODES[array.dtype], array.ndim))
            f.write(struct.pack(f"<{array.ndim}I", *array.shape))
            f.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


class GoldenFormatError(TinySamError, ValueError):
    """A golden vector file that is truncated, corrupted or not one at all."""


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    """Inverse of write_tensors (for Python-side checks of the files). GoldenFormatError, naming the file
    and the byte offset, for anything write_tensors could not have written."""
    data = Path(path).read_bytes()
    if data[:8] != MAGIC:
        raise GoldenFormatError(f"{path}: not a golden vector file (no {MAGIC.decode()} header)")
    dtypes = {code: dtype for dtype, code in DTYPE_CODES.items()}
    pos, out = 8, {}

    def take(size: int, what: str) -> bytes:
        nonlocal pos
        if pos + size > len(data):
            raise GoldenFormatError(f"{path}: truncated at byte {len(data)} while reading {what} "
                                    f"({size} bytes at offset {pos})")
        chunk = data[pos: pos + size]
        pos += size
        return chunk

    (count,) = struct.unpack("<I", take(4, "the tensor count"))
    for index in range(count):
        (length,) = struct.unpack("<H", take(2, f"tensor {index}'s name length"))
        try:
            name = take(length, f"tensor {index}'s name").decode("ascii")
        except UnicodeDecodeError:
            raise GoldenFormatError(f"{path}: tensor {index}'s name is not ASCII (offset {pos - length})") from None
        if name in out:
            raise GoldenFormatError(f"{path}: tensor {name!r} appears twice")
        code, rank = struct.unpack("<BB", take(2, f"{name!r}'s dtype and rank"))
        if code not in dtypes:
            raise GoldenFormatError(f"{path}: {name!r} has unknown dtype code {code} (offset {pos - 2})")
        shape = struct.unpack(f"<{rank}I", take(4 * rank, f"{name!r}'s shape"))
        dtype = dtypes[code].newbyteorder("<")
        size = math.prod(shape) * dtype.itemsize
        out[name] = np.frombuffer(take(size, f"{name!r}'s {math.prod(shape)} values"), dtype=dtype).reshape(shape)
    if pos != len(data):
        raise GoldenFormatError(f"{path}: {len(data) - pos} unexpected bytes after the last of {count} tensors")
    return out


class RecordingRunner:
    """A Runner that keeps what the predictor feeds the network and answers with fixed outputs."""

    name = "golden"
    batch_size = 1

    def __init__(self, img_size: int, max_tokens: Optional[int], low_res: np.ndarray, iou: np.ndarray) -> None:
        self.img_size, self.max_tokens = img_size, max_tokens
        self.low_res, self.iou = low_res, iou
        self.encoder_input: Optional[np.ndarray] = None
        self.decoder_prompts: Optional[tuple[np.ndarray, np.ndarray]] = None

    def encode(self, image: np.ndarray) -> np.ndarray:
        self.encoder_input = image
        side = self.img_size // 16
        return np.zeros((1, EMBEDDING_CHANNELS, side, side), np.float32)

    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        self.decoder_prompts = (point_coords, point_labels)
        return self.low_res, self.iou


class BlobDecoderRunner(RecordingRunner):
    """Everything-mode stand-in for the decoder: each prompt gets three cone-shaped blobs of logits
    centred on its point (radii and IoU drawn from a seeded generator), so masks pass or fail the
    generator's filters and round 1 covers part of the image. Every call is recorded."""

    SLOPE = 40.0  # logits per low-res pixel: steep enough for many masks to be stable

    def __init__(self, img_size: int, rng: np.random.Generator) -> None:
        super().__init__(img_size, 2, np.zeros(0, np.float32), np.zeros(0, np.float32))
        self.rng = rng
        self.calls: list[tuple[np.ndarray, ...]] = []

    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        side = self.img_size // 4
        b = len(point_coords)
        grid = (np.arange(side, dtype=np.float32) + 0.5) * 4  # low-res pixel centres in the input frame
        dx = grid[None, None, None, :] - point_coords[:, 0, 0, None, None, None]
        dy = grid[None, None, :, None] - point_coords[:, 0, 1, None, None, None]
        radius = self.rng.uniform(0.2, 1.6, size=(b, 3, 1, 1)).astype(np.float32)
        distance = np.sqrt(dx * dx + dy * dy) / 4
        low_res = (self.SLOPE * (radius - distance)).astype(np.float32)
        iou = self.rng.uniform(0.7, 1.0, size=(b, 3)).astype(np.float32)
        self.calls.append((point_coords, point_labels, low_res, iou))
        return low_res, iou


@dataclass(frozen=True)
class GoldenConfig:
    seed: int = 0
    img_size: int = 1024        # the shipped artifacts' encoder side
    max_tokens: int = DEFAULT_MAX_TOKENS  # the most prompt tokens the shipped interactive decoder takes
    small_img_size: int = 256   # a second input size, so nothing in the glue hard-codes 1024
    photo: Optional[np.ndarray] = field(default=None, compare=False)  # a real RGB photo; default chelsea


@dataclass(frozen=True)
class PromptCase:
    name: str
    size: tuple[int, int]                        # original (h, w)
    points: Optional[list[tuple[float, float]]]  # (x, y) in original pixels
    labels: Optional[list[float]]
    box: Optional[tuple[float, float, float, float]] = None


# Odd sizes, portrait and landscape, 1-pixel-wide and -high images; points on the image border;
# negatives; boxes with and without points; 1, 2, 3 and 8 points with and without a box (the decoder takes
# exactly each prompt's tokens: nothing is padded beyond SAM's one padding point).
PROMPT_CASES = [
    PromptCase("landscape_point", (300, 451), [(230.0, 140.0)], [1.0]),
    PromptCase("landscape_pos_neg", (300, 451), [(230.5, 140.25), (100.0, 80.0)], [1.0, 0.0]),
    PromptCase("landscape_box", (300, 451), None, None, (50.0, 30.5, 400.0, 290.0)),
    PromptCase("portrait_box_points", (451, 300), [(150.0, 200.0), (10.0, 440.0)], [1.0, 0.0],
               (20.0, 100.0, 280.0, 430.0)),
    PromptCase("portrait_border_points", (451, 300), [(0.0, 0.0), (300.0, 451.0), (299.5, 0.5)], [1.0, 0.0, 1.0]),
    PromptCase("odd_small", (37, 53), [(26.3, 18.7)], [1.0]),
    PromptCase("odd_small_box", (37, 53), [(5.0, 5.0)], [0.0], (1.0, 2.0, 52.0, 36.0)),
    PromptCase("one_pixel_high", (1, 97), [(48.0, 0.5)], [1.0]),
    PromptCase("one_pixel_wide", (97, 1), [(0.5, 60.0)], [1.0], (0.0, 10.0, 1.0, 90.0)),
    PromptCase("square_full_size", (1024, 1024), [(512.0, 512.0), (900.0, 100.0)], [1.0, 0.0]),
    PromptCase("six_points_and_box", (480, 640),
               [(10.0, 10.0), (600.0, 20.0), (320.0, 240.0), (50.0, 470.0), (630.0, 470.0), (321.0, 239.0)],
               [1.0, 0.0, 1.0, 0.0, 0.0, 1.0], (5.0, 5.0, 635.0, 475.0)),
    PromptCase("three_points_and_box", (451, 300), [(150.0, 200.0), (10.0, 440.0), (290.0, 5.0)], [1.0, 0.0, 0.0],
               (20.0, 100.0, 280.0, 430.0)),
    PromptCase("eight_points_no_box", (480, 640), [(float(10 + 75 * i), float(470 - 55 * i)) for i in range(8)],
               [1.0, 0.0] * 4),
    PromptCase("eight_points_and_box", (480, 640), [(float(40 + 70 * i), float(30 + 50 * i)) for i in range(8)],
               [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0], (5.0, 5.0, 635.0, 475.0)),
    PromptCase("nine_points_no_box", (480, 640), [(float(20 + 60 * i), float(20 + 50 * i)) for i in range(9)],
               [1.0] * 9),
    PromptCase("seven_points_no_box", (480, 640), [(float(30 + 80 * i), float(20 + 60 * i)) for i in range(7)],
               [1.0, 0.0] * 3 + [1.0]),
    # An empty point list is a (0, 2) array of no points, not None: accepted, alone or with a box.
    PromptCase("empty_points_no_box", (300, 451), [], []),
    PromptCase("empty_points_and_box", (300, 451), [], [], (50.0, 30.5, 400.0, 290.0)),
]

# Prompts the pipeline must refuse (the apps show the same refusal instead of calling the decoder).
ERROR_CASES = [
    PromptCase("point_outside", (300, 451), [(452.0, 10.0)], [1.0]),
    PromptCase("negative_coordinate", (300, 451), [(-0.5, 10.0)], [1.0]),
    PromptCase("box_inverted", (300, 451), None, None, (200.0, 30.0, 100.0, 200.0)),
    PromptCase("box_outside", (300, 451), None, None, (0.0, 0.0, 452.0, 300.0)),
    PromptCase("bad_label", (300, 451), [(10.0, 10.0)], [2.0]),
    PromptCase("too_many_points", (300, 451), [(float(i), float(i)) for i in range(9)], [1.0] * 9,
               (0.0, 0.0, 100.0, 100.0)),
    PromptCase("ten_points_no_box", (300, 451), [(float(5 * i), float(3 * i)) for i in range(10)], [1.0] * 10),
    PromptCase("nothing", (300, 451), None, None),
    PromptCase("points_without_labels", (300, 451), [(10.0, 10.0)], None),
]

# (h, w) and encoder side of images whose short side would shrink to 0 pixels: preprocessing refuses them.
ELONGATED_IMAGES = {
    "one_pixel_high": ((1, 3000), 1024),
    "one_pixel_wide": ((2100, 1), 1024),
    "one_pixel_high_small_input": ((1, 600), 256),
}

EXIF_ORIENTATION_TAG = 0x0112


def _noise_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _preprocess_images(config: GoldenConfig, rng: np.random.Generator) -> list[tuple[str, np.ndarray, int]]:
    """(name, RGB image, encoder side): real photo both ways, noise (worst case for resampling) at odd,
    extreme and exact sizes, upscaling and downscaling, one pass or both, in either pass order."""
    photo = config.photo
    if photo is None:
        import skimage.data

        photo = skimage.data.chelsea()
    s, small = config.img_size, config.small_img_size
    return [
        ("photo_landscape", photo, s),
        ("photo_portrait", np.ascontiguousarray(photo.transpose(1, 0, 2)), s),
        ("photo_landscape_small_input", photo, small),
        ("noise_odd_small", _noise_image(rng, 37, 53), s),
        ("noise_one_pixel_high", _noise_image(rng, 1, 97), s),
        ("noise_one_pixel_wide", _noise_image(rng, 97, 1), s),
        ("noise_one_pixel_high_width_only", _noise_image(rng, 1, 1500), s),
        ("noise_one_pixel_wide_height_only", _noise_image(rng, 1500, 1), s),
        ("noise_exact_size", _noise_image(rng, s, s), s),
        ("noise_downscale_portrait", _noise_image(rng, 2047, 1531), s),
        ("noise_thin_strip", _noise_image(rng, 3001, 41), s),
        ("noise_downscale_odd_small_input", _noise_image(rng, 777, 333), small),
    ]


def _smooth_logits(rng: np.random.Generator, side: int) -> np.ndarray:
    """(1, 3, side, side) float32 logits with blobs and zero crossings, like a decoder's output."""
    coarse = torch.from_numpy(rng.normal(0.0, 6.0, size=(1, 3, 9, 9)).astype(np.float32))
    field_ = F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)
    return (field_ + torch.tensor([-2.0, 0.0, 2.0]).view(1, 3, 1, 1)).numpy()


def _prompt_arrays(case: PromptCase):
    coords = None if case.points is None else np.array(case.points, np.float32).reshape(-1, 2)
    labels = None if case.labels is None else np.array(case.labels, np.float32)
    box = None if case.box is None else np.array(case.box, np.float32)
    return coords, labels, box


def _prompt_tensors(case: PromptCase, img_size: int, max_tokens: int) -> dict[str, np.ndarray]:
    given = dict(zip(("points", "labels", "box"), _prompt_arrays(case)))
    return {
        "original_size": np.array(case.size, np.int32),
        "img_size": np.array(img_size, np.int32),
        "max_tokens": np.array(max_tokens, np.int32),
        **{name: value for name, value in given.items() if value is not None},  # None: no tensor
    }


def preprocess_case(image: np.ndarray, img_size: int) -> dict[str, np.ndarray]:
    runner = RecordingRunner(img_size, None, np.zeros(0, np.float32), np.zeros(0, np.float32))
    predictor = TinySamPredictor(runner)
    predictor.set_image(image)
    resized = resize_longest_side(image, img_size)
    return {
        "image": image,
        "img_size": np.array(img_size, np.int32),
        "resized_shape": np.array(resized_shape(*image.shape[:2], img_size), np.int32),
        "resized": resized,
        "input_size": np.array(predictor.input_size, np.int32),
        "encoder_input": runner.encoder_input,
        "encoder_pixels": pad_pixels(resized, img_size),
    }


def predict_case(case: PromptCase, img_size: int, max_tokens: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    low_res = _smooth_logits(rng, img_size // 4)
    iou = rng.uniform(0.5, 1.0, size=(1, 3)).astype(np.float32)
    runner = RecordingRunner(img_size, max_tokens, low_res, iou)
    predictor = TinySamPredictor(runner)
    # The predictor only needs the image's size here; a blank image of that size stands in.
    predictor.set_image(np.zeros((*case.size, 3), np.uint8))
    coords, labels, box = _prompt_arrays(case)
    masks, _, _ = predictor.predict(coords, labels, box, multimask_output=True)
    best_logits, best_iou, _ = predictor.predict(coords, labels, box, multimask_output=False, return_logits=True)
    decoder_coords, decoder_labels = runner.decoder_prompts
    gaussian = rng.standard_normal((2, EMBEDDING_CHANNELS // 2)).astype(np.float32)  # as the prompt encoder's
    return {
        **_prompt_tensors(case, img_size, max_tokens),
        "low_res_logits": low_res,
        "iou_predictions": iou,
        "input_size": np.array(predictor.input_size, np.int32),
        "decoder_coords": decoder_coords,
        "decoder_labels": decoder_labels,
        "masks": masks.astype(np.uint8),
        "best_index": np.array(int(np.flatnonzero(iou[0] == best_iou[0])[0]), np.int32),
        "best_logits": best_logits[0],
        "gaussian_matrix": gaussian,
        "point_features": point_features(decoder_coords, gaussian, img_size),
    }


def prompt_error_case(case: PromptCase, img_size: int, max_tokens: int) -> dict[str, np.ndarray]:
    runner = RecordingRunner(img_size, max_tokens, np.zeros(0, np.float32), np.zeros(0, np.float32))
    predictor = TinySamPredictor(runner)
    predictor.set_image(np.zeros((*case.size, 3), np.uint8))
    try:
        predictor.predict(*_prompt_arrays(case))
    except PromptError:
        return _prompt_tensors(case, img_size, max_tokens)
    raise AssertionError(f"golden error case {case.name} was accepted by the reference pipeline")


EVERYTHING_SIZES = {"landscape": (96, 128), "portrait": (128, 96), "odd_small": (37, 53)}
EVERYTHING_IMG_SIZE = 64  # low-res masks of 16x16 keep ~1000 recorded prompts small
EVERYTHING_BATCH = 64


def everything_case(size: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    runner = BlobDecoderRunner(EVERYTHING_IMG_SIZE, rng)
    generator = TinySamHierarchicalMaskGenerator(runner, points_per_batch=EVERYTHING_BATCH)
    records = generator.generate(np.zeros((*size, 3), np.uint8))
    cfg = generator.config
    coords, labels, low_res, iou = (np.concatenate(parts) for parts in zip(*runner.calls))
    round1 = coords[:generator.stats.prompts_per_round[0], 0]
    return {
        "original_size": np.array(size, np.int32),
        "img_size": np.array(EVERYTHING_IMG_SIZE, np.int32),
        "points_per_side": np.array(cfg.points_per_side, np.int32),
        "points_per_batch": np.array(cfg.points_per_batch, np.int32),
        "thresholds": np.array([cfg.pred_iou_thresh, cfg.stability_score_thresh, cfg.stability_score_offset,
                                cfg.box_nms_thresh, cfg.high_score_thresh], np.float32),
        "call_sizes": np.array([len(call[0]) for call in runner.calls], np.int32),
        "prompts_per_round": np.array(generator.stats.prompts_per_round, np.int32),
        "decoder_coords": coords,
        "decoder_labels": labels,
        "low_res_logits": low_res,
        "iou_predictions": iou,
        "round1_decoder_points": round1,
        "masks": np.array([r["segmentation"] for r in records], np.uint8).reshape(-1, *size),
        "boxes_xywh": np.array([r["bbox"] for r in records], np.int32).reshape(-1, 4),
        "areas": np.array([r["area"] for r in records], np.int32),
        "predicted_iou": np.array([r["predicted_iou"] for r in records], np.float32),
        "stability": np.array([r["stability_score"] for r in records], np.float32),
        "point_coords": np.array([r["point_coords"][0] for r in records], np.float32).reshape(-1, 2),
    }


def image_error_case(size: tuple[int, int], img_size: int) -> dict[str, np.ndarray]:
    try:
        preprocess(np.zeros((*size, 3), np.uint8), img_size)
    except ImageError:
        return {"original_size": np.array(size, np.int32), "img_size": np.array(img_size, np.int32)}
    raise AssertionError(f"golden image error case {size} was accepted by the reference pipeline")


def image_read_case(rgba: np.ndarray, orientation: int) -> dict[str, np.ndarray]:
    """RGBA pixels stored in a PNG tagged with an EXIF orientation, read back by load_image (upright,
    transparency over white): the phones' image reading must give the same RGB."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    encoded = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(encoded, "PNG", exif=exif)
    with Image.open(io.BytesIO(encoded.getvalue())) as img:
        img.load()
        upright = load_image(img)
    return {"stored_rgba": rgba, "orientation": np.array(orientation, np.int32), "upright_rgb": upright}


def _every_colour_alpha_pair() -> np.ndarray:
    """256x256 RGBA: alpha down the rows, every colour value 0-255 along each row (green reversed)."""
    value, alpha = np.meshgrid(np.arange(256), np.arange(256))
    return np.stack([value, 255 - value, (value * 7 + alpha * 3) % 256, alpha], axis=-1).astype(np.uint8)


def golden_cases(config: GoldenConfig) -> Iterator[tuple[str, str, Callable[[], dict[str, np.ndarray]]]]:
    """(kind, name, producer) for every golden case; producers run lazily so callers can show progress."""
    rng = np.random.default_rng(config.seed)
    for name, image, side in _preprocess_images(config, rng):
        yield "preprocess", name, lambda image=image, side=side: preprocess_case(image, side)
    for number, case in enumerate(PROMPT_CASES):
        for side in (config.img_size, config.small_img_size):
            case_rng = np.random.default_rng([config.seed, side, number])
            yield "predict", f"{case.name}_{side}", (
                lambda case=case, side=side, case_rng=case_rng: predict_case(case, side, config.max_tokens, case_rng))
    for case in ERROR_CASES:
        yield "prompt_error", case.name, lambda case=case: prompt_error_case(case, config.img_size, config.max_tokens)
    for number, (name, size) in enumerate(EVERYTHING_SIZES.items()):
        case_rng = np.random.default_rng([config.seed, 7, number])
        yield "everything", name, lambda size=size, case_rng=case_rng: everything_case(size, case_rng)
    for name, (size, side) in ELONGATED_IMAGES.items():
        yield "image_error", name, lambda size=size, side=side: image_error_case(size, side)
    yield "image_read", "alpha_every_pair", lambda: image_read_case(_every_colour_alpha_pair(), 1)
    for orientation in range(1, 9):  # a 3x5 image, so the transposing orientations change its shape
        rgba = rng.integers(0, 256, size=(3, 5, 4), dtype=np.uint8)
        yield "image_read", f"orientation_{orientation}", (
            lambda rgba=rgba, orientation=orientation: image_read_case(rgba, orientation))


def write_golden(out_dir: Path, config: GoldenConfig = GoldenConfig(),
                 on_case: Callable[[str], None] = lambda name: None) -> list[tuple[str, str]]:
    """Write every case and index.txt into out_dir (an existing, empty folder). Returns (kind, file) rows."""
    rows = []
    for kind, name, produce in golden_cases(config):
        on_case(name)
        file_name = f"{kind}_{name}.bin"
        write_tensors(out_dir / file_name, produce())
        rows.append((kind, file_name))
    (out_dir / INDEX_NAME).write_text("".join(f"{kind} {file_name}\n" for kind, file_name in rows))
    write_manifest_cases(out_dir)
    return rows


def count_cases(config: GoldenConfig = GoldenConfig()) -> int:
    return sum(1 for _ in golden_cases(config))
