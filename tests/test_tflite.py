"""LiteRT artifacts at full size: contracts, integer-only w8a8, accelerator checks, parity with PyTorch."""

import numpy as np
import pytest
import torch

from tinysam_mobile.converters import accelerators
from tinysam_mobile.converters.manifest import load_manifest
from tinysam_mobile.errors import ArtifactError, TinySamError
from tinysam_mobile.runners import TorchRunner
from tinysam_mobile.runners.litert_runner import LiteRTRunner
from tinysam_mobile.validation import THRESHOLDS, ParityConfig, measure_parity

from conftest import TFLITE_TEST_BATCH, predictable_scales

pytestmark = pytest.mark.slow
# The reduced-size (256) fixtures test quantization logic, not token coverage: signatures for 1-3 tokens keep
# their conversions short (the full-size fixtures carry all ten).
SMALL_MAX_TOKENS = 3


@pytest.fixture(scope="module")
def reference():
    from tinysam_mobile.checkpoint import load_tinysam

    return TorchRunner(load_tinysam())


@pytest.fixture(scope="module")
def parity_images(photo):
    from tinysam_mobile.calibration.dataset import default_images

    return [(photo, None)] + default_images(2, held_out=True)[1:]  # a photo and a generated scene


def test_fp32_contract_in_manifest(tflite_fp32_dir):
    manifest = load_manifest(tflite_fp32_dir)
    encoder, decoder = manifest["artifacts"][0], manifest["artifacts"][1]
    image = encoder["signatures"]["encode"]["inputs"]["image"]
    assert image["shape"] == [1, 1024, 1024, 3] and image["dtype"] == "float32"
    assert manifest["prompt_tokens"] == {"min": 1, "max": 10}
    assert set(decoder["signatures"]) == {f"decode_tokens_{t}" for t in range(1, 11)} | {"decode_batch"}
    for tokens in range(1, 11):  # one signature per exact prompt length
        assert decoder["signatures"][f"decode_tokens_{tokens}"]["inputs"]["point_coords"]["shape"] == [1, tokens, 2]
    decode, batch = decoder["signatures"]["decode_tokens_3"], decoder["signatures"]["decode_batch"]
    assert batch["inputs"]["point_coords"]["shape"] == [TFLITE_TEST_BATCH, 2, 2]
    assert batch["inputs"]["image_embeddings"]["shape"] == [1, 256, 64, 64]
    assert set(decode["outputs"]) == {"low_res_masks", "iou_predictions"}
    assert (tflite_fp32_dir / "gpu_compatibility.txt").read_text().count("GPU delegate") >= 2


def test_fp32_parity(tflite_fp32_dir, reference, parity_images):
    """Against TinySamPredictor on PyTorch as a user calls it, for every prompt-token count: padding
    prompts to 10 tokens gave 0.76 on 2-token ones (one-off script, docs/conversion.md), far below this."""
    figures = measure_parity(LiteRTRunner(tflite_fp32_dir), reference, parity_images, ParityConfig(prompts_per_image=6))
    assert figures["embedding_cosine"]["min"] > 0.9999
    assert figures["mask_iou"]["mean"] >= THRESHOLDS["fp32"]
    assert sorted(figures["mask_iou_by_tokens"]) == list(range(1, 11))
    for tokens, ious in figures["mask_iou_by_tokens"].items():
        assert ious["mean"] >= THRESHOLDS["fp32"], tokens
    assert figures["iou_prediction_abs_error"]["max"] < 1e-3


def test_batched_decoder_matches_pytorch(tflite_fp32_dir, reference):
    """Everything mode: single-point prompts (the point and its padding point) go through 'decode_batch'
    in batches of the signature's size, the last one filled up."""
    runner = LiteRTRunner(tflite_fp32_dir)
    rng = np.random.default_rng(1)
    embedding = rng.standard_normal((1, 256, 64, 64)).astype(np.float32)
    count = TFLITE_TEST_BATCH + 3  # two calls, the second padded
    coords = np.zeros((count, 2, 2), np.float32)
    coords[:, 0] = rng.random((count, 2)) * 1024
    labels = np.tile(np.array([[1.0, -1.0]], np.float32), (count, 1))
    masks, flags = np.zeros((count, 1, 256, 256), np.float32), np.zeros(count, np.float32)
    logits, iou = runner.decode(embedding, coords, labels, masks, flags)
    want_logits, want_iou = reference.decode(embedding, coords, labels, masks, flags)
    assert logits.shape == (count, 3, 256, 256) and iou.shape == (count, 3)
    np.testing.assert_allclose(logits, want_logits, atol=2e-3)
    np.testing.assert_allclose(iou, want_iou, atol=1e-4)


def test_decoder_stores_no_dense_positional_encoding(tflite_fp32_dir):
    """Size: the (1, 256, 64, 64) encoding (4 MB in fp32) is computed from per-axis tables, not stored;
    the largest constants of the decoder are then its layer weights (the 2048 x 256 MLP matrices)."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(tflite_fp32_dir / "decoder.tflite")
    largest = max(buffer.data.size for buffer in model.buffers if buffer.data is not None)
    assert largest == 2048 * 256 * 4


def test_w8a8_is_integer_only_with_exact_pixel_input(tflite_w8a8_dir, reference):
    manifest = load_manifest(tflite_w8a8_dir)
    image = manifest["artifacts"][0]["signatures"]["encode"]["inputs"]["image"]
    assert image["dtype"] == "int16" and image["quantization"] == {"scale": 1 / 128, "zero_point": 0}
    for name in ("encoder.tflite", "decoder.tflite"):
        assert accelerators.float_ops(tflite_w8a8_dir / name) == {}
    decode = manifest["artifacts"][1]["signatures"]["decode_tokens_8"]
    assert {spec["dtype"] for spec in decode["outputs"].values()} == {"int16"}
    # sin / cos have no integer kernels: the app computes the points' Fourier features with this projection
    assert "point_coords" not in decode["inputs"] and decode["inputs"]["point_features"]["shape"] == [1, 8, 256]
    gaussian = reference.model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.numpy()
    assert np.array_equal(np.array(manifest["decoder"]["point_features"]["gaussian_matrix"], np.float32), gaussian)
    assert "fully-connected" in manifest["quantization"]["activations"]


def test_integer_only_check_names_float_ops(tflite_fp32_dir):
    with pytest.raises(ArtifactError, match=r"encoder.tflite is not integer-only: .*CONV_2D"):
        accelerators.check_integer_only(tflite_fp32_dir / "encoder.tflite")
    with pytest.raises(ArtifactError, match=r"decoder.tflite is not integer-only: .*SIN x\d+"):
        accelerators.check_integer_only(tflite_fp32_dir / "decoder.tflite")
    with pytest.raises(ArtifactError, match=r"not integer-only"):
        LiteRTRunner(tflite_fp32_dir, delegate="npu-emulation")


def test_w8a8_parity(tflite_w8a8_dir, reference, parity_images):
    """The demo model at full size, calibrated on the fixture's two photos: a regression bar, not the
    target. The 0.95 target is judged by `validate` on 8 held-out images x 19 prompts with the default
    8-image calibration: 0.9722 (docs/runtimes-and-benchmarks.md). On these two images x 19 prompts this
    test measures 0.933; the default calibration's artifact gave 0.954 on them (a one-off run of the same
    measure_parity call); int8 activations throughout had reached 0.72 on the report's images."""
    figures = measure_parity(LiteRTRunner(tflite_w8a8_dir), reference, parity_images, ParityConfig(prompts_per_image=19))
    assert figures["embedding_cosine"]["mean"] > 0.999
    assert figures["mask_iou"]["mean"] > 0.92


def test_xnnpack_partitions(tflite_fp32_dir):
    assert accelerators.xnnpack_partitions(tflite_fp32_dir / "encoder.tflite") == {"partitions": 1,
                                                                                 "ops_outside_xnnpack": {}}


def test_unknown_delegate_is_refused(tflite_fp32_dir):
    with pytest.raises(TinySamError, match="unknown delegate"):
        LiteRTRunner(tflite_fp32_dir, delegate="gpu")


# --- TinySAM PTQ scales in w8a8 (the 256-px seeded model: the tests are about where scales land) -------

@pytest.fixture(scope="module")
def ptq_scales(small_model):
    return predictable_scales(small_model)


@pytest.fixture(scope="module")
def small_ptq_dir(tmp_path_factory, small_model, ptq_scales, calibration_photos):
    from tinysam_mobile.calibration.scales import save_scales
    from tinysam_mobile.converters import tflite
    from tinysam_mobile.converters.config import ConvertConfig

    out = tmp_path_factory.mktemp("tflite_small_ptq")
    path = save_scales(ptq_scales, tmp_path_factory.mktemp("scales") / "scales.safetensors")
    config = ConvertConfig(target="tflite", precision="w8a8", everything_batch=4, max_tokens=SMALL_MAX_TOKENS,
                           scales=path,
                           calibration_images=calibration_photos)
    tflite.convert(small_model, config, out, "seeded-0")
    return out


def test_ptq_scales_placed_for_every_op(small_ptq_dir, small_model):
    from tinysam_mobile.calibration.capture import quantizable_ops

    ops = quantizable_ops(small_model)
    record = load_manifest(small_ptq_dir)["ptq_scales"]
    # Seeded weights zero the last BatchNorm of TinyViT's MBConv blocks: the converter folds both blocks
    # of stage 0 (3 convs each) into constants, so they have no op to carry scales.
    folded = [f"image_encoder.layers.0.blocks.{b}.conv{c}.c" for b in (0, 1) for c in (1, 2, 3)]
    assert record["folded_by_converter"] == folded
    layers = sum(kind != "matmul" for kind, _ in ops.values()) - len(folded)
    matmuls = sum(kind == "matmul" for kind, _ in ops.values())
    # w8a8's int8 activations: the inputs of the encoder's linear layers; every other operand is int16
    encoder_linears = sum(kind == "linear" and name.startswith("image_encoder.") for name, (kind, _) in ops.items())
    assert record["entries"] == len(ops)
    assert record["weights"]["placed"] == record["weights"]["per_channel_exact"] == layers
    assert record["activations"]["placed"] == record["activations"]["exact"] == encoder_linears
    assert record["activations_16_bit_by_recipe"] == layers - encoder_linears + 2 * matmuls


def _layer_op(interpreter, op_name: str, codes: np.ndarray) -> dict:
    """The one op of that kind whose int8 weight holds these codes (a code may sit one step away where
    the float32 weight lies within rounding noise of a half step)."""
    def close(weight: np.ndarray) -> bool:
        if weight.shape != codes.shape:
            return False
        diff = np.abs(weight.astype(np.int32) - codes)
        return diff.max() <= 1 and np.count_nonzero(diff) <= 1e-4 * diff.size

    found = [op for op in interpreter._get_ops_details()
             if op["op_name"] == op_name and close(interpreter.get_tensor(op["inputs"][1]))]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("file, module, op_name, to_litert", [
    ("encoder.tflite", "image_encoder.layers.1.blocks.0.mlp.fc1", "FULLY_CONNECTED", (0, 1)),
    ("encoder.tflite", "image_encoder.patch_embed.seq.2.c", "CONV_2D", (0, 2, 3, 1)),
    ("decoder.tflite", "mask_decoder.output_upscaling.3", "TRANSPOSE_CONV", (1, 2, 3, 0)),
])
def test_ptq_weights_and_input_range_read_back(small_ptq_dir, small_model, ptq_scales, file, module, op_name,
                                               to_litert):
    """The int8 codes and scales in the artifact are the scales file's grid (times the folded BatchNorm's
    factor for a Conv-BN pair). An encoder fully-connected layer reads int8 at the file's activation scale
    (zero point 0); the other layers read int16 (symmetric), where the file's 8-bit range does not apply.
    Each module here is the only reader of its input (a shared tensor holds the union of its readers' ranges)."""
    from ai_edge_litert.interpreter import Interpreter

    from tinysam_mobile.calibration.export import weight_grid
    from tinysam_mobile.converters.coreml_weights import batchnorm_factors

    layers = dict(small_model.named_modules())
    codes, scale, axis = weight_grid(ptq_scales, module, layers[module].weight)
    codes = codes.clamp(min=-127)  # LiteRT int8 weights are symmetric: -127..127
    if module.endswith(".c"):  # Conv-BN: BatchNorm folded into the conv
        factor = batchnorm_factors(layers[module.removesuffix(".c") + ".bn"]).detach()
        codes, scale = codes * factor.sign().to(torch.int8).reshape(-1, 1, 1, 1), scale * factor.abs()
    interpreter = Interpreter(str(small_ptq_dir / file))
    interpreter.allocate_tensors()
    op = _layer_op(interpreter, op_name, codes.permute(*to_litert).numpy().astype(np.int32))
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    weight_scales = details[op["inputs"][1]]["quantization_parameters"]["scales"]  # per output channel
    np.testing.assert_allclose(weight_scales, np.broadcast_to(scale.numpy(), weight_scales.shape), rtol=1e-5)
    activation = details[op["inputs"][2 if op_name == "TRANSPOSE_CONV" else 0]]
    assert activation["quantization_parameters"]["zero_points"].tolist() == [0]
    if op_name == "FULLY_CONNECTED":
        assert activation["dtype"] == np.int8
        np.testing.assert_allclose(activation["quantization_parameters"]["scales"],
                                   ptq_scales.activation_quantizer(module).scale.numpy(), rtol=1e-5)
    else:
        assert activation["dtype"] == np.int16


def _small_integer_dir(tmp_path_factory, small_model, calibration_photos, precision: str):
    """An integer precision of the 256-px seeded model from calibrated min/max (the float export is shared
    in-process)."""
    from tinysam_mobile.converters import tflite
    from tinysam_mobile.converters.config import ConvertConfig

    out = tmp_path_factory.mktemp(f"tflite_small_{precision}")
    config = ConvertConfig(target="tflite", precision=precision, everything_batch=4, max_tokens=SMALL_MAX_TOKENS,
                           calibration_images=calibration_photos)
    tflite.convert(small_model, config, out, "seeded-0")
    return out


@pytest.fixture(scope="module")
def small_w8a8_dir(tmp_path_factory, small_model, calibration_photos):
    return _small_integer_dir(tmp_path_factory, small_model, calibration_photos, "w8a8")


def _activation_dtypes(path) -> list[tuple[str, set]]:
    """(op name, dtypes of its activation inputs and outputs) of each op of the first subgraph; constants
    (weights, biases, shapes) left out."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path))
    dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    activations = {t for op in ops for t in op["outputs"]} | {d["index"] for d in interpreter.get_input_details()}
    return [(op["op_name"], {dtypes[t] for t in [*op["inputs"], *op["outputs"]] if t in activations}) for op in ops]


def test_w8a8_int8_only_at_the_encoder_linear_inputs_and_labels_exact(small_w8a8_dir, small_model):
    """w8a8's encoder reads and writes int8 at each fully-connected layer (one per linear module) and int16
    everywhere else, QUANTIZE ops converting between the two; the decoder holds no int8 activation (its
    softmax over the image positions needs int16: an int8 output, step 1/256, rounds a spread-out row to
    zeros). Point labels and the has-mask flag are exact int16 codes in every signature (the prompt encoder
    tests labels with EQUAL; the everything-mode signature never sees a mask during calibration)."""
    from tinysam_mobile.calibration.capture import quantizable_ops

    encoder = _activation_dtypes(small_w8a8_dir / "encoder.tflite")
    linears = [name for name, (kind, _) in quantizable_ops(small_model).items()
               if kind == "linear" and name.startswith("image_encoder.")]
    assert [types for op, types in encoder if op == "FULLY_CONNECTED"] == [{np.int8}] * len(linears)
    assert all(types == {np.int16} for op, types in encoder if op not in ("FULLY_CONNECTED", "QUANTIZE"))
    decoder = _activation_dtypes(small_w8a8_dir / "decoder.tflite")
    assert not any(np.int8 in types for _, types in decoder)
    assert {frozenset(types) for op, types in decoder if op in ("SOFTMAX", "BATCH_MATMUL")} == {frozenset({np.int16})}
    for signature in load_manifest(small_w8a8_dir)["artifacts"][1]["signatures"].values():
        for name, values in (("point_labels", [-1.0, 0.0, 1.0, 2.0, 3.0]), ("has_mask_input", [0.0, 1.0])):
            spec = signature["inputs"][name]
            codes = np.array(values) / spec["quantization"]["scale"] + spec["quantization"]["zero_point"]
            assert spec["dtype"] == "int16" and np.allclose(codes, np.round(codes), atol=1e-4)


def test_small_w8a8_runs_on_reference_kernels(small_w8a8_dir, parity_images):
    """The NPU stand-in: the whole pipeline on LiteRT's reference int8 kernels (after the integer-only
    check), the app computing the point features. The same integer graph as on XNNPACK, whose kernels
    round differently: measured embedding cosine 0.997, mean mask IoU 0.92 between the two at this size."""
    figures = measure_parity(LiteRTRunner(small_w8a8_dir, delegate="npu-emulation"), LiteRTRunner(small_w8a8_dir),
                             parity_images, ParityConfig(prompts_per_image=6))
    assert figures["embedding_cosine"]["min"] > 0.99
    assert figures["mask_iou"]["mean"] > 0.85


def test_small_w8a8_parity(small_w8a8_dir, small_model, parity_images):
    """Measured at this size (chelsea + 3 held-out scenes, 6 prompts each): mean mask IoU 0.41 with
    calibrated label ranges (inexact labels), 0.66 with exact labels, 0.83 with min / max ranges (the
    moving average had held the decoder's 0/1 tensors short of 1), all with int8 activations throughout;
    0.90 with int8 only at the encoder's fully-connected inputs."""
    figures = measure_parity(LiteRTRunner(small_w8a8_dir), TorchRunner(small_model), parity_images,
                             ParityConfig(prompts_per_image=6))
    assert figures["mask_iou"]["mean"] > 0.85


@pytest.fixture(scope="module")
def small_w8a16_dir(tmp_path_factory, small_model, calibration_photos):
    return _small_integer_dir(tmp_path_factory, small_model, calibration_photos, "w8a16")


def test_small_w8a16_is_integer_only_and_closer_than_w8a8(small_w8a16_dir, small_w8a8_dir, small_model, parity_images):
    """w8a16: every activation int16 (TFLite's 16x8 kernels), inputs held exactly (pixels at scale 1/128,
    labels at 1/2, zero point 0: int16 is symmetric), no float op; on the same images and prompts its masks
    are at least as close to PyTorch as w8a8's, whose encoder's fully-connected inputs are int8 (measured
    at this size, chelsea + 3 held-out scenes x 6 prompts: mean mask IoU 0.911 vs 0.896)."""
    manifest = load_manifest(small_w8a16_dir)
    image = manifest["artifacts"][0]["signatures"]["encode"]["inputs"]["image"]
    assert image["dtype"] == "int16" and image["quantization"] == {"scale": 1 / 128, "zero_point": 0}
    labels = manifest["artifacts"][1]["signatures"]["decode_tokens_2"]["inputs"]["point_labels"]
    assert labels["dtype"] == "int16" and labels["quantization"] == {"scale": 0.5, "zero_point": 0}
    for name in ("encoder.tflite", "decoder.tflite"):
        assert accelerators.float_ops(small_w8a16_dir / name) == {}
    assert not any(np.int8 in types for _, types in _activation_dtypes(small_w8a16_dir / "encoder.tflite"))
    reference = TorchRunner(small_model)
    ious = {folder: measure_parity(LiteRTRunner(folder), reference, parity_images,
                                   ParityConfig(prompts_per_image=6))["mask_iou"]["mean"]
            for folder in (small_w8a16_dir, small_w8a8_dir)}
    assert ious[small_w8a16_dir] > 0.85 and ious[small_w8a16_dir] > ious[small_w8a8_dir]


# --- Int8 on CPU: what XNNPACK takes in int8, and the graph shaped for it (issue #5) ------------------

def _litert_model(convert) -> bytes:
    """The flatbuffer of convert(litert_torch) (a converted litert-torch model)."""
    import tempfile
    from pathlib import Path

    import litert_torch

    from tinysam_mobile.converters import tflite

    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        return tflite._export(convert(litert_torch), Path(tmp) / "model.tflite")


def _calibration(float_model: bytes, samples: dict[str, list]) -> dict:
    from tinysam_mobile.converters import tflite

    return tflite.calibrate(float_model, samples, tflite.input_ranges(float_model, samples))


def _static_int8(float_model: bytes, samples: dict[str, list]) -> bytes:
    """Every op integer with int8 activations (ai-edge-quantizer's static_wi8_ai8), calibrated on the samples."""
    from ai_edge_quantizer import recipe

    from tinysam_mobile.converters import tflite

    return tflite._quantize(float_model, recipe.static_wi8_ai8(), _calibration(float_model, samples))


def _run(model: bytes, **inputs) -> dict[str, np.ndarray]:
    """The first signature of an in-memory model on XNNPACK, through the runner's int8 conversion."""
    from ai_edge_litert.interpreter import Interpreter

    from tinysam_mobile.runners.litert_runner import _Signature

    interpreter = Interpreter(model_content=model, num_threads=2)
    return _Signature(interpreter, next(iter(interpreter.get_signature_list())))(**inputs)


class _OneOp(torch.nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(*inputs)


ONE_OP_CASES = {  # op: (module body, input shapes, whether XNNPACK runs the op's int8 form)
    "GELU": (torch.nn.functional.gelu, [(1, 49, 64)], False),
    "SOFTMAX": (lambda x: x.softmax(-1), [(1, 2, 49, 49)], False),
    "BATCH_MATMUL": (torch.matmul, [(1, 2, 49, 32), (1, 2, 32, 49)], False),
    "RSQRT": (lambda x: torch.rsqrt(x * x + 1), [(1, 49, 64)], False),
    "SQUARED_DIFFERENCE": (lambda x: torch.nn.functional.layer_norm(x, (64,)), [(1, 49, 64)], False),
    "MEAN": (lambda x: x.mean(-1, keepdim=True), [(1, 49, 64)], True),
    "SUB": (torch.sub, [(1, 49, 64), (1, 49, 1)], True),
    "MUL": (torch.mul, [(1, 49, 64), (1, 49, 64)], True),
}


@pytest.mark.parametrize("op", ONE_OP_CASES)
def test_xnnpack_int8_support_of_one_op_models(op):
    """The facts the int8-xnnpack recipe and the LayerNorm rewrite rest on (the installed ai-edge-litert's
    XNNPACK): the float model is one XNNPACK partition; in the static int8 model the op is left to
    LiteRT's own kernels, or not."""
    fn, shapes, runs_in_xnnpack = ONE_OP_CASES[op]
    generator = torch.Generator().manual_seed(0)
    samples = [tuple(torch.randn(shape, generator=generator) for shape in shapes) for _ in range(4)]
    float_model = _litert_model(lambda litert_torch: litert_torch.convert(_OneOp(fn).eval(), samples[0]))
    feeds = {"serving_default": [{f"args_{i}": t.numpy() for i, t in enumerate(s)} for s in samples]}
    int8_model = _static_int8(float_model, feeds)
    assert accelerators.xnnpack_partitions(float_model) == {"partitions": 1, "ops_outside_xnnpack": {}}
    outside = accelerators.xnnpack_partitions(int8_model)["ops_outside_xnnpack"]
    assert (op not in outside) if runs_in_xnnpack else (op in outside)


@pytest.fixture(scope="module")
def image_attention_inputs():
    """[(logits, values)] of the embedded demo model's second token-to-image attention (8 heads, 4,096 image
    positions at 1024) for one click on each of three photos: rows from flat to peaked, 43-46% of the
    logits more than 10 below their row's maximum."""
    from skimage import data

    from tinysam_mobile.checkpoint import load_tinysam
    from tinysam_mobile.predictor import TinySamPredictor

    model = load_tinysam()
    attention, captured = model.mask_decoder.transformer.layers[1].cross_attn_token_to_image, []
    scale = (attention.q_proj.out_features // attention.num_heads) ** -0.5
    hooks = [attention.qk_matmul.register_forward_hook(lambda m, i, out: captured.append([out * scale])),
             attention.av_matmul.register_forward_hook(lambda m, i, out: captured[-1].append(i[1]))]
    predictor = TinySamPredictor(model)
    for image in (data.astronaut(), data.coffee(), data.chelsea()):
        predictor.set_image(image)
        predictor.predict(point_coords=np.array([[image.shape[1] * 0.4, image.shape[0] * 0.5]], np.float32),
                          point_labels=np.array([1]))
    for hook in hooks:
        hook.remove()
    return [(logits.detach().numpy(), values.detach().numpy()) for logits, values in captured]


def test_floored_softmax_attention_on_int16_kernels(image_attention_inputs):
    """LiteRT's int16 SOFTMAX floors exp at x - max = -10, so every far-off image position adds to its row;
    FlooredSoftmaxAttention drops those weights. Both attentions quantized 16x8 (calibrated on two photos'
    inputs) and run on LiteRT's kernels on the third's, against float softmax(logits) @ values: the
    floored one is the closer by far (measured: 14.3% -> 3.8% relative error; in float the dropped weights
    cost 2.6%)."""
    from tinysam_mobile.converters import tflite
    from tinysam_mobile.converters.export_modules import FlooredSoftmaxAttention
    from tinysam_mobile.modeling.transformer import Attention

    *calibration, (logits, values) = image_attention_inputs
    expected = torch.softmax(torch.from_numpy(logits), -1) @ torch.from_numpy(values)
    errors = {}
    for attention in (Attention(32, 8), FlooredSoftmaxAttention(32, 8)):
        module = _OneOp(attention.attend).eval()
        float_model = _litert_model(lambda litert_torch: litert_torch.convert(
            module, (torch.from_numpy(logits), torch.from_numpy(values))))
        feeds = {"serving_default": [{"args_0": a, "args_1": b} for a, b in calibration]}
        int16_model = tflite.quantize_full_integer(float_model, _calibration(float_model, feeds))
        assert accelerators.float_ops(int16_model) == {}
        output = _run(int16_model, args_0=logits, args_1=values)["output_0"]
        errors[type(attention).__name__] = np.linalg.norm(output - expected.numpy()) / np.linalg.norm(expected.numpy())
    assert errors["FlooredSoftmaxAttention"] < 0.5 * errors["Attention"]
    in_float = FlooredSoftmaxAttention(32, 8).attend(torch.from_numpy(logits), torch.from_numpy(values))
    assert float((in_float - expected).norm() / expected.norm()) < 0.05


def test_calibrated_ranges_are_min_max_over_every_sample():
    """A tensor keeps the extremes it reaches in one sample only. ai-edge-quantizer's default moving
    average (weight 0.05 per new sample) held the decoder's label one-hot in [0, 0.67], so a positive point
    counted 0.67; here it would give relu(x) * 3 a maximum near 0.3 instead of 30."""
    from ai_edge_litert.interpreter import Interpreter

    float_model = _litert_model(lambda litert_torch: litert_torch.convert(
        _OneOp(lambda x: torch.relu(x) * 3).eval(), (torch.ones(1, 4),)))
    peaks = [0.1, 0.1, 10.0, 0.1, 0.1]  # the largest in the middle: neither first nor last
    feeds = {"serving_default": [{"args_0": np.full((1, 4), peak, np.float32)} for peak in peaks]}
    int8_model = _static_int8(float_model, feeds)
    output = Interpreter(model_content=int8_model).get_signature_runner().get_output_details()
    scale, zero_point = next(iter(output.values()))["quantization"]
    assert (127 - zero_point) * scale == pytest.approx(30.0, rel=0.01)
    assert _run(int8_model, args_0=np.full((1, 4), 10.0, np.float32))["output_0"] == pytest.approx(30.0, rel=0.01)


@pytest.fixture(scope="module")
def small_encoders(small_model):
    """Float encoders of the 256-px seeded model: the exported one (export_copy) and the plain wrapper."""
    from tinysam_mobile.converters import tflite
    from tinysam_mobile.converters.config import ConvertConfig
    from tinysam_mobile.converters.export_modules import ENCODER_INPUT, PixelEncoder

    config = ConvertConfig(target="tflite", precision="fp32", everything_batch=4, max_tokens=SMALL_MAX_TOKENS)
    exported, _ = tflite.export_float(small_model, config, "seeded-0", lambda text: None)
    plain = _litert_model(lambda litert_torch: litert_torch.signature(
        tflite.ENCODER_SIGNATURE, PixelEncoder(small_model).eval(),
        sample_kwargs={ENCODER_INPUT: torch.rand(1, 256, 256, 3) * 255}).convert())
    return exported, plain


@pytest.fixture(scope="module")
def small_pixels(photo):
    from tinysam_mobile.converters.litert_calibration import encoder_samples

    return encoder_samples([(photo, None)], 256)


def test_rsqrt_layernorm_matches_pytorch(small_model, small_encoders, small_pixels):
    """The exported LayerNorms (rsqrt form) compute nn.LayerNorm: module for module, and the fp32 LiteRT
    encoder of the export stays within 1e-4 of the PyTorch wrapper, as the plain export does."""
    from tinysam_mobile.converters.export_modules import PixelEncoder, RsqrtLayerNorm, export_copy

    norm = torch.nn.LayerNorm(160, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_(), norm.bias.normal_()
    rsqrt = RsqrtLayerNorm(160, eps=1e-5)
    rsqrt.load_state_dict(norm.state_dict())
    x = torch.randn(25, 196, 160) * 3 + 1
    torch.testing.assert_close(rsqrt(x), norm(x), atol=1e-5, rtol=0)
    layer_norms = sum(type(m) is torch.nn.LayerNorm for m in small_model.image_encoder.modules())
    swapped = [type(m) for m in export_copy(small_model, rsqrt_encoder_norms=True).image_encoder.modules()]
    assert swapped.count(RsqrtLayerNorm) == layer_norms > 0 and torch.nn.LayerNorm not in swapped
    pixels = small_pixels[0]["image"]
    with torch.no_grad():
        want = PixelEncoder(small_model)(torch.from_numpy(pixels))["image_embeddings"].numpy()
    for model in small_encoders:
        np.testing.assert_allclose(_run(model, image=pixels)["image_embeddings"], want, atol=1e-4, rtol=0)


def test_rsqrt_layernorm_keeps_full_size_tensors_in_xnnpack(small_encoders, small_pixels):
    """Static int8 encoder: nn.LayerNorm as litert-torch lowers it leaves SQUARED_DIFFERENCE and a SUB
    on every full-size activation to LiteRT; the rsqrt form leaves only per-position statistics
    (RSQRT, the eps ADD), so XNNPACK splits the graph less."""
    exported, plain = (_static_int8(m, {"encode": small_pixels}) for m in small_encoders)
    ours, theirs = accelerators.xnnpack_partitions(exported), accelerators.xnnpack_partitions(plain)
    assert {"SQUARED_DIFFERENCE", "SUB"} <= set(theirs["ops_outside_xnnpack"])
    assert not {"SQUARED_DIFFERENCE", "SUB"} & set(ours["ops_outside_xnnpack"])
    assert ours["partitions"] < theirs["partitions"]


def test_int8_recipes_run_in_one_xnnpack_partition(small_encoders, small_pixels):
    """int8 (dynamic range) keeps depthwise weights float: XNNPACK has no dynamic-range depthwise kernel.
    int8-xnnpack: integer fully-connected layers and neck convolution, everything else float (the sweep in
    tflite.XNNPACK_INT8_OPS), one partition, close to the fp32 export."""
    from ai_edge_quantizer import recipe

    from tinysam_mobile.converters import tflite

    exported = small_encoders[0]
    plain_dynamic = accelerators.xnnpack_partitions(tflite._quantize(exported, recipe.dynamic_wi8_afp32()))
    assert "DEPTHWISE_CONV_2D" in plain_dynamic["ops_outside_xnnpack"]
    one = {"partitions": 1, "ops_outside_xnnpack": {}}
    assert accelerators.xnnpack_partitions(tflite._quantize(exported, tflite.int8_recipe())) == one
    mixed = tflite.quantize_for_xnnpack(exported, _calibration(exported, {"encode": small_pixels}))
    assert accelerators.xnnpack_partitions(mixed) == one
    floats = set(accelerators.float_ops(mixed))
    assert {"GELU", "SOFTMAX", "BATCH_MATMUL", "RSQRT", "ADD", "PAD", "DEPTHWISE_CONV_2D"} <= floats
    assert "FULLY_CONNECTED" not in floats
    weights = _weight_types(mixed)
    assert {kind for kind, _ in weights["FULLY_CONNECTED"]} == {"INT8"}
    assert {(kind, tflite.NECK_SCOPE in scope) for kind, scope in weights["CONV_2D"]} == {("FLOAT32", False),
                                                                                       ("INT8", True)}
    pixels = small_pixels[0]["image"]
    got, want = _run(mixed, image=pixels)["image_embeddings"], _run(exported, image=pixels)["image_embeddings"]
    assert float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want)) > 0.98


def _weight_types(model: bytes) -> dict[str, list[tuple[str, str]]]:
    """{op name: [(weight tensor type, the op's scope), ...]} of the first subgraph's ops with a constant
    weight (input 1), read from the flatbuffer."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    from tinysam_mobile.converters.litert_scales import _Graph

    graph = _Graph(fb.read_model(bytearray(model)), 0)
    found: dict[str, list[tuple[str, str]]] = {}
    for op, name in zip(graph.subgraph.operators, graph.op_names):
        if name and len(op.inputs) >= 2 and graph.data(op.inputs[1]) is not None:
            weight_type = graph.fb.TENSOR_CODE_TO_TYPE[graph.subgraph.tensors[op.inputs[1]].type]
            found.setdefault(name, []).append((weight_type, graph.fb.get_op_scope(op, graph.subgraph.tensors)))
    return found


def test_int8_keeps_the_convolutions_float_but_the_necks(small_encoders):
    """Dynamic-range activations lose the encoder's convolution stages (the sweep in tflite.INT8_FLOAT_OPS):
    int8 keeps every convolution's weights float but the neck's; fully-connected weights are int8."""
    from tinysam_mobile.converters import tflite

    weights = _weight_types(tflite._quantize(small_encoders[0], tflite.int8_recipe()))
    convs = {(kind, tflite.NECK_SCOPE in scope) for kind, scope in weights["CONV_2D"]}
    assert convs == {("FLOAT32", False), ("INT8", True)}
    assert {kind for kind, _ in weights["DEPTHWISE_CONV_2D"]} == {"FLOAT32"}
    assert {kind for kind, _ in weights["FULLY_CONNECTED"]} == {"INT8"}


@pytest.fixture(scope="module")
def small_xnnpack_dir(tmp_path_factory, small_model, calibration_photos):
    from tinysam_mobile.converters import tflite
    from tinysam_mobile.converters.config import ConvertConfig

    out = tmp_path_factory.mktemp("tflite_small_w8a8_xnnpack")
    config = ConvertConfig(target="tflite", precision="int8-xnnpack", everything_batch=4, max_tokens=SMALL_MAX_TOKENS,
                           calibration_images=calibration_photos)
    tflite.convert(small_model, config, out, "seeded-0")
    return out


def test_int8_xnnpack_artifacts(small_xnnpack_dir, small_model, parity_images):
    """Both models stay in XNNPACK (the decoder's label tests, EQUAL / SELECT_V2, are outside in fp32 too), the
    manifest lists the encoder's float ops, the NPU emulation refuses it, and the pipeline agrees with PyTorch."""
    manifest = load_manifest(small_xnnpack_dir)
    assert manifest["precision"] == "int8-xnnpack"
    # The pixels feed a float convolution (only fully-connected layers and the neck are int8): float input.
    assert manifest["artifacts"][0]["signatures"]["encode"]["inputs"]["image"]["dtype"] == "float32"
    assert {"GELU", "SOFTMAX", "CONV_2D"} <= set(manifest["artifacts"][0]["float_ops"])
    assert accelerators.xnnpack_partitions(small_xnnpack_dir / "encoder.tflite")["partitions"] == 1
    decoder = accelerators.xnnpack_partitions(small_xnnpack_dir / "decoder.tflite")["ops_outside_xnnpack"]
    assert set(decoder) <= {"EQUAL", "SELECT_V2"}
    with pytest.raises(ArtifactError, match=r"encoder.tflite is not integer-only: .*GELU"):
        LiteRTRunner(small_xnnpack_dir, delegate="npu-emulation")
    figures = measure_parity(LiteRTRunner(small_xnnpack_dir), TorchRunner(small_model), parity_images,
                             ParityConfig(prompts_per_image=6))
    # Seeded weights at this size: 0.90 (the first recipe, every op XNNPACK takes in int8: 0.79; w8a8 with
    # int8 activations throughout: 0.66).
    assert figures["mask_iou"]["mean"] > 0.85
