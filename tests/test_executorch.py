"""ExecuTorch target: .pte programs lowered to XNNPACK (fp32, PT2E int8 / w8a8) or Core ML, run by ExecuTorch's
Python runtime. Reduced-size (256) seeded model with a small decoder range: these test the conversion and
runner logic; the 1024 figures of the demo model are in docs/executorch.md."""

import json
import shutil

import numpy as np
import pytest
import torch

from tinysam_mobile.converters import executorch as et_target
from tinysam_mobile.converters.config import ConvertConfig
from tinysam_mobile.converters.manifest import load_manifest
from tinysam_mobile.errors import ArtifactError, PromptError, TinySamError
from tinysam_mobile.runners import TorchRunner
from tinysam_mobile.runners.executorch_runner import ExecuTorchRunner
from tinysam_mobile.validation import THRESHOLDS, ParityConfig, measure_parity

from conftest import predictable_scales, tampered_copy
from test_cli import assert_one_line_error, run_cli

SMALL_MAX_TOKENS = 3
SMALL_BATCH = 4


def _convert(tmp_path_factory, model, precision: str, backend: str = "xnnpack", **options):
    out = tmp_path_factory.mktemp(f"executorch_{backend}_{precision}")
    config = ConvertConfig(target="executorch", precision=precision, backend=backend, max_tokens=SMALL_MAX_TOKENS,
                           everything_batch=SMALL_BATCH, **options)
    et_target.convert(model, config, out, "seeded-0")
    return out


@pytest.fixture(scope="module")
def fp32_dir(tmp_path_factory, small_model):
    return _convert(tmp_path_factory, small_model, "fp32")


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory, small_model):
    return _convert(tmp_path_factory, small_model, "int8")


@pytest.fixture(scope="module")
def w8a8_dir(tmp_path_factory, small_model, calibration_photos):
    return _convert(tmp_path_factory, small_model, "w8a8", calibration_images=calibration_photos)


@pytest.fixture(scope="module")
def parity_images(photo):
    from tinysam_mobile.calibration.dataset import default_images

    return [(photo, None)] + default_images(2, held_out=True)[1:]  # a photo and a generated scene


def _decoder_record(folder):
    return next(r for r in load_manifest(folder)["artifacts"] if r["role"] == "decoder")


def test_manifest_contract_and_delegation(fp32_dir):
    manifest = load_manifest(fp32_dir)
    assert manifest["target"] == "executorch" and manifest["backend"] == "xnnpack"
    assert manifest["prompt_tokens"] == {"min": 1, "max": SMALL_MAX_TOKENS}
    encoder = manifest["artifacts"][0]["methods"]["encode"]
    assert encoder["inputs"] == [{"name": "image", "dtype": "float32", "shape": [1, 256, 256, 3]}]
    methods = _decoder_record(fp32_dir)["methods"]
    assert set(methods) == {"decode", "decode_batch"}
    names = [spec["name"] for spec in methods["decode"]["inputs"]]
    assert names == ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"]
    assert methods["decode"]["inputs"][1]["shape"] == [1, "tokens", 2]  # the dynamic token axis
    assert methods["decode_batch"]["inputs"][1]["shape"] == [SMALL_BATCH, 2, 2]
    for method in (encoder, *methods.values()):
        assert method["delegate"] == "XnnpackBackend" and method["delegated_subgraphs"] > 0
        # XNNPACK's partitioner has no layer norm: each one runs on the portable kernels
        assert method["outside_delegate"]["aten_native_layer_norm_default"] > 0
        assert all(op.startswith(("aten_", "dim_order_ops_")) for op in method["outside_delegate"])
    # TinyViT's attention matmuls lowered as 3-D bmm: no expand_copy left between the encoder's partitions
    assert "aten_expand_copy_default" not in encoder["outside_delegate"]


def test_every_token_count_matches_pytorch_exactly_sized(fp32_dir, small_model):
    """One dynamic method takes each count 1..max_tokens at its own size; more tokens are refused."""
    runner, reference = ExecuTorchRunner(fp32_dir), TorchRunner(small_model)
    assert (runner.min_tokens, runner.max_tokens, runner.batch_size) == (1, SMALL_MAX_TOKENS, SMALL_BATCH)
    rng = np.random.default_rng(0)
    embedding = rng.standard_normal((1, 256, 16, 16)).astype(np.float32)
    for tokens in range(1, SMALL_MAX_TOKENS + 1):
        coords = (rng.random((1, tokens, 2)) * 256).astype(np.float32)
        labels = rng.choice([-1.0, 0.0, 1.0, 2.0, 3.0], (1, tokens)).astype(np.float32)
        mask, has_mask = rng.standard_normal((1, 1, 64, 64)).astype(np.float32), np.ones(1, np.float32)
        got, want = runner.decode(embedding, coords, labels, mask, has_mask), reference.decode(
            embedding, coords, labels, mask, has_mask)
        np.testing.assert_allclose(got[0], want[0], atol=1e-4)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)
    with pytest.raises(PromptError, match="decoder takes 1 to 3"):
        runner.decode(embedding, np.zeros((1, 4, 2), np.float32), np.ones((1, 4), np.float32),
                      np.zeros((1, 1, 64, 64), np.float32), np.zeros(1, np.float32))


def test_batched_decoder_matches_pytorch(fp32_dir, small_model):
    """Everything mode: 2-token prompts through 'decode_batch', the last call filled up."""
    runner, reference = ExecuTorchRunner(fp32_dir), TorchRunner(small_model)
    rng = np.random.default_rng(1)
    embedding = rng.standard_normal((1, 256, 16, 16)).astype(np.float32)
    count = SMALL_BATCH + 3
    coords = np.zeros((count, 2, 2), np.float32)
    coords[:, 0] = rng.random((count, 2)) * 256
    labels = np.tile(np.array([[1.0, -1.0]], np.float32), (count, 1))
    arrays = (coords, labels, np.zeros((count, 1, 64, 64), np.float32), np.zeros(count, np.float32))
    logits, iou = runner.decode(embedding, *arrays)
    want_logits, want_iou = reference.decode(embedding, *arrays)
    assert logits.shape == (count, 3, 64, 64)
    np.testing.assert_allclose(logits, want_logits, atol=1e-4)
    np.testing.assert_allclose(iou, want_iou, atol=1e-5)


def test_fp32_parity(fp32_dir, small_model, parity_images):
    figures = measure_parity(ExecuTorchRunner(fp32_dir), TorchRunner(small_model), parity_images,
                             ParityConfig(prompts_per_image=3))
    assert figures["embedding_cosine"]["min"] > 0.9999
    assert figures["mask_iou"]["mean"] >= THRESHOLDS["fp32"]
    assert sorted(figures["mask_iou_by_tokens"]) == list(range(1, SMALL_MAX_TOKENS + 1))


def test_int8_quantizes_the_linear_layers_dynamically_and_stays_close(int8_dir, fp32_dir, small_model, parity_images):
    """int8: per-channel int8 weights of the linear layers, activations quantized at run time;
    XNNPACK takes the window padding (nothing static to refuse), and the masks stay near FP32 PyTorch."""
    manifest = load_manifest(int8_dir)
    assert manifest["precision"] == "int8" and "dynamic" in manifest["quantization"]["method"]
    sizes = {r["role"]: r["size_bytes"] for r in load_manifest(fp32_dir)["artifacts"]}
    for record in manifest["artifacts"]:
        assert record["size_bytes"] < 0.6 * sizes[record["role"]], record["role"]
    assert "aten_constant_pad_nd_default" not in manifest["artifacts"][0]["methods"]["encode"]["outside_delegate"]
    figures = measure_parity(ExecuTorchRunner(int8_dir), TorchRunner(small_model), parity_images,
                             ParityConfig(prompts_per_image=3))
    assert figures["embedding_cosine"]["mean"] > 0.99
    assert figures["mask_iou"]["mean"] > 0.9


def test_quantized_layers_leave_convolutions_and_image_to_token_attention_float(small_model):
    """Which nodes int8 and w8a8 hand to the quantizer: every linear layer but the decoder's image-to-token
    attention's, and for w8a8 of the convolutions only the encoder neck's."""
    from tinysam_mobile.converters.export_modules import PixelEncoder, PromptDecoder, decoder_sample_inputs, export_copy

    model = export_copy(small_model, bmm_encoder_matmuls=True)
    encoder = torch.export.export(PixelEncoder(model).eval(), (), kwargs={"image": torch.rand(1, 256, 256, 3)})
    decoder = torch.export.export(PromptDecoder(model).eval(), (), kwargs=decoder_sample_inputs(256, 2, 3))
    convolution, linear = torch.ops.aten.conv2d.default, torch.ops.aten.linear.default
    encoder_convs = [n for n in encoder.graph.nodes if n.target == convolution]
    chosen_convs = [et_target.module_path(n) for n in encoder_convs if et_target.quantized_node(n, "w8a8")]
    assert chosen_convs == ["image_encoder.neck.0", "image_encoder.neck.2"] and len(encoder_convs) > 10
    assert not any(et_target.quantized_node(n, "int8") for n in encoder_convs)
    for precision in ("int8", "w8a8"):
        decoder_linears = [n for n in decoder.graph.nodes if n.target == linear]
        left_float = [n for n in decoder_linears if not et_target.quantized_node(n, precision)]
        depth = len(small_model.mask_decoder.transformer.layers)
        assert len(left_float) == 4 * depth  # q, k, v and out projections of each layer's image-to-token attention
        assert all("cross_attn_image_to_token" in et_target.module_path(n) for n in left_float)
        assert all(et_target.quantized_node(n, precision) for n in encoder.graph.nodes if n.target == linear)


@pytest.mark.parametrize("precision", ["int8", "w8a8"])
def test_quantizer_takes_exactly_the_chosen_layers(small_model, precision):
    """The quantizer's filter also sees each convolution's weight and bias nodes: the prepared encoder
    observes the weight of every layer quantized_node chooses (w8a8: the neck's convolutions included) and
    of no other."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from tinysam_mobile.converters.export_modules import PixelEncoder, export_copy

    model = export_copy(small_model, bmm_encoder_matmuls=True)
    sample = {"image": torch.rand(1, 256, 256, 3) * 255}
    encoder = torch.export.export(PixelEncoder(model).eval(), (), kwargs=sample).module()
    layers = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)
    chosen = {et_target.module_path(n) for n in encoder.graph.nodes
              if n.target in layers and et_target.quantized_node(n, precision)}
    prepared = prepare_pt2e(encoder, et_target._quantizer(precision))
    observed = {et_target.module_path(n) for n in prepared.graph.nodes
                if n.target in layers and n.args[1].op == "call_module"}
    assert ({"image_encoder.neck.0", "image_encoder.neck.2"} <= chosen) == (precision == "w8a8")
    assert observed == chosen


def test_w8a8_quantizes_the_linear_layers_and_neck_statically_and_stays_close(w8a8_dir, fp32_dir, small_model,
                                                                              parity_images):
    """PT2E static int8 activations on the linear layers and the neck: the programs shrink, and the masks
    stay near FP32 PyTorch."""
    manifest = load_manifest(w8a8_dir)
    assert manifest["precision"] == "w8a8" and "static" in manifest["quantization"]["method"]
    assert "neck's convolutions" in manifest["quantization"]["quantized"]
    sizes = {r["role"]: r["size_bytes"] for r in load_manifest(fp32_dir)["artifacts"]}
    for record in manifest["artifacts"]:
        assert record["size_bytes"] < 0.6 * sizes[record["role"]], record["role"]
    outside = manifest["artifacts"][0]["methods"]["encode"]["outside_delegate"]
    assert outside["aten_constant_pad_nd_default"] > 0  # XNNPACK refuses the quantized window padding at load
    figures = measure_parity(ExecuTorchRunner(w8a8_dir), TorchRunner(small_model), parity_images,
                             ParityConfig(prompts_per_image=3))
    assert figures["embedding_cosine"]["mean"] > 0.95
    assert figures["mask_iou"]["mean"] > 0.8


def test_tampered_program_refused(fp32_dir, tmp_path):
    tampered = tampered_copy(fp32_dir, "decoder.pte", tmp_path / "tampered")
    with pytest.raises(ArtifactError, match="does not match its manifest hash"):
        ExecuTorchRunner(tampered)


def test_wrong_target_folder_refused(fp32_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(fp32_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "target": "tflite"}))
    with pytest.raises(ArtifactError, match="not executorch"):
        ExecuTorchRunner(other)


def test_backend_and_precision_checked(small_model, tmp_path):
    with pytest.raises(TinySamError, match="takes precision fp32 or int8 or w8a8, not fp16"):
        et_target.convert(small_model, ConvertConfig(target="executorch", precision="fp16"), tmp_path, "seeded-0")
    with pytest.raises(TinySamError, match="unknown ExecuTorch backend 'vulkan'"):
        et_target.convert(small_model, ConvertConfig(target="executorch", precision="fp32", backend="vulkan"),
                          tmp_path, "seeded-0")


def test_cli_refuses_backend_for_other_targets(tmp_path):
    assert_one_line_error(run_cli("convert", "--target", "onnx", "--backend", "xnnpack", "--out", tmp_path / "o"),
                          "--backend applies to --target executorch only")


def test_segment_through_executorch(fp32_dir, tmp_path):
    """The CLI: `segment --backend executorch` on the reduced-size program (the demo model's 1024 weights differ,
    so the checkpoint is the seeded one the program came from: segment needs none for artifacts)."""
    from PIL import Image
    import skimage.data

    photo = tmp_path / "chelsea.png"
    Image.fromarray(skimage.data.chelsea()).save(photo)
    result = run_cli("segment", photo, "--point", "230,140", "--backend", "executorch", "--artifacts", fp32_dir,
                     "--out", tmp_path / "mask.png")
    assert result.returncode == 0, result.stderr
    assert "backend executorch" in result.stdout and (tmp_path / "mask.png").exists()


def test_coreml_delegate_program_loads_but_runs_on_apple_only(tmp_path_factory, small_model):
    """--backend coreml: the whole graph goes into one Core ML payload per method (an fp16 ML Program inside
    the .pte). Linux has no Core ML runtime: the program loads and lists its methods; the runner refuses it."""
    from executorch.runtime import Runtime

    folder = _convert(tmp_path_factory, small_model, "fp16", backend="coreml")
    manifest = load_manifest(folder)
    assert manifest["backend"] == "coreml" and "Apple devices only" in manifest["runs_on"]
    encoder = manifest["artifacts"][0]["methods"]["encode"]
    assert encoder["delegate"] == "CoreMLBackend" and encoder["delegated_subgraphs"] == 1
    assert encoder["delegate_payload_bytes"] > 1_000_000 and encoder["outside_delegate"] == {}
    for method in _decoder_record(folder)["methods"].values():
        assert method["delegated_subgraphs"] == 1 and method["outside_delegate"] == {}
    assert Runtime.get().load_program(folder / "decoder.pte").method_names == {"decode", "decode_batch"}
    if not Runtime.get().backend_registry.is_available("CoreMLBackend"):
        with pytest.raises(TinySamError, match="CoreMLBackend delegate, which this ExecuTorch runtime lacks"):
            ExecuTorchRunner(folder)


# --- TinySAM PTQ scales on the PT2E observers (the 256-px seeded model: about where scales land) ------------

def _dequantize_scale(graph, node, index):
    """The scale a converted graph's node argument is dequantized with (per channel for weights)."""
    import functools

    dequantize = node.args[index]
    assert "dequantize" in str(dequantize.target), f"{node} argument {index} is not quantized"
    scale = dequantize.args[1]
    if isinstance(scale, torch.fx.Node):
        return functools.reduce(getattr, scale.target.split("."), graph).numpy()
    return np.asarray(scale)


def _nodes_of(graph, module: str, op):
    return [n for n in graph.graph.nodes if n.op == "call_function" and n.target == op
            and list(n.meta.get("nn_module_stack", {}).values())[-1][0] == module]


@pytest.fixture(scope="module")
def ptq_encoder(small_model):
    """The encoder quantized with the predictable scales: (converted graph, report, scales)."""
    from tinysam_mobile.converters.export_modules import PixelEncoder, export_copy
    from tinysam_mobile.converters.ptq_placement import ScalesReport

    scales = predictable_scales(small_model)
    report = ScalesReport("ExecuTorch")
    sample = {"image": torch.rand(1, 256, 256, 3) * 255}
    encoder = PixelEncoder(export_copy(small_model, bmm_encoder_matmuls=True)).eval()
    with torch.no_grad():
        graph = et_target._quantized(encoder, sample, None, [sample], "w8a8", (small_model, scales, report))
    return graph, report, scales


def test_ptq_weight_scales_are_tinysams(ptq_encoder, small_model):
    """The int8 weight's scale is the PTQ scale: per output channel for the neck's convolution, the one
    per-layer scale on every channel for a linear layer (XNNPACK's per-channel grid holding it)."""
    graph, report, scales = ptq_encoder
    conv = small_model.image_encoder.neck[0]
    (node,) = _nodes_of(graph, "image_encoder.neck.0", torch.ops.aten.conv2d.default)
    want = (0.8 * conv.weight.abs().amax(dim=(1, 2, 3)) / 127).detach().numpy()
    np.testing.assert_allclose(_dequantize_scale(graph, node, 1), want, rtol=1e-5)
    fc1 = small_model.image_encoder.layers[1].blocks[0].mlp.fc1
    (node,) = _nodes_of(graph, "image_encoder.layers.1.blocks.0.mlp.fc1", torch.ops.aten.linear.default)
    want = float(0.8 * fc1.weight.abs().max() / 127)
    np.testing.assert_allclose(_dequantize_scale(graph, node, 1), np.full(fc1.out_features, want), rtol=1e-5)
    assert report.weights["image_encoder.neck.0"] == report.weights["image_encoder.layers.1.blocks.0.mlp.fc1"] \
        == "per_channel"


def test_ptq_activation_ranges_set_the_input_scales(ptq_encoder):
    graph, report, scales = ptq_encoder
    module = "image_encoder.layers.1.blocks.0.mlp.fc1"
    low, high = scales.activation_range(module)
    (node,) = _nodes_of(graph, module, torch.ops.aten.linear.default)
    assert report.activations[(module, "input")] == set()  # its own tensor (the MLP's layer norm output)
    want = (max(high, 0.0) - min(low, 0.0)) / 255  # int8 affine, zero inside the range
    np.testing.assert_allclose(_dequantize_scale(graph, node, 0), want, rtol=1e-5)


def test_ptq_w8a8_encoder_loads_and_runs_in_xnnpack(small_model, small_calibration, tmp_path):
    """Copy ops (transpose, reshape) share one observer under two names: the placed ranges must replace it
    under both, or the transpose gets different input and output qparams and XNNPACK refuses the program
    when it loads. Scales of real ranges (min/max of a capture), so the int8 program should stay close."""
    from executorch.runtime import Runtime

    from tinysam_mobile.calibration.search import minmax_scales
    from tinysam_mobile.converters.export_modules import PixelEncoder, export_copy
    from tinysam_mobile.converters.ptq_placement import ScalesReport

    scales = minmax_scales(small_calibration[2], 8, "seeded-0")
    image = {"image": torch.rand(1, 256, 256, 3, generator=torch.Generator().manual_seed(0)) * 255}
    encoder = PixelEncoder(export_copy(small_model, bmm_encoder_matmuls=True)).eval()
    config = ConvertConfig(target="executorch", precision="w8a8", backend="xnnpack")
    with torch.no_grad():
        graph = et_target._quantized(encoder, image, None, [image], "w8a8",
                                     (small_model, scales, ScalesReport("ExecuTorch")))
        et_target._lower({"encode": torch.export.export(graph, (), kwargs=image)}, config, tmp_path / "encoder.pte")
        quantized, float_ = graph(**image)[et_target.ENCODER_OUTPUT], encoder(**image)[et_target.ENCODER_OUTPUT]
    (runtime,) = Runtime.get().load_program(tmp_path / "encoder.pte").load_method("encode").execute([image["image"]])
    cosine = lambda a, b: float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))  # noqa: E731
    assert cosine(runtime, quantized) > 0.99  # XNNPACK's integer kernels vs the quantized graph in PyTorch
    assert cosine(runtime, float_) > 0.98


def test_ptq_scales_report_every_encoder_op(ptq_encoder, small_model):
    """Every encoder entry is placed (the linear layers and the neck's convolutions) or counted as kept
    float by the recipe (the other convolutions, the attention matmuls)."""
    from tinysam_mobile.calibration.capture import quantizable_ops

    _, report, _ = ptq_encoder
    encoder_ops = {name: kind for name, (kind, _) in quantizable_ops(small_model).items()
                   if name.startswith("image_encoder.")}
    quantized = {name for name, kind in encoder_ops.items()
                 if kind == "linear" or name.startswith("image_encoder.neck.")}
    assert {m for m, _ in report.activations} == set(report.weights) == quantized
    assert report.left_float == set(encoder_ops) - quantized
    assert report.summary()["left_in_float_by_recipe"] == len(encoder_ops) - len(quantized) > 30


def test_ptq_scales_report_every_decoder_op(small_model):
    """In the decoder a linear layer's output observer reaches the attention matmul's value operand: the
    matmul (no weight, outside the recipe) is still counted as kept float, like the convolutions and the
    image-to-token attention's projections; every other linear layer is placed."""
    from tinysam_mobile.calibration.capture import quantizable_ops
    from tinysam_mobile.converters.export_modules import PromptDecoder, decoder_sample_inputs, export_copy
    from tinysam_mobile.converters.ptq_placement import ScalesReport

    scales = predictable_scales(small_model)
    report = ScalesReport("ExecuTorch")
    decoder = PromptDecoder(export_copy(small_model)).eval()
    sample = decoder_sample_inputs(256, 1, 2)
    with torch.no_grad():
        et_target._quantized(decoder, sample, None, [sample], "w8a8", (small_model, scales, report))
    decoder_ops = {name: kind for name, (kind, _) in quantizable_ops(small_model).items()
                   if name.startswith(("mask_decoder.", "prompt_encoder."))}
    quantized = {name for name, kind in decoder_ops.items()
                 if kind == "linear" and "cross_attn_image_to_token" not in name}
    assert set(report.weights) == quantized
    assert report.left_float == set(decoder_ops) - quantized  # convolutions, matmuls, image-to-token attention
    assert any("av_matmul" in name for name in report.left_float)


def test_ptq_scales_refused_for_other_precisions_and_checkpoints(small_model, tmp_path):
    from tinysam_mobile.calibration.scales import save_scales

    path = save_scales(predictable_scales(small_model), tmp_path / "scales.safetensors")
    with pytest.raises(TinySamError, match="--scales applies to the w8a8 precision of executorch, not fp32"):
        et_target.convert(small_model, ConvertConfig(target="executorch", precision="fp32", scales=path),
                          tmp_path / "a", "seeded-0")
    with pytest.raises(TinySamError, match="was calibrated for checkpoint"):
        et_target.convert(small_model, ConvertConfig(target="executorch", precision="w8a8", scales=path),
                          tmp_path / "b", "another-checkpoint")
