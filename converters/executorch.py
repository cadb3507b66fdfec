"""`convert --target executorch`: ExecuTorch programs (.pte) for PyTorch's on-device runtime.

Artifacts: encoder.pte (method 'encode': image (1, S, S, 3) RGB pixels 0-255 -> image_embeddings, the
LiteRT / ONNX input contract) and decoder.pte with two methods: 'decode' (one prompt of exactly T tokens,
T = 1..max_tokens, through a dynamic token axis: torch.export Dim with an upper bound, which XNNPACK runs
without padding) and 'decode_batch' (everything_batch prompts of 2 tokens, for everything mode). Inputs
are positional, in the order the manifest lists them.

Backends (the delegate the programs are lowered to, `--backend`):
- xnnpack (Android and iOS CPUs; ExecuTorch's Python runtime runs it on Linux): fp32; int8 and w8a8
  through PT2E with ExecuTorch's XNNPACKQuantizer, int8 per-channel symmetric weights both, on the linear
  layers (w8a8: and the encoder neck's convolutions; see quantized_node), the rest float. int8's activations
  are quantized at run time (dynamic), w8a8's are static int8 per tensor, calibrated on the images of the
  LiteRT w8a8 path (litert_calibration), optionally with TinySAM's PTQ scales.
- coreml (Apple devices only; fp16 ML Program inside the .pte): the program loads on Linux, but no Core ML
  runtime exists there to execute it.
Ops the partitioner leaves outside the delegate run on ExecuTorch's portable kernels; the manifest lists
them per method (`outside_delegate`).
"""

import functools
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..calibration.scales import ScalesFile
from ..errors import TinySamError
from ..modeling import TinySam
from . import executorch_scales
from .config import EVERYTHING_POINTS, IMAGE_TO_TOKEN_SCOPE, NECK_MODULE, ConvertConfig, token_counts
from .export_modules import (BATCH_SIGNATURE, DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUT, ENCODER_OUTPUT,
                             PixelEncoder, PromptDecoder, decoder_sample_inputs, export_copy)
from .manifest import artifact_record, prompt_tokens, write_manifest
from .ptq_placement import ScalesReport, check_entries, manifest_record

BACKENDS = {"xnnpack": ("fp32", "int8", "w8a8"), "coreml": ("fp16",)}
PRECISIONS = ("fp32", "int8", "w8a8", "fp16")
ENCODER_FILE = "encoder.pte"
DECODER_FILE = "decoder.pte"
ENCODER_METHOD = "encode"
DECODER_METHOD = "decode"
BATCH_METHOD = BATCH_SIGNATURE
DELEGATE_IDS = {"xnnpack": "XnnpackBackend", "coreml": "CoreMLBackend"}
# Operators as get_delegation_info names them (a quantize / dequantize XNNPACK left out would show too);
# getitem and symbolic shape arithmetic are not operators
EDGE_OP_PREFIXES = ("aten_", "dim_order_ops_", "quantized_decomposed_")

QUANTIZATION_METHODS = {
    "int8": {"method": "PT2E, XNNPACKQuantizer: int8 per-channel symmetric weights, int8 per-tensor activations "
             "quantized at run time (dynamic)", "quantized": "the linear layers but the decoder's image-to-token "
             "attention's; everything else float"},
    "w8a8": {"method": "PT2E, XNNPACKQuantizer: int8 per-channel symmetric weights, int8 per-tensor activations "
             "(static)", "quantized": "the linear layers but the decoder's image-to-token attention's, and the "
             "encoder neck's convolutions; everything else float"},
}

Sample = dict[str, torch.Tensor]


def check_backend(config: ConvertConfig) -> None:
    if config.backend not in BACKENDS:
        raise TinySamError(f"unknown ExecuTorch backend {config.backend!r}; choose one of {', '.join(BACKENDS)}")
    if config.precision not in BACKENDS[config.backend]:
        raise TinySamError(f"ExecuTorch {config.backend} takes precision {' or '.join(BACKENDS[config.backend])}, "
                           f"not {config.precision}")


def _decoder_dynamic(tokens, prompts=None) -> dict[str, Any]:
    """torch.export dynamic shapes of the decoder's inputs: the token axis, and the prompt axis if given."""
    batch = {0: prompts} if prompts is not None else {}
    return {"image_embeddings": None, "point_coords": {**batch, 1: tokens}, "point_labels": {**batch, 1: tokens},
            "mask_input": batch or None, "has_mask_input": batch or None}


def _decoder_shapes(config: ConvertConfig, size: int) -> dict[str, tuple[Sample, Any]]:
    """{method: (sample inputs, dynamic shapes)}: 'decode' with the token axis dynamic (1..max_tokens),
    'decode_batch' at fixed shapes."""
    from torch.export import Dim

    return {DECODER_METHOD: (decoder_sample_inputs(size, 1, config.max_tokens),
                             _decoder_dynamic(Dim("tokens", min=1, max=config.max_tokens))),
            BATCH_METHOD: (decoder_sample_inputs(size, config.everything_batch, EVERYTHING_POINTS), None)}


def _calibration_samples(model: TinySam, encoder: PixelEncoder, decoder: PromptDecoder, config: ConvertConfig,
                         progress) -> tuple[list[Sample], list[Sample]]:
    """(encoder samples, decoder samples of every token count and the everything-mode batch): the images,
    prompts and mask-prompt second passes of the LiteRT w8a8 calibration, through the float model."""
    from .litert_calibration import calibration_images, decoder_samples, encoder_samples

    size = model.config.img_size
    images = calibration_images(config, size)
    tensors = lambda sample: {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in sample.items()}  # noqa: E731
    encoder_inputs = [tensors(s) for s in encoder_samples(images, size)]
    progress("embedding the calibration images (float)")
    embeddings = [encoder(**s)[ENCODER_OUTPUT].numpy() for s in encoder_inputs]
    by_signature = decoder_samples(images, embeddings, config, size,
                                   lambda _signature, s: decoder(**tensors(s))[DECODER_OUTPUTS[0]].numpy())
    return encoder_inputs, [tensors(s) for listed in by_signature.values() for s in listed]


def module_path(node: torch.fx.Node) -> str:
    """The path of the innermost module torch.export recorded the node as called from ('' for none)."""
    stack = list(node.meta.get("nn_module_stack", {}).values())
    return stack[-1][0] if stack else ""


def quantized_node(node: torch.fx.Node, precision: str) -> bool:
    """Whether `precision` (int8 or w8a8) quantizes this linear / convolution node of an exported graph
    (XNNPACKQuantizer's filter): every linear layer but the decoder's image-to-token attention's, and for
    w8a8 the encoder neck's convolutions too (int8's dynamically quantized convolutions fail XNNPACK's
    lowering in executorch 1.5: ChannelsLastTaggedReshapePass, "required rank 4 tensor"). The quantizer asks
    about a layer's weight and bias nodes too, which carry no module path: those follow their layer."""
    if node.op == "get_attr":
        return True
    path = module_path(node)
    if node.target == torch.ops.aten.linear.default:
        return IMAGE_TO_TOKEN_SCOPE not in path
    return precision == "w8a8" and path.startswith(NECK_MODULE)


def _quantizer(precision: str):
    """ExecuTorch's XNNPACKQuantizer on quantized_node's layers: activations quantized at run time (int8) or
    with calibrated ranges (w8a8). Static int8 everywhere XNNPACK takes it (every convolution, the attention
    matmuls) kept 0.886 mean mask IoU on the demo model, these layers only 0.962 (docs/executorch.md)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=precision == "int8")
    return XNNPACKQuantizer().set_global(config).set_filter_function(functools.partial(quantized_node,
                                                                                       precision=precision))


def _quantized(module: torch.nn.Module, sample: Sample, dynamic: Any, calibration: list[Sample], precision: str,
               ptq: "tuple[TinySam, ScalesFile, ScalesReport] | None" = None) -> torch.nn.Module:
    """PT2E int8 or w8a8 (_quantizer), observed on `calibration` (int8: the weights only, any one sample);
    with ptq = (model, scales, report), TinySAM's PTQ scales replace the observed ranges where they map
    (executorch_scales) and are read back from the converted graph."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(module, (), kwargs=sample, dynamic_shapes=dynamic).module()
    prepared = prepare_pt2e(graph, _quantizer(precision))
    for inputs in calibration:
        prepared(**inputs)
    if ptq is None:
        return convert_pt2e(prepared)
    plan = executorch_scales.plan_observers(prepared, *ptq)
    executorch_scales.apply(prepared, plan)
    expected = executorch_scales.expected_params(prepared, plan)
    converted = convert_pt2e(prepared)
    executorch_scales.verify(converted, plan, expected)
    return converted


def _partitioner(config: ConvertConfig):
    if config.backend == "xnnpack":
        from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS, ConstantPadConfig
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        # w8a8: XNNPACK accepts TinyViT's window padding (constant_pad_nd) at partitioning, then refuses the
        # quantized pad when the program loads ("Failed to create StaticConstantPad node ...
        # xnn_status_invalid_parameter", measured on the demo model at 1024): the pad stays on the portable
        # kernels, in float between its dequantize and quantize.
        return XnnpackPartitioner(configs=[c for c in ALL_PARTITIONER_CONFIGS if c is not ConstantPadConfig]
                                  if config.precision == "w8a8" else None)
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    return CoreMLPartitioner(compile_specs=CoreMLBackend.generate_compile_specs(
        compute_precision=ct.precision.FLOAT16, minimum_deployment_target=ct.target.iOS17))


def _lower(programs: dict[str, Any], config: ConvertConfig, path: Path) -> dict[str, Any]:
    """Lower {method: ExportedProgram} to the backend, write the .pte, and describe each method's delegation:
    delegated subgraphs, their payload bytes, and the ops left to the portable kernels."""
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower
    from executorch.exir.lowered_backend_module import LoweredBackendModule

    edge = to_edge_transform_and_lower(programs, partitioner=[_partitioner(config)])
    methods = {}
    for name in programs:
        graph = edge.exported_program(name).graph_module
        info = get_delegation_info(graph)
        lowered = [m for m in graph.modules() if isinstance(m, LoweredBackendModule)]
        methods[name] = {
            "delegate": DELEGATE_IDS[config.backend],
            "delegated_subgraphs": info.num_delegated_subgraphs,
            "delegate_payload_bytes": sum(len(m.processed_bytes) for m in lowered
                                          if m.backend_id == DELEGATE_IDS[config.backend]),
            "delegated_nodes": info.num_delegated_nodes,
            "outside_delegate": {op: row.non_delegated for op, row in sorted(info.delegation_by_operator.items())
                                 if row.non_delegated and op.startswith(EDGE_OP_PREFIXES)},
        }
    path.write_bytes(edge.to_executorch().buffer)
    return methods


def _specs(sample: Sample, names, dynamic: Any) -> dict[str, Any]:
    """Inputs in call order, with their shapes ('tokens' on the dynamic axis)."""
    axes = lambda name: (dynamic or {}).get(name) or {}  # noqa: E731
    return {"inputs": [{"name": name, "dtype": "float32",
                        "shape": ["tokens" if axis in axes(name) else int(n) for axis, n in enumerate(sample[name].shape)]}
                       for name in names]}


def convert(model: TinySam, config: ConvertConfig, work_dir: Path, checkpoint_sha256: str) -> dict[str, Any]:
    check_backend(config)
    with warnings.catch_warnings():  # torch.export / ExecuTorch internals warn once per pytree leaf
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        return _convert(model, config, work_dir, checkpoint_sha256)


def _quantization_record(config: ConvertConfig, with_scales: bool) -> dict[str, str]:
    """The manifest's account of int8 / w8a8: the method, and for w8a8 where its activation ranges came from."""
    if config.precision == "int8":
        return QUANTIZATION_METHODS["int8"]
    return {**QUANTIZATION_METHODS["w8a8"],
            "calibration": str(config.calibration_images or "built-in photos and generated scenes"),
            "ranges": "TinySAM PTQ scales where they map (ptq_scales), observed elsewhere" if with_scales
            else "observed (HistogramObserver; weights min/max)"}


def _convert(model: TinySam, config: ConvertConfig, work_dir: Path, checkpoint_sha256: str) -> dict[str, Any]:
    from rich.progress import Progress

    ptq = None
    if config.scales is not None:
        from ..calibration.scales import read_scales

        if config.precision != "w8a8":
            raise TinySamError(f"--scales applies to the w8a8 precision of executorch, not {config.precision}")
        scales = read_scales(config.scales, checkpoint_sha256)
        check_entries(model, scales, "ExecuTorch w8a8")
        ptq = (model, scales, ScalesReport("ExecuTorch"))

    size = model.config.img_size
    exported = export_copy(model, bmm_encoder_matmuls=True)
    encoder, decoder = PixelEncoder(exported).eval(), PromptDecoder(exported).eval()
    encoder_sample = {ENCODER_INPUT: torch.rand(1, size, size, 3) * 255}
    shapes = _decoder_shapes(config, size)
    with Progress(transient=True) as bar, torch.no_grad():
        task = bar.add_task("converting", total=None)
        progress: Callable[[str], None] = lambda text: bar.update(task, description=text)  # noqa: E731
        if config.precision in ("int8", "w8a8"):
            from torch.export import Dim

            decoder_sample = decoder_sample_inputs(size, 2, config.max_tokens)
            if config.precision == "w8a8":
                encoder_calibration, decoder_calibration = _calibration_samples(model, encoder, decoder, config,
                                                                                progress)
            else:  # dynamic activations: one pass sets the weights' observers
                encoder_calibration, decoder_calibration = [encoder_sample], [decoder_sample]
            progress(f"quantizing the encoder ({config.precision}: PT2E, XNNPACKQuantizer)")
            encoder = _quantized(encoder, encoder_sample, None, encoder_calibration, config.precision, ptq)
            progress(f"quantizing the decoder ({config.precision}: PT2E, XNNPACKQuantizer)")
            # one set of observers for both methods: the prompt and token axes dynamic while calibrating
            both = _decoder_dynamic(Dim("tokens", min=1, max=config.max_tokens),
                                    Dim("prompts", min=1, max=config.everything_batch))
            decoder = _quantized(decoder, decoder_sample, both, decoder_calibration, config.precision, ptq)
            if ptq is not None:
                ptq[2].check_complete(ptq[1])
        progress(f"exporting and lowering the encoder ({config.backend})")
        encoder_methods = _lower({ENCODER_METHOD: torch.export.export(encoder, (), kwargs=encoder_sample)},
                                 config, work_dir / ENCODER_FILE)
        progress(f"exporting and lowering the decoder ({config.backend})")
        decoder_methods = _lower({method: torch.export.export(decoder, (), kwargs=sample, dynamic_shapes=dynamic)
                                  for method, (sample, dynamic) in shapes.items()}, config, work_dir / DECODER_FILE)
    methods = {
        ENCODER_FILE: {ENCODER_METHOD: {**_specs(encoder_sample, [ENCODER_INPUT], None), "outputs": [ENCODER_OUTPUT],
                                        **encoder_methods[ENCODER_METHOD]}},
        DECODER_FILE: {method: {**_specs(sample, DECODER_INPUTS, dynamic), "outputs": list(DECODER_OUTPUTS),
                                **decoder_methods[method]} for method, (sample, dynamic) in shapes.items()},
    }
    artifacts = [artifact_record(work_dir, ENCODER_FILE, "encoder", methods=methods[ENCODER_FILE]),
                 artifact_record(work_dir, DECODER_FILE, "decoder", methods=methods[DECODER_FILE])]
    return write_manifest(
        work_dir, target="executorch", precision=config.precision, checkpoint_sha256=checkpoint_sha256,
        img_size=size, artifacts=artifacts, backend=config.backend,
        runs_on="Android and iOS CPUs; ExecuTorch's Python runtime on Linux / macOS" if config.backend == "xnnpack"
        else "Apple devices only (Core ML); on Linux the program loads but cannot execute",
        encoder_input={"name": ENCODER_INPUT, "layout": "NHWC (1, S, S, 3)", "values": "RGB pixels 0-255 float; "
                       "pad bottom/right with pixel_mean; normalisation happens inside the model"},
        decoder={"methods": {DECODER_METHOD: "1 prompt of exactly T tokens, T = prompt_tokens.min..max (dynamic "
                             "token axis)", BATCH_METHOD: f"{config.everything_batch} prompts x {EVERYTHING_POINTS} "
                             "tokens (point + padding point), one shared image embedding"},
                 "outputs": list(DECODER_OUTPUTS)},
        prompt_tokens=prompt_tokens(token_counts(config)), everything_batch=config.everything_batch,
        **({"quantization": _quantization_record(config, ptq is not None)}
           if config.precision in QUANTIZATION_METHODS else {}),
        **({"ptq_scales": manifest_record(Path(config.scales), ptq[1], ptq[2])} if ptq is not None else {}),
    )
