"""CoreML target: package contract, exact int8 weights, palettes, w8a8 ops, inspect, runner, bad input.

Expected values come from the torch model with plain torch ops (BatchNorm folding, max-abs scales,
round-half-even) and from coremltools' own readers, never from the converter's helpers.
"""

import json
import platform
import re

import numpy as np
import pytest
import torch

from tinysam_mobile.checkpoint import SEEDED_WEIGHTS_SEED, seeded_model
from tinysam_mobile.converters.manifest import load_manifest
from tinysam_mobile.errors import PromptError
from tinysam_mobile.modeling import TinySamConfig
from tinysam_mobile.utils.transforms import PIXEL_MEAN, PIXEL_STD

from conftest import COREML_TEST_BATCH
from test_cli import assert_one_line_error

ct = pytest.importorskip("coremltools")
IOS17_SPEC, IOS18_SPEC = 8, 9


def run_cli(*args):
    """The CLI in-process (as `tinysam-mobile ARGS`): (returncode, stdout, stderr) like a subprocess."""
    import subprocess
    import sys
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    from tinysam_mobile.cli import main

    out, err, code = StringIO(), StringIO(), 0
    argv, sys.argv = sys.argv, ["tinysam-mobile", *map(str, args)]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def program_of(path):
    from tinysam_mobile.converters.coreml_package import load_program

    return load_program(ct.models.MLModel(str(path), skip_model_load=True))


def program_ops(program, op_types=None):
    from tinysam_mobile.converters.coreml_package import program_ops as ops

    return ops(program, op_types)


def ops_of(program, op_type):
    return program_ops(program, (op_type,))


@pytest.fixture(scope="module")
def full_model():
    return seeded_model(TinySamConfig()).eval()


# ---------------------------------------------------------------- package contract (fp16)

EXPECTED_IO = {
    "encoder.mlpackage": ({"image": [1, 3, 1024, 1024]}, {"image_embeddings": [1, 256, 64, 64]}),
    "decoder.mlpackage": ({"image_embeddings": [1, 256, 64, 64], "point_coords": [1, 10, 2], "point_labels": [1, 10],
                           "mask_input": [1, 1, 256, 256], "has_mask_input": [1]},
                          {"low_res_masks": [1, 3, 256, 256], "iou_predictions": [1, 3]}),
    "decoder_batch.mlpackage": (
        {"image_embeddings": [1, 256, 64, 64], "point_coords": [COREML_TEST_BATCH, 2, 2],
         "point_labels": [COREML_TEST_BATCH, 2]},
        {"low_res_masks": [COREML_TEST_BATCH, 3, 256, 256], "iou_predictions": [COREML_TEST_BATCH, 3]}),
}


def shape_of(feature):
    if feature.type.WhichOneof("Type") == "imageType":
        return [1, 3, feature.type.imageType.height, feature.type.imageType.width]
    return list(feature.type.multiArrayType.shape)


@pytest.mark.slow
@pytest.mark.parametrize("file", list(EXPECTED_IO))
def test_fp16_package_contract(coreml_fp16_dir, file):
    spec = ct.models.MLModel(str(coreml_fp16_dir / file), skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    # the interactive decoder's two enumerated-shape inputs need iOS 18
    assert spec.specificationVersion == (IOS18_SPEC if file == "decoder.mlpackage" else IOS17_SPEC)
    inputs, outputs = EXPECTED_IO[file]
    flexible = {f.name: sorted(list(shape.shape) for shape in f.type.multiArrayType.enumeratedShapes.shapes)
                for f in spec.description.input if f.type.WhichOneof("Type") == "multiArrayType"
                and f.type.multiArrayType.WhichOneof("ShapeFlexibility") == "enumeratedShapes"}
    if file == "decoder.mlpackage":  # every prompt-token count, exactly: 1 (an empty point list) to 10
        assert flexible == {"point_coords": [[1, t, 2] for t in range(1, 11)],
                            "point_labels": [[1, t] for t in range(1, 11)]}
    else:
        assert flexible == {}
    assert {f.name: shape_of(f) for f in spec.description.input} == inputs
    assert {f.name: shape_of(f) for f in spec.description.output} == outputs
    for feature in list(spec.description.input) + list(spec.description.output):
        assert len(feature.shortDescription) > 20, feature.name
        if feature.name == "image":
            assert feature.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
        else:  # float32 I/O: the app hands over Float32 MLMultiArrays
            assert feature.type.multiArrayType.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    meta = spec.description.metadata
    assert meta.author and meta.license == "Apache-2.0" and meta.versionString and meta.shortDescription
    user = meta.userDefined
    assert np.allclose([float(v) for v in user["tinysam.pixel_mean"].split(",")], PIXEL_MEAN)
    assert np.allclose([float(v) for v in user["tinysam.pixel_std"].split(",")], PIXEL_STD)
    assert user["tinysam.precision"] == "fp16" and user["tinysam.input_size"] == "1024"
    assert user["tinysam.checkpoint_sha256"] == f"seeded-{SEEDED_WEIGHTS_SEED}"
    # fp16 weights, nothing compressed, nothing dynamic
    program = program_of(coreml_fp16_dir / file)
    layer_weights = [op.weight.val for t in ("conv", "linear", "conv_transpose") for op in ops_of(program, t)]
    assert layer_weights and all(w.dtype == np.float16 for w in layer_weights)
    assert not [op for op in program_ops(program) if op.op_type.startswith("constexpr")]


@pytest.mark.slow
def test_manifest_describes_packages(coreml_fp16_dir):
    manifest = load_manifest(coreml_fp16_dir)  # verifies every package's SHA-256 and size
    assert manifest["target"] == "coreml" and manifest["precision"] == "fp16"
    assert {a["role"]: a["file"] for a in manifest["artifacts"]} == {
        "encoder": "encoder.mlpackage", "decoder": "decoder.mlpackage", "decoder_batch": "decoder_batch.mlpackage"}
    assert manifest["prompt_tokens"] == {"min": 1, "max": 10} and manifest["everything_batch"] == COREML_TEST_BATCH
    image_input = manifest["coreml"]["image_input"]
    # the pad colour normalises to (nearly) SAM's zero padding
    assert np.all(np.abs((np.array(image_input["pad_color_rgb"]) - PIXEL_MEAN) / PIXEL_STD) < 0.01)
    decoder = next(a for a in manifest["artifacts"] if a["role"] == "decoder")
    assert [t["name"] for t in decoder["inputs"]] == list(EXPECTED_IO["decoder.mlpackage"][0])


# ---------------------------------------------------------------- int8: exact weights

def folded_layers(model):
    """{torch layer name: (float weight as exported, BN factor per output channel or None, channel axis)},
    computed with torch ops independently of the converter."""
    layers = {}
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.ConvTranspose2d)):
            parent = modules[name.rsplit(".", 1)[0]] if "." in name else None
            bn = getattr(parent, "bn", None) if name.endswith(".c") else None
            factor = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn is not None else None
            axis = 1 if isinstance(module, torch.nn.ConvTranspose2d) else 0
            layers[name] = (module.weight.detach(), factor, axis)
    return layers


def expected_codes(weight, scale, factor, axis):
    shape = [1] * weight.ndim
    shape[axis] = -1
    codes = torch.clamp(torch.round(weight / scale.reshape(shape)), -128, 127)
    if factor is not None:
        codes = codes * torch.sign(factor).reshape(shape)
        scale = scale * factor.abs()
    return codes, scale


def torch_layer_name(weight_name, layers):
    key = re.match(r"p_(?:model_)?(.+?_weight)", weight_name).group(1)
    names = [n for n in layers if n.replace(".", "_") + "_weight" == key]
    assert len(names) == 1, weight_name
    return names[0]


# The int8 weight op of each deployment target: iOS17's affine dequantize (encoder, batched decoder), iOS18's
# blockwise shift-scale (the interactive decoder, iOS18 for its enumerated token shapes).
INT8_WEIGHT_OPS = ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale")


def int8_weight(op):
    """(stored codes, scale per output channel, its axis) of either INT8_WEIGHT_OPS, checking no offset."""
    if op.op_type == "constexpr_affine_dequantize":
        assert not np.any(op.zero_point.val)
        return op.quantized_data.val, op.scale.val.astype(np.float32).ravel(), int(op.axis.val)
    assert op.inputs.get("offset") is None or not np.any(op.offset.val)
    scale = op.scale.val.astype(np.float32)
    axis = int(np.argmax(scale.shape)) if max(scale.shape) > 1 else 0
    return op.data.val, scale.ravel(), axis


@pytest.mark.slow
@pytest.mark.parametrize("file, op_type", [("encoder.mlpackage", INT8_WEIGHT_OPS[0]),
                                           ("decoder.mlpackage", INT8_WEIGHT_OPS[1])])
def test_int8_package_holds_exactly_the_max_abs_grid(coreml_int8_dir, full_model, file, op_type):
    layers = folded_layers(full_model)
    program = program_of(coreml_int8_dir / file)
    assert not ops_of(program, next(t for t in INT8_WEIGHT_OPS if t != op_type))
    dequantize_ops = [op for op in ops_of(program, op_type)
                      if op.outputs[0].name.startswith("p_")]  # layer weights; the rest are folded constants
    def max_abs_codes(name):
        weight, factor, axis = layers[name]
        max_abs = weight.abs().amax(dim=[d for d in range(weight.ndim) if d != axis])
        return expected_codes(weight, torch.where(max_abs > 0, max_abs / 127, 1.0), factor, axis)

    used = {torch_layer_name(op.outputs[0].name, layers): op for op in dequantize_ops}
    prefix = ("image_encoder.",) if file == "encoder.mlpackage" else ("mask_decoder.", "prompt_encoder.")
    expected_layers = {n for n in layers if n.startswith(prefix) and n != "image_encoder.head"}
    assert set(used) <= expected_layers
    for name in expected_layers - set(used):  # coremltools shares identical constants (seeded zero-BN convs)
        assert any(torch.equal(max_abs_codes(name)[0], max_abs_codes(other)[0]) for other in used), name
    for name, op in used.items():
        _, _, axis = layers[name]
        codes, scale = max_abs_codes(name)
        stored, stored_scale, stored_axis = int8_weight(op)
        assert stored.dtype in (np.int8, np.uint8)
        np.testing.assert_array_equal(stored.astype(np.int32), codes.numpy().astype(np.int32))
        assert stored_axis == axis or stored_scale.size == 1
        live = codes.abs().amax(dim=[d for d in range(codes.ndim) if d != axis]) > 0
        np.testing.assert_allclose(stored_scale[live.numpy()], scale[live].numpy(), rtol=1e-3)


@pytest.mark.slow
def test_int8_decompresses_through_coremltools(coreml_int8_dir, coreml_fp16_dir, full_model):
    import coremltools.optimize.coreml as cto

    int8 = ct.models.MLModel(str(coreml_int8_dir / "decoder.mlpackage"), skip_model_load=True)
    decompressed = program_of_model(cto.decompress_weights(int8))
    layers = folded_layers(full_model)
    checked = 0
    for op in [op for op in ops_of(decompressed, "linear") if op.weight.op.name.startswith("p_")]:
        name = torch_layer_name(op.weight.op.name, layers)
        weight = layers[name][0]
        scale = weight.abs().amax(dim=1) / 127
        expected = (torch.clamp(torch.round(weight / scale[:, None]), -128, 127) * scale[:, None]).numpy()
        np.testing.assert_allclose(op.weight.val.astype(np.float32), expected, rtol=2e-3, atol=1e-7)
        checked += 1
    fp16_linears = ops_of(program_of(coreml_fp16_dir / "decoder.mlpackage"), "linear")
    assert checked == len([op for op in fp16_linears if op.weight.op.name.startswith("p_")]) > 40


def program_of_model(mlmodel):
    from tinysam_mobile.converters.coreml_package import load_program

    return load_program(mlmodel)


@pytest.mark.slow
def test_int8_is_half_the_fp16_size(coreml_int8_dir, coreml_fp16_dir):
    from tinysam_mobile.converters.manifest import path_size

    # fp16 is half of fp32 by construction; int8 <= 27% of fp32 means <= 54% of fp16
    ratio = path_size(coreml_int8_dir / "encoder.mlpackage") / path_size(coreml_fp16_dir / "encoder.mlpackage")
    assert ratio <= 0.54, ratio


# ---------------------------------------------------------------- torch wrappers

def test_wrappers_match_the_model(small_model):
    from tinysam_mobile.converters.coreml import Decoder, EverythingDecoder, PixelEncoder
    from tinysam_mobile.converters.export_modules import DensePositionalEncoding

    pixels = torch.rand(1, 3, 256, 256) * 255
    normalised = (pixels - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        torch.testing.assert_close(PixelEncoder(small_model)(pixels), small_model.encode(normalised),
                                   rtol=1e-4, atol=1e-4)
        embedding = torch.randn(1, 256, 16, 16)
        torch.testing.assert_close(DensePositionalEncoding(small_model.prompt_encoder)(embedding),
                                   small_model.prompt_encoder.dense_pe(), rtol=0, atol=1e-5)
        coords = torch.rand(5, 2, 2) * 256
        labels = torch.tensor([[1.0, -1.0]]).repeat(5, 1)
        mask_input, has_mask = torch.randn(5, 1, 64, 64), torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0])
        checks = [(EverythingDecoder(small_model)(embedding, coords, labels),
                   small_model.decode(embedding, coords, labels, torch.zeros(5, 1, 64, 64), torch.zeros(5))),
                  (Decoder(small_model)(embedding, coords, labels, mask_input, has_mask),
                   small_model.decode(embedding, coords, labels, mask_input, has_mask))]
    for got, want in checks:
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def layer_weight_ops(program):
    """Names of the const / constexpr ops that make up a conv, linear or deconv weight."""
    names = set()
    for op in program_ops(program, ("conv", "linear", "conv_transpose")):
        names.add(op.weight.op.name)
        names.update(v.op.name for v in op.weight.op.inputs.values() if v.op is not None)  # constexpr codes, LUTs
    return names


PE_TABLE_ELEMENTS = 128 * 64  # sin or cos of one axis: half the channels x the 64 cells


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["coreml_fp16_dir", "coreml_int8_dir"])
@pytest.mark.parametrize("file", ["decoder.mlpackage", "decoder_batch.mlpackage"])
def test_decoders_compute_the_positional_encoding_in_graph(request, fixture, file):
    """Issue 6: no (1, 256, 64, 64) positional encoding (1M values) stored in the decoders; only per-axis
    sin/cos tables, float16 also in int8 packages, besides the layer weights."""
    program = program_of(request.getfixturevalue(fixture) / file)
    layer = layer_weight_ops(program)
    # Known and left: MaskDecoder expands its 5 output tokens to the batch, which coremltools folds
    # into a (B, 5, 256) constant of the batched decoder (160 KB in fp16 at the shipped B = 64).
    tokens = (COREML_TEST_BATCH, 5, 256)
    others = {op.name: op.outputs[0] for op in program_ops(program)
              if (op.op_type == "const" or op.op_type.startswith("constexpr")) and op.name not in layer
              and tuple(op.outputs[0].shape) != tokens}
    sizes = {name: int(np.prod(var.shape)) for name, var in others.items()}
    assert max(sizes.values()) == PE_TABLE_ELEMENTS, sorted(sizes.items(), key=lambda item: -item[1])[:5]
    tables = {name: var for name, var in others.items() if sizes[name] == PE_TABLE_ELEMENTS}
    assert sorted(tuple(var.shape) for var in tables.values()) == [(1, 64, 128)] * 2 + [(64, 1, 128)] * 2
    assert {ct.converters.mil.mil.types.builtin_to_string(var.dtype) for var in tables.values()} == {"fp16"}


# ---------------------------------------------------------------- scales file, w8a8, palettes (small, decoder only)

def write_scales(path, model, checkpoint_sha256):
    """A scales file with hand-picked weight scales and activation ranges for every decoder layer."""
    from tinysam_mobile.calibration.scales import OpScales, Quantizer, ScalesFile, save_scales

    ops = {}
    modules = [(name, module) for name, module in model.mask_decoder.named_modules()]
    for i, (name, module) in enumerate(modules):
        weight = module.weight.detach() if hasattr(module, "weight") else None
        if isinstance(module, torch.nn.Linear):  # layer-wise, deliberately tight so some weights clip
            scale = torch.full((1, 1), 0.6 * float(weight.abs().max()) / 128)
            kind = "linear"
        elif isinstance(module, torch.nn.ConvTranspose2d):
            scale = (weight.abs().amax(dim=(0, 2, 3)) / 127).reshape(1, -1, 1, 1)
            kind = "deconv"
        else:
            continue
        ops[f"mask_decoder.{name}"] = OpScales(kind, {
            "weight": Quantizer("uniform", 8, scale),
            "input": Quantizer("uniform", 8, torch.tensor([0.01 * (1 + i % 5)]))})
    save_scales(ScalesFile(checkpoint_sha256, "minmax", ops, 0), path)
    return ops


@pytest.fixture(scope="module")
def w8a8_decoder(tmp_path_factory, small_model):
    """The interactive decoder of the 256 model converted as w8a8 from a hand-made scales file, as shipped
    (enumerated token shapes, iOS 18)."""
    from tinysam_mobile.converters import coreml, coreml_compression
    from tinysam_mobile.converters.config import ConvertConfig, token_counts

    path = tmp_path_factory.mktemp("scales") / "scales.safetensors"
    ops = write_scales(path, small_model, "test-sha")
    config = ConvertConfig(target="coreml", precision="w8a8", max_tokens=4, scales=path)
    plan = coreml_compression.plan_for(small_model, config, "test-sha")
    samples = coreml.example_inputs(small_model, config)["decoder"]
    mlmodel = coreml.convert_part(ct, coreml.Decoder(plan.model), samples,
                                  ["low_res_masks", "iou_predictions"], "w8a8", "fp16", token_counts(config))
    mlmodel, report = coreml_compression.compress(plan, mlmodel, "decoder")
    return program_of_model(mlmodel), ops, report


def test_scales_file_weights_are_carried_exactly(w8a8_decoder, small_model):
    program, ops, _ = w8a8_decoder
    layers = folded_layers(small_model)
    by_layer = {torch_layer_name(op.outputs[0].name, layers): op for op in program_ops(program, INT8_WEIGHT_OPS)
                if op.outputs[0].name.startswith("p_")}
    assert set(ops) <= set(by_layer)
    clipped = 0
    for name, op_scales in ops.items():
        weight, factor, axis = layers[name]
        scale = op_scales.quantizers["weight"].scale.flatten().expand(weight.shape[axis])
        codes, _ = expected_codes(weight, scale, factor, axis)
        np.testing.assert_array_equal(int8_weight(by_layer[name])[0].astype(np.int32), codes.numpy())
        clipped += int((codes == -128).sum() + (codes == 127).sum())
    assert clipped > 0  # the tight layer-wise scales do clip: the -128..127 grid is exercised


def test_w8a8_quantizes_activations_with_the_file_ranges(w8a8_decoder):
    program, ops, _ = w8a8_decoder
    linears = [op for op in ops_of(program, "linear") if op.weight.op.op_type in INT8_WEIGHT_OPS]
    assert linears
    fed_by_dequantize = [op for op in linears if op.x.op is not None and op.x.op.op_type == "dequantize"]
    assert len(fed_by_dequantize) == len(linears)
    # the file's range is [-128 s, 127 s] with s in {0.01 .. 0.05}: symmetric int8 scale 128 s / 127
    expected = np.array([0.01 * k * 128 / 127 for k in range(1, 6)])
    for op in fed_by_dequantize:
        scale = float(op.x.op.scale.val)
        assert np.min(np.abs(expected - scale) / expected) < 1e-3, scale
    quantize_ops = ops_of(program, "quantize")
    assert quantize_ops and all(op.output_dtype.val == "int8" for op in quantize_ops)


def test_w8a8_leaves_the_encoder_convolution_inputs_float(tmp_path, small_model):
    """w8a8's int8 inputs skip the encoder's convolution stage, patch merging and local convolutions (one
    per-tensor range cannot hold their outliers) and cover every other conv / linear, the neck's too."""
    from tinysam_mobile.calibration.capture import quantizable_ops
    from tinysam_mobile.calibration.scales import OpScales, Quantizer, ScalesFile, save_scales
    from tinysam_mobile.converters import coreml_compression
    from tinysam_mobile.converters.config import ConvertConfig

    shapes = {"conv": lambda w: (-1, 1, 1, 1), "deconv": lambda w: (1, -1, 1, 1), "linear": lambda w: (1, 1)}
    ops = {}
    for name, (kind, module) in quantizable_ops(small_model).items():
        if kind != "matmul":
            weight = module.weight.detach()
            axis = {"conv": 0, "deconv": 1}.get(kind)
            amax = weight.abs().amax() if axis is None else weight.abs().amax(
                dim=[d for d in range(weight.dim()) if d != axis])
            ops[name] = OpScales(kind, {"weight": Quantizer("uniform", 8, (amax / 127).reshape(shapes[kind](weight))),
                                        "input": Quantizer("uniform", 8, torch.tensor([0.02]))})
    path = tmp_path / "scales.safetensors"
    save_scales(ScalesFile("test-sha", "minmax", ops, 0), path)
    plan = coreml_compression.plan_for(small_model, ConvertConfig("coreml", "w8a8", scales=path), "test-sha")
    convolution_stages = ("image_encoder.patch_embed.", "image_encoder.layers.0.")
    float_inputs = {name for name in ops if name.startswith(convolution_stages)
                    or ".downsample." in name or ".local_conv." in name}
    assert float_inputs and "image_encoder.neck.0" not in float_inputs
    assert set(plan.activation_ranges) == set(ops) - float_inputs


def test_scales_for_another_checkpoint_are_refused(tmp_path, small_model):
    from tinysam_mobile.converters import coreml_compression
    from tinysam_mobile.converters.config import ConvertConfig
    from tinysam_mobile.errors import TinySamError

    path = tmp_path / "scales.safetensors"
    write_scales(path, small_model, "other-sha")
    with pytest.raises(TinySamError, match="calibrated for checkpoint"):
        coreml_compression.plan_for(small_model, ConvertConfig("coreml", "int8", scales=path), "test-sha")


class TwoLayers(torch.nn.Module):
    """A linear and a transposed conv: enough for palettes, cheap to k-means."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(128, 96)
        self.up = torch.nn.ConvTranspose2d(96, 64, kernel_size=2, stride=2)

    def forward(self, x):
        return self.up(self.proj(x).permute(0, 3, 1, 2))


@pytest.mark.parametrize("flexible, flagged", [("enumerated", False), ("range", True)])
def test_inspect_flags_ranged_token_axes_not_enumerated_ones(flexible, flagged):
    """Apple: each enumerated shape can run on the Neural Engine, a ranged input only at its default shape."""
    from tinysam_mobile.converters.inspection import neural_engine_risks

    module = torch.nn.Linear(8, 8).eval()
    tokens = torch.export.Dim("tokens", min=1, max=6)
    exported = torch.export.export(module, (torch.randn(1, 6, 8),), dynamic_shapes=({1: tokens},))
    shape = (ct.EnumeratedShapes(shapes=[(1, t, 8) for t in range(1, 7)], default=(1, 6, 8)) if flexible == "enumerated"
             else ct.Shape((1, ct.RangeDim(1, 6, default=6), 8)))
    mlmodel = ct.convert(exported.run_decompositions({}), inputs=[ct.TensorType(name="x", shape=shape)],
                         convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17)
    risks = neural_engine_risks(mlmodel.get_spec())
    assert any("ranged shape" in risk for risk in risks) == flagged, risks
    assert any("dynamic shapes" in risk for risk in risks) == flagged, risks


def test_palettized_layers_report_reconstruction_error():
    from tinysam_mobile.converters import coreml, coreml_compression

    torch.manual_seed(0)
    module = TwoLayers().eval()
    mlmodel = coreml.convert_part(ct, module, {"x": torch.randn(1, 4, 4, 128)}, ["y"], "palettize4", "fp16")
    plan = coreml_compression.CompressionPlan(module, {}, palette_bits=4)
    palettized, report = coreml_compression.compress(plan, mlmodel, "decoder")
    assert palettized.get_spec().specificationVersion == IOS18_SPEC
    program = program_of_model(palettized)
    luts = ops_of(program, "constexpr_lut_to_dense")
    assert len(luts) == 2 and all(op.lut.val.shape[-2] == 16 for op in luts)  # 4-bit: 16 entries per LUT
    assert {op.lut.val.shape[:2] for op in luts} == {(96 // 16, 1), (1, 64 // 16)}  # 16 output channels per LUT
    consumers = {op.name: op for t in ("linear", "conv_transpose") for op in ops_of(program, t)}
    weights = {"linear": module.proj.weight.detach().numpy(), "conv_transpose": module.up.weight.detach().numpy()}
    assert len(report) == 2
    for record in report:  # recompute each error from the LUT and the torch weight
        lut_op = consumers[record["op"]].weight.op
        assert lut_op.op_type == "constexpr_lut_to_dense" and record["bits"] == 4
        weight = weights[consumers[record["op"]].op_type]
        error = np.linalg.norm(weight - decompress_lut(lut_op)) / np.linalg.norm(weight)
        assert record["relative_rms_error"] == pytest.approx(error, rel=0.05, abs=2e-3)
        assert 0 < error < 0.2  # 16 levels per 16 channels: a few percent of the weight norm


def decompress_lut(op):
    """Weights of a constexpr_lut_to_dense op, decoded with numpy: lut[group, index]."""
    indices, lut = op.indices.val.astype(np.int64), op.lut.val.astype(np.float32)
    groups = lut.shape[:-2]
    out = np.empty(indices.shape, np.float32)
    blocks = [n // g for n, g in zip(indices.shape, groups)]
    for group in np.ndindex(*groups):
        region = tuple(slice(g * b, (g + 1) * b) for g, b in zip(group, blocks))
        out[region] = lut[group][:, 0][indices[region]]
    return out


# ---------------------------------------------------------------- inspect, runner, bad input

@pytest.mark.slow
def test_inspect_reports_int8_weights(coreml_int8_dir):
    result = run_cli("inspect", coreml_int8_dir / "decoder.mlpackage", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["deployment_target"] == "iOS18"  # the enumerated token shapes
    assert report["op_histogram"]["constexpr_blockwise_shift_scale"] == len(report["compressed_weights"])
    layer_weights = [w for w in report["compressed_weights"] if w["weight"].startswith("p_")]
    assert len(layer_weights) > 40 and {(w["bits"], w["granularity"]) for w in layer_weights} == {(8, "per_channel")}
    assert all(w["weight"].startswith("p_") for w in report["compressed_weights"])  # PE tables stay float16
    assert report["accelerator_risks"] == []
    assert report["weight_report"] and all(r["relative_rms_error"] < 0.01 for r in report["weight_report"])
    text = run_cli("inspect", coreml_int8_dir / "encoder.mlpackage")
    assert text.returncode == 0 and "constexpr_affine_dequantize" in text.stdout and "image" in text.stdout
    assert run_cli("inspect", coreml_int8_dir / "decoder_batch.mlpackage", "--json").stdout.count("iOS17")


@pytest.mark.slow
def test_runner_decoder_matches_torch_through_the_mil_interpreter(coreml_fp16_dir, full_model):
    """On Linux the runner executes the package with tinysam_mobile.mil (issue 7), at each prompt's own
    token count (the enumerated shapes), with and without a mask prompt."""
    from tinysam_mobile.runners.coreml_runner import CoreMLRunner

    runner = CoreMLRunner(coreml_fp16_dir, interpreter=True)
    assert (runner.min_tokens, runner.max_tokens) == (1, 10)
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(1, 256, 64, 64)).astype(np.float32)
    prompts = {1: [-1], 3: [1, 0, -1], 4: [1, 1, 2, 3], 10: [1, 0] * 4 + [2, 3]}
    for has_mask, (tokens, token_labels) in enumerate(prompts.items()):
        coords = (rng.random((1, tokens, 2)) * 1024).astype(np.float32)
        coords[0, np.array(token_labels) == -1] = 0
        labels = np.array([token_labels], np.float32)
        masks = rng.normal(size=(1, 1, 256, 256)).astype(np.float32)
        flag = np.array([has_mask % 2], np.float32)
        got_logits, got_iou = runner.decode(embedding, coords, labels, masks, flag)
        with torch.inference_mode():
            want_logits, want_iou = full_model.decode(*map(torch.from_numpy, (embedding, coords, labels, masks, flag)))
        agreement = ((got_logits > 0) == (want_logits.numpy() > 0)).mean()
        assert agreement > 0.99, (tokens, agreement)
        np.testing.assert_allclose(got_iou, want_iou.numpy(), atol=0.05)
    with pytest.raises(PromptError, match="11 tokens"):
        runner.decode(embedding, np.zeros((1, 11, 2), np.float32), np.ones((1, 11), np.float32),
                      np.zeros((1, 1, 256, 256), np.float32), np.zeros(1, np.float32))


@pytest.mark.slow
def test_bad_arguments_give_one_line_errors(tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(run_cli("convert", "--target", "coreml", "--precision", "int4", "-o", out), "int4")
    assert_one_line_error(run_cli("convert", "--target", "coreml", "--precision", "fp16", "--compute-precision",
                                  "fp8", "-o", out), "compute-precision")
    assert_one_line_error(run_cli("convert", "--target", "coreml", "--precision", "w8a8", "-o", out), "--scales")
    assert not out.exists()
    assert_one_line_error(run_cli("inspect", tmp_path / "missing.mlpackage"), "does not exist")
    (tmp_path / "fake.mlpackage").mkdir()
    assert_one_line_error(run_cli("inspect", tmp_path / "fake.mlpackage"), "not an .mlpackage")
    assert_one_line_error(run_cli("inspect", tmp_path), "inspect reads")


# ---------------------------------------------------------------- macOS only: MLModel.predict parity

MAC_ONLY = pytest.mark.skipif(platform.system() != "Darwin", reason="CoreML's runtime (MLModel.predict) exists only on macOS")


@pytest.mark.macos
@MAC_ONLY
@pytest.mark.parametrize("fixture, threshold", [("coreml_fp16_dir", 0.99), ("coreml_int8_dir", 0.98)])
def test_macos_mask_iou_against_torch(request, fixture, threshold, full_model, photo):
    from tinysam_mobile.predictor import TinySamPredictor
    from tinysam_mobile.runners import TorchRunner
    from tinysam_mobile.runners.coreml_runner import CoreMLRunner

    runner = CoreMLRunner(request.getfixturevalue(fixture), interpreter=False)
    torch_runner = TorchRunner(full_model)  # the user's reference: exactly the prompt's tokens on both sides
    coreml, reference = TinySamPredictor(runner), TinySamPredictor(torch_runner)
    ious = []
    for predictor in (coreml, reference):
        predictor.set_image(photo)
    rng = np.random.default_rng(0)
    h, w = photo.shape[:2]
    for _ in range(24):
        point = np.array([[rng.uniform(0, w), rng.uniform(0, h)]], np.float32)
        a = coreml.predict(point_coords=point, point_labels=np.ones(1, np.float32))[0]
        b = reference.predict(point_coords=point, point_labels=np.ones(1, np.float32))[0]
        ious.append(np.logical_and(a, b).sum(axis=(-2, -1)) / np.maximum(np.logical_or(a, b).sum(axis=(-2, -1)), 1))
    assert float(np.mean(ious)) >= threshold
