"""Shared fixtures. Expensive artifacts (converted models) are built once per test session."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Two cores in CI, shared by the pytest-xdist workers (`make test` runs two): keep torch from
# oversubscribing them.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // WORKERS))

# Files whose tests share a session fixture that is expensive to build (full-size conversions, the golden
# vectors) run on one xdist worker (`--dist loadgroup`), so each fixture is built once per suite, as in a
# serial run; every other file is its own group, so its module fixtures are built once too.
SHARED_FIXTURE_GROUPS = {"test_mil_models.py": "test_coreml.py", "test_validate.py": "test_tflite.py",
                         "test_kotlin_glue.py": "test_swift_glue.py"}


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        item.add_marker(pytest.mark.xdist_group(SHARED_FIXTURE_GROUPS.get(item.path.name, item.path.name)))

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def small_model():
    """Seeded TinySAM at img_size 256 (same weight shapes as 1024): for logic tests."""
    from tinysam_mobile.checkpoint import seeded_model
    from tinysam_mobile.modeling import TinySamConfig

    return seeded_model(TinySamConfig(img_size=256)).eval()


@pytest.fixture(scope="session")
def small_calibration(small_model):
    """(samples, config, captured activations and gradients) of a small calibration of the 256 model: what
    the scales search and the min/max baseline start from."""
    from tinysam_mobile.calibration.capture import capture
    from tinysam_mobile.calibration.config import CalibrationConfig
    from tinysam_mobile.calibration.pipeline import calibration_samples

    config = CalibrationConfig(num_images=2, prompts_per_image=3, candidates=20, rounds=2, rows_per_op=128,
                               windows_per_op=4, entries_per_op=4)
    samples = calibration_samples(config, 256)
    return samples, config, capture(small_model, samples, config)


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photo (scikit-image's chelsea, 300x451 RGB)."""
    import skimage.data

    return skimage.data.chelsea()


COREML_TEST_BATCH = 8  # everything-mode decoder batch of the CoreML fixtures (64 in shipped packages)


def _coreml_dir(tmp_path_factory, precision: str) -> Path:
    """Full-size seeded TinySAM converted by `convert --target coreml` (encoder, decoder, batched decoder)."""
    from tinysam_mobile.checkpoint import SEEDED_WEIGHTS_SEED, seeded_model
    from tinysam_mobile.converters import coreml
    from tinysam_mobile.converters.config import ConvertConfig
    from tinysam_mobile.modeling import TinySamConfig

    out = tmp_path_factory.mktemp(f"coreml_{precision}")
    config = ConvertConfig(target="coreml", precision=precision, everything_batch=COREML_TEST_BATCH)
    coreml.convert(seeded_model(TinySamConfig()).eval(), config, out, f"seeded-{SEEDED_WEIGHTS_SEED}")
    return out


@pytest.fixture(scope="session")
def coreml_fp16_dir(tmp_path_factory) -> Path:
    """CoreML fp16 packages + manifest.json of the seeded 1024 model."""
    return _coreml_dir(tmp_path_factory, "fp16")


@pytest.fixture(scope="session")
def coreml_int8_dir(tmp_path_factory) -> Path:
    """CoreML int8 (max-abs per-channel weight scales) packages + manifest.json of the same model."""
    return _coreml_dir(tmp_path_factory, "int8")


@pytest.fixture(scope="session")
def coreml_fp32_dir(tmp_path_factory) -> Path:
    """CoreML fp32 packages (fp32 compute) of the same model: the MIL interpreter's parity reference."""
    return _coreml_dir(tmp_path_factory, "fp32")


TFLITE_TEST_BATCH = 16  # everything-mode decoder batch of the LiteRT fixtures (64 by default)


@pytest.fixture(scope="session")
def calibration_photos(tmp_path_factory) -> Path:
    """Two real photos as a --calibration-images folder (the default set has 8 images: slower)."""
    import skimage.data
    from PIL import Image

    folder = tmp_path_factory.mktemp("calibration_photos")
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(skimage.data, name)()).save(folder / f"{name}.png")
    return folder


def _tflite_dir(tmp_path_factory, calibration_photos: Path, precision: str) -> Path:
    """Full-size LiteRT artifacts of the default model (demo weights, else seeded), converted once per
    session; converting several precisions in one process exports the float graphs once."""
    from tinysam_mobile.checkpoint import checkpoint_id, load_tinysam
    from tinysam_mobile.converters import tflite
    from tinysam_mobile.converters.config import ConvertConfig

    out = tmp_path_factory.mktemp(f"tflite_{precision}")
    config = ConvertConfig(target="tflite", precision=precision, everything_batch=TFLITE_TEST_BATCH,
                           calibration_images=calibration_photos)
    tflite.convert(load_tinysam(), config, out, checkpoint_id(None))
    return out


@pytest.fixture(scope="session")
def tflite_fp32_dir(tmp_path_factory, calibration_photos) -> Path:
    return _tflite_dir(tmp_path_factory, calibration_photos, "fp32")


@pytest.fixture(scope="session")
def tflite_w8a8_dir(tmp_path_factory, calibration_photos) -> Path:
    return _tflite_dir(tmp_path_factory, calibration_photos, "w8a8")


@pytest.fixture(scope="session")
def golden_dir(tmp_path_factory) -> Path:
    """Golden vectors of the app glue, written by the Python reference (read by the Kotlin and Swift tests)."""
    from tinysam_mobile.golden import write_golden

    out = tmp_path_factory.mktemp("golden")
    write_golden(out)
    return out


def tampered_copy(folder: Path, file: str, destination: Path) -> Path:
    """A copy of an artifact folder with one byte of `file` flipped (its manifest hash no longer matches)."""
    import shutil

    shutil.copytree(folder, destination)
    with open(destination / file, "r+b") as f:
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    return destination


def predictable_scales(model) -> "ScalesFile":
    """A scales file for every op of `model` with values a test can predict: weight scales 0.8x the
    max-abs ones (the largest weights clip), per output channel for convs and deconvs, one per layer for
    linears; activation scales distinct per op; post-softmax operands twin-uniform, as TinySAM has them."""
    from tinysam_mobile.calibration.capture import quantizable_ops
    from tinysam_mobile.calibration.export import OUTPUT_AXIS
    from tinysam_mobile.calibration.scales import OpScales, Quantizer, ScalesFile

    ops = {}
    for i, (name, (kind, module)) in enumerate(quantizable_ops(model).items()):
        activation = Quantizer("uniform", 8, torch.tensor([0.01 * (1 + i % 17)]))
        if kind == "matmul":
            a = Quantizer("twin_softmax", 8, torch.tensor([1e-4]), scale_high=torch.tensor([1 / 127]), split=0.0127)
            b = Quantizer("uniform", 8, torch.tensor([0.02 * (1 + i % 7)]))
            ops[name] = OpScales(kind, {"a": a if name.endswith("av_matmul") else activation, "b": b})
            continue
        w = module.weight.detach()
        if kind == "linear":
            scale = 0.8 * w.abs().amax().reshape(1, 1) / 127
        else:
            axis = OUTPUT_AXIS[kind]
            scale = 0.8 * w.abs().amax(dim=[d for d in range(w.dim()) if d != axis], keepdim=True) / 127
        weight = Quantizer("uniform", 8, scale, "tensor" if kind == "linear" else "channel")
        ops[name] = OpScales(kind, {"weight": weight, "input": activation})
    return ScalesFile("seeded-0", "test", ops)
