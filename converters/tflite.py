"""`convert --target tflite`: LiteRT flatbuffers through litert-torch, quantized with ai-edge-quantizer.

Artifacts: encoder.tflite (signature 'encode': image -> image_embeddings) and decoder.tflite with two
signatures sharing one set of weights: 'decode' (one prompt of config.num_points points) and
'decode_batch' (config.everything_batch prompts of 2 points each, for everything mode). Precisions:
fp32; fp16 (weights stored as float16); int8 (dynamic range: int8 weights, float activations);
w8a8 (every op integer, int8 inputs and outputs, activation ranges calibrated on real photos and
generated scenes, then checked op by op).
"""

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import TinySamError
from ..modeling import TinySam
from . import accelerators
from .config import EVERYTHING_POINTS, ConvertConfig
from .export_modules import (DECODER_OUTPUTS, ENCODER_INPUT, PixelEncoder, PromptDecoder, decoder_sample_inputs,
                             export_copy)
from .manifest import artifact_record, write_manifest

PRECISIONS = ("fp32", "fp16", "int8", "w8a8")
ENCODER_FILE = "encoder.tflite"
DECODER_FILE = "decoder.tflite"
GPU_REPORT_FILE = "gpu_compatibility.txt"
ENCODER_SIGNATURE = "encode"
DECODER_SIGNATURES = ("decode", "decode_batch")
PIXEL_RANGE = (0.0, 255.0)  # int8 scale 1: every 8-bit pixel value exactly representable

FP16_RECIPE = [{
    "regex": ".*", "operation": "*", "algorithm_key": "float_casting",
    "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                  "compute_precision": "FLOAT", "explicit_dequantize": True},
}]

# Float exports by (checkpoint, shapes): converting several precisions in one process exports once.
_float_exports: dict[tuple, tuple[bytes, bytes]] = {}


def _export(converter, path: Path) -> bytes:
    converter.export(str(path))
    return path.read_bytes()


def export_float(model: TinySam, config: ConvertConfig, checkpoint_sha256: str, progress) -> tuple[bytes, bytes]:
    """(encoder, decoder) float32 flatbuffers at fixed shapes (litert-torch cannot do dynamic ones)."""
    import litert_torch

    size = model.config.img_size
    key = (checkpoint_sha256, size, config.num_points, config.everything_batch)
    if key in _float_exports:
        return _float_exports[key]
    model = export_copy(model)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        progress("exporting the encoder (litert-torch)")
        encoder = litert_torch.signature(ENCODER_SIGNATURE, PixelEncoder(model).eval(),
                                         sample_kwargs={ENCODER_INPUT: torch.rand(1, size, size, 3) * 255})
        encoder_bytes = _export(encoder.convert(), Path(tmp) / ENCODER_FILE)
        progress("exporting the decoder (litert-torch)")
        decoder = PromptDecoder(model).eval()
        converter = litert_torch.signature(DECODER_SIGNATURES[0], decoder,
                                           sample_kwargs=decoder_sample_inputs(size, 1, config.num_points))
        converter.signature(DECODER_SIGNATURES[1], decoder,
                            sample_kwargs=decoder_sample_inputs(size, config.everything_batch, EVERYTHING_POINTS))
        decoder_bytes = _export(converter.convert(), Path(tmp) / DECODER_FILE)
    _float_exports[key] = (encoder_bytes, decoder_bytes)
    return encoder_bytes, decoder_bytes


def _quantize(float_model: bytes, recipe, calibration: "dict[str, Any] | None" = None) -> bytes:
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(bytearray(float_model), recipe)
    return bytes(q.quantize(calibration, enable_progress_report=False).quantized_model)


def calibrate(float_model: bytes, samples: dict[str, list], ranges: "dict[str, tuple[float, float]] | None" = None):
    """Activation min/max over the samples (LiteRT's profiler-based calibration: no intermediate
    tensors are kept, so the 64-prompt decoder fits in memory), then `ranges` overrides."""
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.calibrator import CalibrationMode

    from .litert_calibration import override_ranges

    q = quantizer.Quantizer(bytearray(float_model), recipe.static_wi8_ai8())
    qsvs = q.calibrate(samples, num_threads=torch.get_num_threads(), mode=CalibrationMode.CALIBRATION_PROFILER_BASED)
    return override_ranges(_keepdims(float_model, qsvs), ranges or {})


def input_ranges(float_model: bytes, samples: dict[str, list]) -> dict[str, tuple[float, float]]:
    """Each signature input's exact range over the samples (the profiler does not track model inputs)."""
    ranges = {}
    for signature, signature_samples in samples.items():
        for name, spec in _signature_details(float_model, signature)["inputs"].items():
            values = [s[name] for s in signature_samples]
            ranges[spec["tensor"]] = (float(min(v.min() for v in values)), float(max(v.max() for v in values)))
    return ranges


def _keepdims(float_model: bytes, qsvs: dict[str, Any]) -> dict[str, Any]:
    """The profiler reports min/max as (1,); the quantizer expects them with the tensor's rank."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    ranks = {fb.get_tensor_name(t): len(t.shape) for g in fb.read_model(bytearray(float_model)).subgraphs
             for t in g.tensors}
    return {name: {k: np.reshape(v, (1,) * ranks[name]) if k in ("min", "max") else v for k, v in qsv.items()}
            if name in ranks and qsv else qsv for name, qsv in qsvs.items()}


def _float_runner(model_bytes: bytes, signature: str):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=model_bytes, num_threads=torch.get_num_threads()).get_signature_runner(signature)
    return lambda **inputs: runner(**inputs)


def quantize_w8a8(encoder: bytes, decoder: bytes, model: TinySam, config: ConvertConfig, progress) -> tuple[bytes, bytes]:
    from ai_edge_quantizer import recipe

    from .litert_calibration import calibration_images, decoder_samples, encoder_samples

    size = model.config.img_size
    progress("calibrating the encoder")
    images = calibration_images(config)
    enc_samples = encoder_samples(images, size)
    input_name = _signature_details(encoder, ENCODER_SIGNATURE)["inputs"][ENCODER_INPUT]["tensor"]
    encoder_q = _quantize(encoder, recipe.static_wi8_ai8(),
                          calibrate(encoder, {ENCODER_SIGNATURE: enc_samples}, {input_name: PIXEL_RANGE}))
    progress("calibrating the decoder")
    encode = _float_runner(encoder, ENCODER_SIGNATURE)
    embeddings = [next(iter(encode(**s).values())) for s in enc_samples]
    decode = _float_runner(decoder, DECODER_SIGNATURES[0])
    samples = decoder_samples(images, embeddings, config, size, lambda s: decode(**s)[DECODER_OUTPUTS[0]])
    decoder_q = _quantize(decoder, recipe.static_wi8_ai8(), calibrate(decoder, samples, input_ranges(decoder, samples)))
    return encoder_q, decoder_q


def _signature_details(model_bytes: bytes, signature: str) -> dict[str, Any]:
    """Inputs and outputs of one signature: tensor name, shape, dtype, quantization (scale, zero point)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=model_bytes).get_signature_runner(signature)

    def spec(details: dict) -> dict[str, Any]:
        scale, zero_point = details["quantization"]
        return {"tensor": details["name"], "shape": [int(v) for v in details["shape"]],
                "dtype": np.dtype(details["dtype"]).name,
                "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None}

    return {"inputs": {k: spec(v) for k, v in runner.get_input_details().items()},
            "outputs": {k: spec(v) for k, v in runner.get_output_details().items()}}


def convert(model: TinySam, config: ConvertConfig, work_dir: Path, checkpoint_sha256: str) -> dict[str, Any]:
    from rich.progress import Progress

    if config.scales is not None:
        raise TinySamError("--scales is not supported by the tflite target yet: TinySAM PTQ scales are named by "
                           "PyTorch module, LiteRT calibration by tensor; w8a8 uses calibrated min/max ranges")
    with Progress(transient=True) as bar:
        task = bar.add_task("converting", total=None)
        progress = lambda text: bar.update(task, description=text)  # noqa: E731
        encoder, decoder = export_float(model, config, checkpoint_sha256, progress)
        if config.precision == "fp16":
            progress("casting weights to float16")
            encoder, decoder = _quantize(encoder, FP16_RECIPE), _quantize(decoder, FP16_RECIPE)
        elif config.precision == "int8":
            from ai_edge_quantizer import recipe

            progress("quantizing weights to int8")
            encoder, decoder = (_quantize(m, recipe.dynamic_wi8_afp32()) for m in (encoder, decoder))
        elif config.precision == "w8a8":
            encoder, decoder = quantize_w8a8(encoder, decoder, model, config, progress)
        (work_dir / ENCODER_FILE).write_bytes(encoder)
        (work_dir / DECODER_FILE).write_bytes(decoder)
        if config.precision == "w8a8":
            progress("checking that every op is integer")
            accelerators.check_integer_only(work_dir / ENCODER_FILE)
        progress("GPU-delegate compatibility analysis")
        reports = {name: accelerators.gpu_compatibility_report(work_dir / name) for name in (ENCODER_FILE, DECODER_FILE)}
    (work_dir / GPU_REPORT_FILE).write_text("".join(f"==== {name}\n{text}\n" for name, text in reports.items()))
    gpu_ok = {name: "looks compatible with GPU delegate" in text for name, text in reports.items()}
    artifacts = [
        artifact_record(work_dir, ENCODER_FILE, "encoder", signatures={ENCODER_SIGNATURE: _signature_details(encoder, ENCODER_SIGNATURE)},
                        gpu_delegate_compatible=gpu_ok[ENCODER_FILE]),
        artifact_record(work_dir, DECODER_FILE, "decoder",
                        signatures={s: _signature_details(decoder, s) for s in DECODER_SIGNATURES},
                        gpu_delegate_compatible=gpu_ok[DECODER_FILE],
                        float_ops=accelerators.float_ops(work_dir / DECODER_FILE)),
        artifact_record(work_dir, GPU_REPORT_FILE, "gpu_compatibility_report"),
    ]
    return write_manifest(
        work_dir, target="tflite", precision=config.precision, checkpoint_sha256=checkpoint_sha256,
        img_size=model.config.img_size, artifacts=artifacts,
        encoder_input={"name": ENCODER_INPUT, "layout": "NHWC (1, S, S, 3)", "values": "RGB pixels 0-255 (float, or "
                       "int8 with the listed scale / zero point for w8a8); pad bottom/right with pixel_mean; "
                       "normalisation happens inside the model"},
        decoder={"signatures": {"decode": f"1 prompt x {config.num_points} points",
                                "decode_batch": f"{config.everything_batch} prompts x {EVERYTHING_POINTS} points "
                                "(point + padding), one shared image embedding"},
                 "outputs": list(DECODER_OUTPUTS)},
        num_points=config.num_points, everything_batch=config.everything_batch,
    )
