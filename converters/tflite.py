"""`convert --target tflite`: LiteRT flatbuffers through litert-torch, quantized with ai-edge-quantizer.

Artifacts: encoder.tflite (signature 'encode': image -> image_embeddings) and decoder.tflite with
signatures sharing one set of weights: 'decode_tokens_T' for each prompt-token count T from 1 to
config.max_tokens (one prompt of exactly T tokens: litert-torch exports fixed shapes only, and a padding
token would change the masks) and 'decode_batch' (config.everything_batch prompts of 2 tokens each, for
everything mode). Precisions:
fp32; fp16 (weights stored as float16); int8 (dynamic range: int8 weights, float activations; the
convolutions but the neck's keep float weights);
w8a8 (every op integer, int8 weights; int8 activations at the inputs of the encoder's fully-connected
layers, where TinySAM's W8A8 quantizes the transformer's activations, int16 everywhere else: one int8 grid
per tensor on the residual stream, the LayerNorms or the convolution stages loses the masks; activation
ranges calibrated on real photos and generated scenes; the decoder takes the points' Fourier features
from the app, as sin / cos have no integer kernels; with --scales, TinySAM PTQ weight grids and the
fully-connected inputs' ranges, see litert_scales); w8a16 (as w8a8 with the fully-connected inputs int16
too: every activation int16, TFLite's 16x8 quantization mode); int8-xnnpack (static int8 for XNNPACK's
integer kernels: the encoder's fully-connected layers and neck convolution calibrated int8, everything
else float, all of it one XNNPACK partition; the decoder as int8).
"""

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..calibration.scales import ScalesFile
from ..errors import TinySamError
from ..modeling import TinySam
from ..utils.prompts import POINT_FEATURES_FORMULA, point_features
from . import accelerators, litert_scales
from .config import EVERYTHING_POINTS, ConvertConfig, token_counts
from .export_modules import (BATCH_SIGNATURE, DECODER_OUTPUTS, ENCODER_INPUT, POINT_FEATURES, FeaturePromptDecoder,
                             PixelEncoder, PromptDecoder, decoder_sample_inputs, export_copy, token_signature)
from .manifest import artifact_record, prompt_tokens, write_manifest
from .ptq_placement import ScalesReport, check_entries, manifest_record

PRECISIONS = ("fp32", "fp16", "int8", "w8a8", "w8a16", "int8-xnnpack")
# The full-integer precisions, by the encoder ops (ai-edge-quantizer's names) whose activations are int8;
# every other activation is int16 (symmetric, zero point 0). A one-off sweep of the demo model (one op
# group's activations int16 at a time, docs/runtimes-and-benchmarks.md) kept 0.977 mask IoU with only the
# fully-connected inputs int8 and 0.633-0.841 with int8 on other groups too; the decoder's image softmax
# needs int16 as well, so the decoder has none.
INT8_ENCODER_OPS = {"w8a8": frozenset({"FULLY_CONNECTED"}), "w8a16": frozenset()}
ENCODER_FILE = "encoder.tflite"
DECODER_FILE = "decoder.tflite"
GPU_REPORT_FILE = "gpu_compatibility.txt"
ENCODER_SIGNATURE = "encode"
# Fixed int16 input ranges, so that what the app feeds is held exactly: pixels at scale 1/128, point labels
# (-1..3) at scale 1/2. The prompt encoder tests labels with EQUAL; a calibrated range [-1, 3] held only 0
# exactly, and every padding, positive and box-corner test failed.
PIXEL_RANGE = (-32767 / 128, 32767 / 128)
LABEL_RANGE = (-32767 / 2, 32767 / 2)
# has_mask_input is a 0/1 flag: calibrated, the everything-mode signature (never given a mask prompt)
# saw only 0 and its scale collapsed to 4e-12, so a 1 would have read as 0.
HAS_MASK_RANGE = (0.0, 1.0)
# The manifest's account of the full-integer precisions (ai-edge-quantizer, calibrated min/max ranges).
QUANTIZATION_METHODS = {
    "w8a8": {"weights": "int8, per output channel, symmetric",
             "activations": "int8 per tensor at the inputs (and outputs) of the encoder's fully-connected layers; "
                            "int16 per tensor, symmetric, everywhere else (TFLite's 16x8 kernels)"},
    "w8a16": {"weights": "int8, per output channel, symmetric",
              "activations": "int16 per tensor, symmetric, everywhere (TFLite's 16x8 kernels)"},
}

FP16_RECIPE = [{
    "regex": ".*", "operation": "*", "algorithm_key": "float_casting",
    "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                  "compute_precision": "FLOAT", "explicit_dequantize": True},
}]

MAX_XNNPACK_PASSES = 4  # quantize, move what XNNPACK still leaves to LiteRT to float, until nothing new

def decoder_signatures(config: ConvertConfig) -> list[str]:
    return [token_signature(t) for t in token_counts(config)] + [BATCH_SIGNATURE]


# Float exports by (checkpoint, shapes, graph): converting several precisions in one process exports once.
_float_exports: dict[tuple, bytes] = {}


def _export(converter, path: Path) -> bytes:
    converter.export(str(path))
    return path.read_bytes()


def export_float(model: TinySam, config: ConvertConfig, checkpoint_sha256: str, progress) -> tuple[bytes, bytes]:
    """(encoder, decoder) float32 flatbuffers at fixed shapes (litert-torch cannot do dynamic ones). The
    integer precisions' decoder takes the points' Fourier features (FeaturePromptDecoder), writes its
    LayerNorms in rsqrt form and drops what the int16 softmax kernel floors in the attentions over the image
    (FlooredSoftmaxAttention); the others take the coordinates."""
    import litert_torch

    size = model.config.img_size
    features = config.precision in INT8_ENCODER_OPS
    key = (checkpoint_sha256, size, config.max_tokens, config.everything_batch)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        if (*key, ENCODER_FILE) not in _float_exports:
            progress("exporting the encoder (litert-torch)")
            encoder = litert_torch.signature(ENCODER_SIGNATURE,
                                             PixelEncoder(export_copy(model, rsqrt_encoder_norms=True)).eval(),
                                             sample_kwargs={ENCODER_INPUT: torch.rand(1, size, size, 3) * 255})
            _float_exports[(*key, ENCODER_FILE)] = _export(encoder.convert(), Path(tmp) / ENCODER_FILE)
        if (*key, DECODER_FILE, features) not in _float_exports:
            progress("exporting the decoder (litert-torch)")
            exported = export_copy(model, rsqrt_decoder_norms=features, floored_image_softmax=features)
            decoder = (FeaturePromptDecoder if features else PromptDecoder)(exported).eval()
            converter = litert_torch
            for tokens in token_counts(config):
                converter = converter.signature(token_signature(tokens), decoder,
                                                sample_kwargs=decoder_sample_inputs(size, 1, tokens, features))
            converter.signature(BATCH_SIGNATURE, decoder, sample_kwargs=decoder_sample_inputs(
                size, config.everything_batch, EVERYTHING_POINTS, features))
            _float_exports[(*key, DECODER_FILE, features)] = _export(converter.convert(), Path(tmp) / DECODER_FILE)
    return _float_exports[(*key, ENCODER_FILE)], _float_exports[(*key, DECODER_FILE, features)]


def _quantize(float_model: bytes, recipe, calibration: "dict[str, Any] | None" = None) -> bytes:
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(bytearray(float_model), recipe)
    return bytes(q.quantize(calibration, enable_progress_report=False).quantized_model)


def _float_rule(regex: str, operation: str = "*") -> dict[str, Any]:
    """Recipe entry leaving the matching ops (scope regex, op name) unquantized."""
    return {"regex": regex, "operation": operation, "algorithm_key": "no_quantize", "op_config": {}}


# int8 keeps these float ((scope regex, op)). Depthwise convolutions: XNNPACK has no dynamic-range depthwise
# kernel and left each one (13 in the encoder) to LiteRT's hybrid kernel, splitting the graph into 14
# partitions; their float weights are 0.03 MB. The other convolutions, but the neck's: dynamic-range
# activations lose the encoder's convolution stages (patch embedding, MBConvs and patch merging, at up
# to 256 x 256 positions). A one-off development sweep (demo model, 1024, 3 held-out images x 24 clicks,
# the FP32 decoder behind each encoder variant, mask IoU against the FP32 encoder) kept 0.872 with every
# convolution int8, 0.987 with all float, 0.987 with all but the neck's 3 x 3 (2.4 MB of its 2.9 MB),
# 0.978 with only the first stage float; the transformer stages or the neck float changed nothing (0.872).
NECK_SCOPE = "Sequential_neck"  # litert-torch's scope name of the encoder neck
INT8_FLOAT_OPS = ((".*", "DEPTHWISE_CONV_2D"), (f"^(?!.*{NECK_SCOPE}).*", "CONV_2D"))
# int8-xnnpack quantizes only these ((scope regex, op)) statically; every other op stays float. XNNPACK
# (ai-edge-litert 2.3) has no int8 GELU, SOFTMAX, RSQRT or BATCH_MATMUL of two activations (test_tflite.py
# checks each on a one-op model), and static int8 activations elsewhere lose the masks: a one-off
# development sweep (demo model, 1024, 3 held-out images x 8 prompts, the FP32 decoder behind each encoder
# variant, mask IoU against the FP32 pipeline) gave 0.826 with every op int8 that XNNPACK takes; float
# convolutions 0.872, float ADDs 0.832, both 0.916, with the PADs too 0.960 (the residual stream and the
# convolution stages on one per-tensor int8 grid); only the fully-connected layers int8 0.983, and with the
# neck's convolution 0.979 (2 MB smaller). Back to int8 beside the fully-connected layers, one group at a
# time: convolutions 0.844, ADD 0.891, PAD 0.914, MUL 0.965, MEAN / SUB / RSQRT 0.975, reshapes 0.973.
XNNPACK_INT8_OPS = ((".*", "FULLY_CONNECTED"), (f".*{NECK_SCOPE}.*", "CONV_2D"))


def int8_recipe() -> list:
    """Dynamic range (int8 weights; XNNPACK quantizes activations per row at run time), except the
    convolutions in INT8_FLOAT_OPS, which stay float."""
    from ai_edge_quantizer import recipe

    return recipe.dynamic_wi8_afp32() + [_float_rule(regex, op) for regex, op in INT8_FLOAT_OPS]


def full_integer_recipe(int8_ops: frozenset = frozenset()) -> list:
    """static_wi8_ai16 (TFLite's 16x8 kernels: int16 activations, int8 weights), with int8 activations at
    every op named in int8_ops (ai-edge-quantizer requantizes between the two widths). int16
    holds the decoder's softmax over the 4,096 image positions, whose int8 output (step 1/256) rounds every
    weight of a spread-out row to 0."""
    from ai_edge_quantizer import recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.add_static_config(".*", "*", activation_num_bits=16, weight_num_bits=8)
    for op_name in sorted(int8_ops):
        manager.add_static_config(".*", op_name, activation_num_bits=8, weight_num_bits=8)
    return manager.get_quantization_recipe()


def quantize_full_integer(float_model: bytes, calibration: dict[str, Any], int8_ops: frozenset = frozenset()) -> bytes:
    return _quantize(float_model, full_integer_recipe(int8_ops), calibration)


def quantize_for_xnnpack(float_model: bytes, calibration: dict[str, Any]) -> bytes:
    """static_wi8_ai8 for the ops in XNNPACK_INT8_OPS, every other op float; then any of those XNNPACK does
    not take in int8 also float, found by asking XNNPACK (accelerators.ops_outside_xnnpack) until nothing
    new is left outside. XNNPACK runs the QUANTIZE / DEQUANTIZE around the float ops, so the model has as
    many partitions as the float model (the encoder: one). Only the first subgraph (signature) is
    analysed."""
    import re

    from ai_edge_quantizer import recipe

    static = recipe.static_wi8_ai8()[0]
    base = [_float_rule(".*")] + [{**static, "regex": regex, "operation": op} for regex, op in XNNPACK_INT8_OPS]
    keep_float: set[str] = set()
    for _ in range(MAX_XNNPACK_PASSES):
        rules = [_float_rule(f"^{re.escape(scope)}$") for scope in sorted(keep_float)]
        quantized = _quantize(float_model, base + rules, calibration)
        # ai-edge-quantizer's op scope: the op's output tensor names, each followed by ';'
        outside = {"".join(f"{name};" for name in op["outputs"]) for op in accelerators.ops_outside_xnnpack(quantized)}
        if outside <= keep_float:  # what is left outside is float: XNNPACK leaves it out of the float model too
            return quantized
        keep_float |= outside
    raise TinySamError(f"int8-xnnpack: XNNPACK still leaves {len(outside - keep_float)} int8 ops to LiteRT after "
                       f"{MAX_XNNPACK_PASSES} passes")


def calibrate(float_model: bytes, samples: dict[str, list], ranges: "dict[str, tuple[float, float]] | None" = None):
    """Activation min/max over the samples (LiteRT's profiler-based calibration: no intermediate
    tensors are kept, so the 64-prompt decoder fits in memory), then `ranges` overrides.

    Min and max over all samples (qsv_utils.min_max_update), not ai-edge-quantizer's default moving
    average (weight 0.05 per new sample), which shrank every range a sample only sometimes reaches: the
    decoder's 0/1 tensors (a label's one-hot, 1 - has_mask_input) were held in [0, 0.67] and [0, 0.49], so
    a positive point counted 0.67 and the no-mask embedding half.
    """
    from ai_edge_quantizer import calibrator, recipe, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    from .litert_calibration import override_ranges

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe.static_wi8_ai8())
    calib = calibrator.Calibrator(bytes(float_model), num_threads=torch.get_num_threads(),
                                  mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED,
                                  qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate(samples, manager)
    return override_ranges(_keepdims(float_model, calib.get_model_qsvs()), ranges or {})


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


def _calibrate_encoder(encoder: bytes, images: list, size: int,
                       ranges: "dict[str, tuple[float, float]] | None" = None) -> tuple[list, Any]:
    """(encoder samples, their calibrated ranges); the pixel input gets its fixed range (PIXEL_RANGE)."""
    from .litert_calibration import encoder_samples

    samples = encoder_samples(images, size)
    input_name = _signature_details(encoder, ENCODER_SIGNATURE)["inputs"][ENCODER_INPUT]["tensor"]
    pixels = {input_name: PIXEL_RANGE}
    return samples, calibrate(encoder, {ENCODER_SIGNATURE: samples}, {**pixels, **(ranges or {})})


def quantize_integer(encoder: bytes, decoder: bytes, model: TinySam, config: ConvertConfig, progress,
                     scales: "ScalesFile | None" = None) -> tuple[bytes, bytes, "ScalesReport | None"]:
    """Full-integer models (w8a8: int8 at the encoder's fully-connected inputs, or w8a16); with TinySAM PTQ
    scales (w8a8), their weight grids replace the calibrated ones wherever the graph holds the op, and their
    ranges those of the int8 activations (checked on the quantized graphs), with a report."""
    int8_ops = INT8_ENCODER_OPS[config.precision]
    from .litert_calibration import calibration_images, decoder_samples

    size = model.config.img_size
    plans, report = (litert_scales.GraphPlan(), litert_scales.GraphPlan()), None
    if scales is not None:
        progress("placing the PTQ scales in the LiteRT graphs")
        report = ScalesReport("LiteRT")
        plans = (litert_scales.plan_graph(encoder, PixelEncoder(model), scales, size, report, int8_ops),
                 litert_scales.plan_graph(decoder, FeaturePromptDecoder(model), scales, size, report, frozenset()))
        report.check_complete(scales)
    progress("calibrating the encoder")
    images = calibration_images(config, size)
    enc_samples, enc_ranges = _calibrate_encoder(encoder, images, size, plans[0].activation_ranges)
    encoder_q = quantize_full_integer(encoder, plans[0].apply(enc_ranges), int8_ops)
    progress("calibrating the decoder")
    encode = _float_runner(encoder, ENCODER_SIGNATURE)
    embeddings = [next(iter(encode(**s).values())) for s in enc_samples]
    decoders = {signature: _float_runner(decoder, signature) for signature in decoder_signatures(config)}
    gaussian = gaussian_matrix(model)

    def with_features(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = point_features(sample["point_coords"], gaussian, size)
        return {**{k: v for k, v in sample.items() if k != "point_coords"}, POINT_FEATURES: features}

    samples = decoder_samples(images, embeddings, config, size,
                              lambda signature, s: decoders[signature](**with_features(s))[DECODER_OUTPUTS[0]])
    samples = {signature: [with_features(s) for s in listed] for signature, listed in samples.items()}
    ranges = input_ranges(decoder, samples)
    for signature in decoder_signatures(config):
        inputs = _signature_details(decoder, signature)["inputs"]
        ranges.update({inputs["point_labels"]["tensor"]: LABEL_RANGE,
                       inputs["has_mask_input"]["tensor"]: HAS_MASK_RANGE})
    ranges.update(plans[1].activation_ranges)
    with litert_scales.quiet_shared_buffer_rewrites():
        decoder_q = quantize_full_integer(decoder, plans[1].apply(calibrate(decoder, samples, ranges)))
    for quantized, plan in zip((encoder_q, decoder_q), plans):
        litert_scales.verify(quantized, plan)
    return encoder_q, decoder_q, report


def quantize_int8_xnnpack(encoder: bytes, decoder: bytes, model: TinySam, config: ConvertConfig,
                          progress) -> tuple[bytes, bytes]:
    """Static int8 for XNNPACK: the encoder as quantize_for_xnnpack makes it (calibrated like w8a8), the
    decoder as int8. A statically quantized decoder was no faster on XNNPACK (49 vs 50 ms per prompt)
    and far less faithful (mean mask IoU 0.41 vs 0.93 behind this encoder, seeded weights): a one-off
    development measurement, no command here builds that variant."""
    from .litert_calibration import calibration_images

    progress("calibrating the encoder")
    _, ranges = _calibrate_encoder(encoder, calibration_images(config, model.config.img_size), model.config.img_size)
    encoder = quantize_for_xnnpack(encoder, ranges)
    progress("quantizing the decoder weights to int8")
    return encoder, _quantize(decoder, int8_recipe())


def gaussian_matrix(model: TinySam) -> np.ndarray:
    """(2, 128) projection of the prompt encoder's Fourier features (the integer decoders' app-side part)."""
    return model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.detach().float().numpy()


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

    scales, report = None, None
    if config.scales is not None:
        from ..calibration.scales import read_scales

        if config.precision != "w8a8":
            raise TinySamError(f"--scales applies to the w8a8 precision of tflite, not {config.precision}")
        scales = read_scales(config.scales, checkpoint_sha256)
        check_entries(model, scales, "LiteRT w8a8")
    with Progress(transient=True) as bar:
        task = bar.add_task("converting", total=None)
        progress = lambda text: bar.update(task, description=text)  # noqa: E731
        encoder, decoder = export_float(model, config, checkpoint_sha256, progress)
        if config.precision == "fp16":
            progress("casting weights to float16")
            encoder, decoder = _quantize(encoder, FP16_RECIPE), _quantize(decoder, FP16_RECIPE)
        elif config.precision == "int8":
            progress("quantizing weights to int8")
            encoder, decoder = (_quantize(m, int8_recipe()) for m in (encoder, decoder))
        elif config.precision in INT8_ENCODER_OPS:
            encoder, decoder, report = quantize_integer(encoder, decoder, model, config, progress, scales)
        elif config.precision == "int8-xnnpack":
            encoder, decoder = quantize_int8_xnnpack(encoder, decoder, model, config, progress)
        (work_dir / ENCODER_FILE).write_bytes(encoder)
        (work_dir / DECODER_FILE).write_bytes(decoder)
        if config.precision in INT8_ENCODER_OPS:
            progress("checking that every op is integer")
            for name in (ENCODER_FILE, DECODER_FILE):
                accelerators.check_integer_only(work_dir / name)
        progress("GPU-delegate compatibility analysis")
        reports = {name: accelerators.gpu_compatibility_report(work_dir / name) for name in (ENCODER_FILE, DECODER_FILE)}
    (work_dir / GPU_REPORT_FILE).write_text("".join(f"==== {name}\n{text}\n" for name, text in reports.items()))
    gpu_ok = {name: "looks compatible with GPU delegate" in text for name, text in reports.items()}
    artifacts = [
        artifact_record(work_dir, ENCODER_FILE, "encoder", signatures={ENCODER_SIGNATURE: _signature_details(encoder, ENCODER_SIGNATURE)},
                        gpu_delegate_compatible=gpu_ok[ENCODER_FILE],
                        **({"float_ops": accelerators.float_ops(work_dir / ENCODER_FILE)}
                           if config.precision == "int8-xnnpack" else {})),
        artifact_record(work_dir, DECODER_FILE, "decoder",
                        signatures={s: _signature_details(decoder, s) for s in decoder_signatures(config)},
                        gpu_delegate_compatible=gpu_ok[DECODER_FILE],
                        float_ops=accelerators.float_ops(work_dir / DECODER_FILE)),
        artifact_record(work_dir, GPU_REPORT_FILE, "gpu_compatibility_report"),
    ]
    return write_manifest(
        work_dir, target="tflite", precision=config.precision, checkpoint_sha256=checkpoint_sha256,
        img_size=model.config.img_size, artifacts=artifacts,
        encoder_input={"name": ENCODER_INPUT, "layout": "NHWC (1, S, S, 3)", "values": "RGB pixels 0-255 (float, or "
                       "int16 with the listed scale / zero point for w8a8 and w8a16); pad "
                       "bottom/right with pixel_mean; normalisation happens inside the model"},
        decoder={"signatures": {**{token_signature(t): f"1 prompt of exactly {t} tokens" for t in token_counts(config)},
                                BATCH_SIGNATURE: f"{config.everything_batch} prompts x {EVERYTHING_POINTS} tokens "
                                "(point + padding point), one shared image embedding"},
                 "outputs": list(DECODER_OUTPUTS),
                 **({POINT_FEATURES: {"replaces": "point_coords", "gaussian_matrix": gaussian_matrix(model).tolist(),
                                      "formula": POINT_FEATURES_FORMULA}}
                    if config.precision in INT8_ENCODER_OPS else {})},
        prompt_tokens=prompt_tokens(token_counts(config)), everything_batch=config.everything_batch,
        **({"quantization": QUANTIZATION_METHODS[config.precision]} if config.precision in INT8_ENCODER_OPS else {}),
        **({"ptq_scales": manifest_record(Path(config.scales), scales, report)} if report is not None else {}),
    )
