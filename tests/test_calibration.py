"""TinySAM PTQ: quantizer formulas, the scale search, the scales file, converter helpers, fidelity."""

import numpy as np
import pytest
import torch
from torch import nn

from tinysam_mobile.calibration.capture import OpData, quantizable_ops
from tinysam_mobile.calibration.config import CalibrationConfig
from tinysam_mobile.calibration.export import activation_ranges, mobile_approximation, weight_grid
from tinysam_mobile.calibration.fakequant import fake_quant_model
from tinysam_mobile.calibration.quantizers import (along_axis, expand_blocks, fake_quant_activation,
                                                   fake_quant_twin_gelu, fake_quant_twin_softmax,
                                                   fake_quant_uniform, fake_quant_weight)
from tinysam_mobile.calibration.scales import (OpScales, Quantizer, ScalesError, ScalesFile, load_scales,
                                               save_scales)
from tinysam_mobile.calibration.search import _search_operand, search_op
from tinysam_mobile.modeling.common import MatMul
from tinysam_mobile.validation.metrics import mask_ious


# --- quantizer formulas against hand-computed values ---------------------------------------------

def test_uniform_rounds_half_to_even_and_clamps():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 200.0, -200.0, 127.4, -128.6])
    expected = torch.tensor([0.0, 2.0, 2.0, -0.0, -2.0, 127.0, -128.0, 127.0, -128.0])
    assert torch.equal(fake_quant_uniform(x, torch.tensor(1.0), 8), expected)
    # scale 0.25: 0.375 / 0.25 = 1.5 -> 2 -> 0.5; 0.625 / 0.25 = 2.5 -> 2 -> 0.5
    assert torch.equal(fake_quant_uniform(torch.tensor([0.375, 0.625]), torch.tensor(0.25), 8),
                       torch.tensor([0.5, 0.5]))
    # 6 bits: codes -32..31
    assert torch.equal(fake_quant_uniform(torch.tensor([40.0, -40.0]), torch.tensor(1.0), 6),
                       torch.tensor([31.0, -32.0]))


def test_uniform_with_offset():
    # (3.3 - 1) / 0.5 = 4.6 -> 5 -> 5 * 0.5 + 1 = 3.5
    assert torch.allclose(fake_quant_uniform(torch.tensor([3.3]), torch.tensor(0.5), 8, torch.tensor(1.0)),
                          torch.tensor([3.5]))


def test_twin_softmax_split():
    low, high, split = torch.tensor(0.001), torch.tensor(1 / 127), 0.127
    x = torch.tensor([0.0004, 0.0015, 0.1, 0.2, 1.0])
    # below the split: the fine grid (0.0004 -> 0, 0.0015 -> 2 * 0.001 (half to even), 0.1 -> 100 * 0.001);
    # above: multiples of 1/127 (0.2 * 127 = 25.4 -> 25)
    expected = torch.tensor([0.0, 0.002, 0.1, 25 / 127, 1.0])
    assert torch.allclose(fake_quant_twin_softmax(x, low, high, split, 8), expected)


def test_twin_gelu_split():
    neg, pos = torch.tensor(0.17 / 128), torch.tensor(0.05)
    x = torch.tensor([-0.17, -0.5, -0.001, 0.07, 10.0])
    expected = torch.tensor([-0.17, -0.17, -0.17 / 128, 0.05, 127 * 0.05])
    assert torch.allclose(fake_quant_twin_gelu(x, neg, pos, 8), expected)


def test_channel_wise_weight_scales():
    weight = torch.tensor([[[[1.0]], [[3.0]]], [[[10.0]], [[-30.0]]]])  # conv (O=2, I=2, 1, 1)
    q = Quantizer("uniform", 8, torch.tensor([1.0, 0.2]).reshape(2, 1, 1, 1), "channel")
    out = fake_quant_weight(weight, q)
    # channel 0 on a grid of 1.0, channel 1 of 0.2: -30 / 0.2 = -150 clamps to -128 -> -25.6
    assert torch.allclose(out.flatten(), torch.tensor([1.0, 3.0, 10.0, -25.6]))
    deconv = torch.ones(3, 2, 2, 2)  # ConvTranspose (I, O, k, k): channel scales on dim 1
    scale = torch.tensor([0.3, 0.7]).reshape(1, 2, 1, 1)
    assert torch.allclose(expand_blocks(scale, deconv.shape)[:, 1], torch.full((3, 2, 2), 0.7))


def test_block_and_head_wise_scales():
    blocks = expand_blocks(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.Size([4, 6]))
    assert blocks[1, 2] == 1.0 and blocks[1, 3] == 2.0 and blocks[2, 0] == 3.0 and blocks[3, 5] == 4.0
    x = torch.full((2, 3, 4, 5), 0.26)  # (B, heads, N, C)
    q = Quantizer("uniform", 8, torch.tensor([0.1, 0.2, 0.5]), "head", axis=1)
    out = fake_quant_activation(x, q)
    assert torch.allclose(out[:, 0], torch.full((2, 4, 5), 0.3))  # 2.6 -> 3
    assert torch.allclose(out[:, 1], torch.full((2, 4, 5), 0.2))  # 1.3 -> 1
    assert torch.allclose(out[:, 2], torch.full((2, 4, 5), 0.5))  # 0.52 -> 1
    assert along_axis(torch.tensor([0.1]), x, 1).dim() == 0


# --- the search --------------------------------------------------------------------------------

def _constructed_linear(seed: int = 0) -> OpData:
    """A linear op whose best weight scale is known: a few huge outlier weights whose outputs carry no
    gradient, so clipping them costs nothing and the fine grid of the others wins."""
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(16, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(4, 16, generator=gen) * 0.1)
        layer.weight[3, 0] = 50.0  # row 3 is the outlier row
    x = torch.randn(64, 16, generator=gen)
    grad2 = torch.ones(64, 4)
    grad2[:, 3] = 0.0  # the outlier's output does not matter to the task loss
    return OpData("linear", layer, operands=[[x]], grad2=[grad2])


def test_search_weights_by_task_gradient():
    data = _constructed_linear()
    config = CalibrationConfig(candidates=100, rounds=3)
    quantizers = search_op(data, config)
    w = data.module.weight.detach()
    # Brute force over the same grid, activations fixed to what the search chose.
    x_q = fake_quant_activation(data.operands[0][0], quantizers["input"])
    alphas = torch.linspace(config.alpha_min, config.alpha_max, config.candidates)
    errors = []
    for alpha in alphas:
        scale = alpha * w.abs().max() / 128
        y = x_q @ fake_quant_uniform(w, scale, 8).T
        errors.append(((y - data.operands[0][0] @ w.T).pow(2) * data.grad2[0]).sum())
    best = alphas[int(torch.stack(errors).argmin())]
    assert torch.isclose(quantizers["weight"].scale.reshape(()), best * w.abs().max() / 128)
    # and it is far below min/max (alpha = 1), which would put every small weight on code 0
    assert best < 0.05


def test_search_activation_scale_known_best():
    """Inputs are exactly the multiples of 0.01 in [-1.27, 1.27] plus one far outlier with no gradient
    on its row; with an exact weight grid, the lossless input scale 0.01 = 0.05 * max / 128 must win."""
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    outlier = 0.01 * 128 / 0.05
    x = torch.cat([torch.arange(-127, 128).float() * 0.01, torch.tensor([outlier])])[:, None]
    grad2 = torch.ones_like(x)
    grad2[-1] = 0.0
    data = OpData("linear", layer, operands=[[x]], grad2=[grad2])
    quantizers = {"weight": Quantizer("uniform", 8, torch.tensor([[1 / 64]])),  # 1.0 = code 64, exact
                  "input": Quantizer("uniform", 8, torch.tensor([outlier / 128]))}
    alphas = torch.linspace(0.01, 1.2, 120)  # step 0.01: 0.05 is on the grid
    _search_operand(data, [x], x @ layer.weight.detach().T, grad2, quantizers, "input", alphas)
    assert torch.isclose(quantizers["input"].scale, torch.tensor([0.01]), rtol=1e-4).all()


def test_search_head_wise_matmul_picks_scale_per_head():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(2, 3, 5, 8, generator=gen) * torch.tensor([0.1, 1.0, 10.0]).reshape(1, 3, 1, 1)
    b = torch.randn(2, 3, 8, 5, generator=gen)
    data = OpData("matmul", MatMul(), operands=[[a, b]], grad2=[torch.ones(2, 3, 5, 5)])
    quantizers = search_op(data, CalibrationConfig(candidates=30, rounds=2))
    assert quantizers["a"].scale.shape == (3,) and quantizers["a"].granularity == "head"
    ratio = quantizers["a"].scale[2] / quantizers["a"].scale[0]
    assert 20 < ratio < 500  # tracks the 100x spread of the heads' ranges


# --- scales file ------------------------------------------------------------------------------

def _example_scales() -> ScalesFile:
    return ScalesFile("abc123", "tinysam-ptq", seed=3, ops={
        "enc.conv": OpScales("conv", {
            "weight": Quantizer("uniform", 8, torch.rand(4, 1, 1, 1) + 0.1, "channel"),
            "input": Quantizer("uniform", 8, torch.tensor([0.05]), offset=torch.tensor([0.2]))}),
        "enc.fc2": OpScales("linear", {
            "weight": Quantizer("uniform", 6, torch.tensor([[0.01]])),
            "input": Quantizer("twin_gelu", 6, torch.tensor([0.17 / 32]), scale_high=torch.tensor([0.1]))}),
        "enc.attn.av_matmul": OpScales("matmul", {
            "a": Quantizer("twin_softmax", 8, torch.tensor([0.001]), scale_high=torch.tensor([1 / 127]),
                           split=0.127),
            "b": Quantizer("uniform", 8, torch.tensor([0.1, 0.2]), "head", axis=1)}),
    })


def test_scales_round_trip(tmp_path):
    scales = _example_scales()
    path = save_scales(scales, tmp_path / "s.safetensors")
    loaded = load_scales(path)
    assert (loaded.checkpoint_sha256, loaded.method, loaded.seed) == ("abc123", "tinysam-ptq", 3)
    assert set(loaded.ops) == set(scales.ops)
    for name, op in scales.ops.items():
        assert loaded.op(name).kind == op.kind
        for operand, q in op.quantizers.items():
            r = loaded.op(name).quantizers[operand]
            assert (r.scheme, r.bits, r.granularity, r.axis, r.split) == (q.scheme, q.bits, q.granularity, q.axis,
                                                                          q.split)
            for f in ("scale", "scale_high", "offset"):
                assert (getattr(q, f) is None and getattr(r, f) is None) or torch.equal(getattr(q, f), getattr(r, f))
    summary = (tmp_path / "s.json").read_text()
    assert '"enc.fc2"' in summary and '"twin_gelu"' in summary and "abc123" in summary
    assert loaded.bits == {"weight": 8, "activation": 8}


def test_scales_file_errors(tmp_path):
    with pytest.raises(ScalesError, match="not found"):
        load_scales(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ScalesError, match="not a readable"):
        load_scales(tmp_path / "junk.safetensors")
    with pytest.raises(ScalesError, match="no op"):
        _example_scales().op("nope")


def test_converter_helpers():
    scales = _example_scales()
    weight = torch.randn(4, 3, 3, 3)
    codes, scale, axis = weight_grid(scales, "enc.conv", weight)
    assert codes.dtype == torch.int8 and axis == 0 and scale.shape == (4,)
    assert torch.equal(codes.float() * scale.reshape(4, 1, 1, 1),
                       fake_quant_weight(weight, scales.weight_quantizer("enc.conv")))
    ranges = activation_ranges(scales)
    assert ranges["enc.conv"]["input"] == pytest.approx((-128 * 0.05 + 0.2, 127 * 0.05 + 0.2))
    assert ranges["enc.fc2"]["input"] == pytest.approx((-0.17, 31 * 0.1))
    assert ranges["enc.attn.av_matmul"]["a"] == pytest.approx((0.0, 1.0))
    assert ranges["enc.attn.av_matmul"]["b"] == pytest.approx((-128 * 0.2, 127 * 0.2))
    # the per-tensor asymmetric approximation covers exactly that range with 2^bits levels
    approx = mobile_approximation(scales).activation_quantizer("enc.fc2")
    x = torch.linspace(-0.17, 3.1, 1000)
    assert (fake_quant_activation(x, approx) - x).abs().max() <= approx.scale / 2 + 1e-6


def test_tflite_refuses_scales_it_cannot_place(small_model, tmp_path):
    """Checked before any export: another checkpoint's scales, a precision without activation ranges,
    ops the model does not have, and bit widths LiteRT's int8 cannot hold."""
    from tinysam_mobile.converters import tflite
    from tinysam_mobile.converters.config import ConvertConfig
    from tinysam_mobile.errors import TinySamError

    layer = {"weight": Quantizer("uniform", 8, torch.tensor([[0.01]])),
             "input": Quantizer("uniform", 8, torch.tensor([0.1]))}
    cases = [
        (ScalesFile("another-checkpoint", "tinysam-ptq", {}), "w8a8", "calibrated for checkpoint another-checkp"),
        (ScalesFile("seeded-0", "tinysam-ptq", {}), "fp16", "applies to the w8a8 precision of tflite, not fp16"),
        (ScalesFile("seeded-0", "tinysam-ptq", {"image_encoder.nope": OpScales("linear", layer)}), "w8a8",
         "ops this model does not have: image_encoder.nope"),
        (ScalesFile("seeded-0", "tinysam-ptq", {"mask_decoder.iou_prediction_head.layers.0": OpScales("linear", {
            **layer, "weight": Quantizer("uniform", 6, torch.tensor([[0.01]]))})}), "w8a8", "8-bit scales"),
    ]
    for i, (scales, precision, message) in enumerate(cases):
        path = save_scales(scales, tmp_path / f"s{i}.safetensors")
        config = ConvertConfig(target="tflite", precision=precision, scales=path)
        with pytest.raises(TinySamError, match=message):
            tflite.convert(small_model, config, tmp_path, "seeded-0")


def test_mask_iou_matches_hand_count():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True   # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert mask_ious(a[None], b[None])[0] == pytest.approx(4 / 12)
    assert mask_ious(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool))[0] == 1.0


# --- end to end on a small model -------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The search runs many small ops: one thread avoids oversubscribing a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def small_ptq(small_calibration):
    from dataclasses import replace

    from tinysam_mobile.calibration.search import search_scales

    _, config, captured = small_calibration
    return (search_scales(captured, config, "seeded-0"),
            search_scales(captured, replace(config, bits=6), "seeded-0"))


@pytest.fixture(scope="module")
def held_out_scenes():
    from tinysam_mobile.calibration.dataset import HELD_OUT_SCENE_SEED, generated_scene, prompted_images

    return prompted_images([generated_scene(HELD_OUT_SCENE_SEED + i) for i in range(3)], 256, 3, 4, seed=5)

def test_capture_covers_every_executed_op(small_model, small_calibration):
    samples, config, captured = small_calibration
    ops = quantizable_ops(small_model)
    assert set(captured) == set(ops)  # every conv, deconv, linear and matmul runs in encode + decode
    kinds = {data.kind for data in captured.values()}
    assert kinds == {"conv", "deconv", "linear", "matmul"}
    assert captured["image_encoder.layers.1.blocks.0.mlp.fc2"].post_gelu
    assert not captured["image_encoder.layers.1.blocks.0.attn.qkv"].post_gelu
    assert captured["image_encoder.layers.1.blocks.0.attn.av_matmul"].post_softmax
    assert not captured["image_encoder.layers.1.blocks.0.attn.qk_matmul"].post_softmax
    for data in captured.values():
        assert len(data.operands) == len(data.grad2) == len(samples)


def test_ranges_cover_the_whole_activation_not_only_the_samples(small_model, small_calibration):
    """alpha = 1 (min/max) is max |x| over every position the calibration ran, measured here with a plain
    forward hook; the sampled 8 x 8 windows of a convolution's input hold less of it."""
    from tinysam_mobile.calibration.search import minmax_scales

    samples, config, captured = small_calibration
    name = "image_encoder.layers.0.blocks.0.conv1.c"
    seen = []
    handle = dict(small_model.named_modules())[name].register_forward_pre_hook(
        lambda module, inputs: seen.append(inputs[0].detach().abs().max()))
    try:
        with torch.no_grad():
            for sample in samples:
                small_model.encode(sample.image)
    finally:
        handle.remove()
    whole = float(max(seen))
    sampled = float(captured[name].cat()[0][0].abs().max())
    assert sampled < whole
    scale = minmax_scales(captured, 8, "seeded-0").ops[name].quantizers["input"].scale
    assert float(scale) == pytest.approx(whole / 128, rel=1e-6)


def test_fake_quant_fidelity_on_generated_scenes(small_model, small_ptq, small_calibration, held_out_scenes):
    """W8A8 fake-quant stays close to FP32; W6A6 is further away; min/max is worse than the search."""
    from tinysam_mobile.calibration.report import fidelity, torch_predict
    from tinysam_mobile.calibration.search import minmax_scales

    _, _, captured = small_calibration
    ptq8, ptq6 = small_ptq
    variants = {"ptq8": ptq8, "ptq6": ptq6, "minmax8": minmax_scales(captured, 8, ptq8.checkpoint_sha256)}
    results = fidelity(torch_predict(small_model),
                       {k: torch_predict(fake_quant_model(small_model, s)) for k, s in variants.items()},
                       held_out_scenes, small_model.config.img_size)
    assert results["ptq8"].mask_iou_all > 0.9
    assert results["ptq8"].mask_iou_all > results["ptq6"].mask_iou_all
    assert results["ptq8"].num_masks == 3 * sum(s.coords.shape[0] for s in held_out_scenes)


def test_fake_quant_model_quantizes_weights_on_the_grid(small_model, small_ptq):
    ptq8, _ = small_ptq
    quantized = fake_quant_model(small_model, ptq8)
    name = "image_encoder.layers.2.blocks.0.mlp.fc1"
    original = dict(small_model.named_modules())[name].weight
    q = dict(quantized.named_modules())[name].weight
    scale = ptq8.weight_scale(name)
    codes = q / scale
    assert torch.allclose(codes, codes.round(), atol=1e-3) and not torch.equal(q, original)
    assert small_model.state_dict().keys() == quantized.state_dict().keys()


def test_default_image_sets_load_and_do_not_overlap():
    from tinysam_mobile.calibration.dataset import default_images

    calibration = default_images(8)
    held_out = default_images(8, held_out=True)
    assert len(calibration) == len(held_out) == 8
    assert sum(masks is not None for _, masks in calibration) == 4
    seen = {rgb.tobytes() for rgb, _ in calibration}
    assert not any(rgb.tobytes() in seen for rgb, _ in held_out)


def test_folder_images_are_shrunk_to_the_model_size_as_they_are_read(tmp_path):
    """A folder of large photos must not be held at full size, and shrinking must not change what the
    encoder sees: preprocessing the shrunk image gives the same input, bit for bit."""
    from PIL import Image

    from tinysam_mobile.calibration.dataset import folder_images
    from tinysam_mobile.utils.transforms import preprocess

    rng = np.random.default_rng(0)
    large = rng.integers(0, 256, (900, 1500, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (100, 80, 3), dtype=np.uint8)
    Image.fromarray(large).save(tmp_path / "a.png")
    Image.fromarray(small).save(tmp_path / "b.png")
    shrunk, untouched = folder_images(tmp_path, limit=8, max_side=256)
    assert shrunk.shape == (154, 256, 3)
    np.testing.assert_array_equal(untouched, small)
    np.testing.assert_array_equal(preprocess(shrunk, 256)[0], preprocess(large, 256)[0])


def test_capture_sums_squared_weight_gradients_of_every_layer(small_model, small_calibration):
    """What sensitivity-weighted palettes weigh each weight by: one sum of squared gradients per conv /
    deconv / linear weight, shaped like it, non-negative and not all zero; matmuls have no weights."""
    _, _, captured = small_calibration
    modules = dict(small_model.named_modules())
    silent = []
    for name, data in captured.items():
        if data.kind == "matmul":
            assert data.weight_grad2 is None
            continue
        grad2 = data.weight_grad2
        assert grad2 is not None and grad2.shape == modules[name].weight.shape, name
        assert (grad2 >= 0).all(), name
        if grad2.max() == 0:
            silent.append(name)
    # Exactly the weights no gradient reaches: seeded TinyViT zero-initialises the BatchNorm after each
    # MBConv's last conv (stage 0; later stages are attention blocks), which silences the block's three
    # convs, and the calibration decodes multimask outputs only, which never use mask token 0's MLP.
    mbconvs = {f"image_encoder.layers.0.blocks.{b}.conv{c}.c" for b in (0, 1) for c in (1, 2, 3)}
    token0 = {f"mask_decoder.output_hypernetworks_mlps.0.layers.{i}" for i in range(3)}
    assert set(silent) == mbconvs | token0
    assert all(p.requires_grad and p.grad is None for p in small_model.parameters())


def test_weight_sensitivities_round_trip_through_the_scales_file(tmp_path):
    scales = _example_scales()
    scales.weight_sensitivity = {"enc.fc2": torch.tensor([[1e-20, 3.0], [0.0, 2.5e-7]])}
    loaded = load_scales(save_scales(scales, tmp_path / "s.safetensors"))
    # bfloat16: 8 bits of mantissa, fp32's exponent range (tiny squared gradients survive)
    torch.testing.assert_close(loaded.weight_sensitivity["enc.fc2"], scales.weight_sensitivity["enc.fc2"],
                               rtol=1 / 128, atol=0)
    assert load_scales(save_scales(_example_scales(), tmp_path / "t.safetensors")).weight_sensitivity == {}
