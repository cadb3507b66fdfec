"""ONNX target: SAM's decoder contract with dynamic prompt and point axes, run by ONNX Runtime."""

import numpy as np
import pytest

from tinysam_mobile.converters import onnx as onnx_target
from tinysam_mobile.converters.config import ConvertConfig
from tinysam_mobile.converters.manifest import load_manifest
from tinysam_mobile.runners import TorchRunner
from tinysam_mobile.runners.onnx_runner import OnnxRunner


@pytest.fixture(scope="module")
def onnx_fp32_dir(tmp_path_factory, small_model):
    out = tmp_path_factory.mktemp("onnx_fp32")
    onnx_target.convert(small_model, ConvertConfig(target="onnx", precision="fp32"), out, "seeded-0")
    return out


def test_manifest_declares_dynamic_axes(onnx_fp32_dir):
    manifest = load_manifest(onnx_fp32_dir)
    decoder = manifest["artifacts"][1]
    coords = decoder["inputs"]["point_coords"]["shape"]
    assert isinstance(coords[0], str) and isinstance(coords[1], str) and coords[2] == 2
    assert manifest["artifacts"][0]["inputs"]["image"]["shape"] == [1, 256, 256, 3]
    assert manifest["prompt_tokens"] == {"min": 1, "max": 64}


@pytest.mark.parametrize("prompts,points", [(1, 2), (5, 2), (3, 7)])
def test_matches_pytorch_for_any_prompt_and_point_count(onnx_fp32_dir, small_model, photo, prompts, points):
    from tinysam_mobile.utils.transforms import preprocess

    runner, reference = OnnxRunner(onnx_fp32_dir), TorchRunner(small_model)
    image, _ = preprocess(photo, 256)
    embedding = runner.encode(image)
    np.testing.assert_allclose(embedding, reference.encode(image), atol=1e-3)
    rng = np.random.default_rng(prompts)
    coords = (rng.random((prompts, points, 2)) * 256).astype(np.float32)
    labels = rng.choice([-1.0, 0.0, 1.0, 2.0, 3.0], (prompts, points)).astype(np.float32)
    mask = rng.standard_normal((prompts, 1, 64, 64)).astype(np.float32)
    has_mask = (np.arange(prompts) % 2).astype(np.float32)
    got = runner.decode(embedding, coords, labels, mask, has_mask)
    want = reference.decode(embedding, coords, labels, mask, has_mask)
    np.testing.assert_allclose(got[0], want[0], atol=1e-3)
    np.testing.assert_allclose(got[1], want[1], atol=1e-4)


def test_graphs_store_no_duplicate_or_positional_encoding_constants(onnx_fp32_dir, small_model):
    """File size: identical initializers (one relative-offset table per TinyViT block) are stored once,
    and the decoder computes its dense positional encoding instead of storing the (1, 256, h, w) table."""
    import onnx
    from onnx import numpy_helper

    for name in (onnx_target.ENCODER_FILE, onnx_target.DECODER_FILE):
        graph = onnx.load(str(onnx_fp32_dir / name)).graph
        contents = [numpy_helper.to_array(t) for t in graph.initializer]
        large = [(a.dtype.str, a.shape, a.tobytes()) for a in contents if a.size > 1024]
        assert len(large) == len(set(large)), name
    pe_shape = tuple(small_model.prompt_encoder.dense_pe().shape)
    assert all(tuple(t.dims) != pe_shape for t in onnx.load(str(onnx_fp32_dir / onnx_target.DECODER_FILE)).graph.initializer)


def test_benchmark_runtimes_keeps_two_folders_of_one_precision_apart(onnx_fp32_dir):
    """Before / after a change: the same target and precision twice must give two rows, not one."""
    from tinysam_mobile.benchmarks.runtimes import measure_runtimes

    results = measure_runtimes(None, [onnx_fp32_dir, onnx_fp32_dir], runs=1, threads=1, batch=2)
    assert set(results["runtimes"]) == {"torch fp32 (eager)", "onnx fp32", f"onnx fp32 ({onnx_fp32_dir})"}


def test_int8_keeps_sensitive_nodes_float_and_weights_per_channel(tmp_path, small_model):
    """Dynamic int8 activations lose the encoder's convolution stages and the decoder's image-to-token
    attention (the sweeps beside onnx_target.NECK_WEIGHT_PREFIX and FLOAT_DECODER_WEIGHTS): int8 quantizes
    only the neck's convolutions, leaves the point Fourier features and the image-to-token projections float;
    the encoder's weights per channel, the decoder's per tensor (onnx_target.PER_CHANNEL)."""
    import onnx
    from onnx import numpy_helper

    onnx_target.convert(small_model, ConvertConfig(target="onnx", precision="int8"), tmp_path, "seeded-0")
    graph = onnx.load(str(tmp_path / onnx_target.ENCODER_FILE)).graph
    float_convs = [node.input[1] for node in graph.node if node.op_type == "Conv"]
    integer_convs = [node.input[1] for node in graph.node if node.op_type == "ConvInteger"]
    assert float_convs and not any(w.startswith(onnx_target.NECK_WEIGHT_PREFIX) for w in float_convs)
    assert len(integer_convs) == 2 and all(w.startswith(onnx_target.NECK_WEIGHT_PREFIX) for w in integer_convs)

    def weight_scale_sizes(graph) -> list[int]:  # one per MatMulInteger weight: > 1 means per channel
        weights = {node.input[1] for node in graph.node if node.op_type == "MatMulInteger"}
        scales = {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith("_scale")}
        return [scales[f"{w.removesuffix('_quantized')}_scale"].size for w in weights]

    decoder = onnx.load(str(tmp_path / onnx_target.DECODER_FILE)).graph
    encoder_sizes, decoder_sizes = weight_scale_sizes(graph), weight_scale_sizes(decoder)
    assert encoder_sizes and all(size > 1 for size in encoder_sizes)
    assert decoder_sizes and all(size == 1 for size in decoder_sizes)

    float_weights = {node.input[1] for node in decoder.node if node.op_type == "MatMul"}
    integer_weights = {node.input[1] for node in decoder.node if node.op_type == "MatMulInteger"}
    assert "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix" in float_weights
    # Two layers x q, k, v, out projections of the image-to-token attention, as float weights of their own.
    initializers = {i.name for i in decoder.initializer}
    image_to_token = [node for node in decoder.node if node.op_type == "MatMul" and node.input[1] in initializers
                      and "cross_attn_image_to_token" in str(node.metadata_props)]
    assert len(image_to_token) == 8
    assert len(integer_weights) >= 20  # the self-attention, token-to-image attention and MLP layers stay int8
