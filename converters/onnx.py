"""`convert --target onnx`: ONNX models for ONNX Runtime (Mobile), SAM's ONNX decoder contract.

encoder.onnx: image (1, S, S, 3) RGB pixels 0-255 -> image_embeddings (1, 256, S/16, S/16), the same
input contract as the LiteRT encoder. decoder.onnx: image_embeddings (1, 256, h, w), point_coords
(B, N, 2), point_labels (B, N), mask_input (B, 1, 4h, 4w), has_mask_input (B,) -> low_res_masks
(B, 3, 4h, 4w), iou_predictions (B, 3); the prompt axis B and the point axis N are dynamic.
int8: weights quantized by onnxruntime's dynamic quantization (activations quantized at run time), the
encoder's per channel and the decoder's per tensor (see PER_CHANNEL), except the nodes float_nodes names:
the convolutions but the encoder neck's, the prompt encoder's Fourier features and the decoder's
image-to-token attention projections.
"""

from pathlib import Path
from typing import Any

import torch

from ..modeling import TinySam
from ..utils.prompts import MIN_PROMPT_TOKENS, token_range
from .config import IMAGE_TO_TOKEN_SCOPE, NECK_MODULE, ConvertConfig
from .export_modules import (DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUT, ENCODER_OUTPUT, PixelEncoder,
                             PromptDecoder, decoder_sample_inputs, export_copy)
from .manifest import artifact_record, prompt_tokens, write_manifest

MAX_ONNX_TOKENS = 64  # the dynamic point axis's bound: any prompt a user builds by hand

PRECISIONS = ("fp32", "int8")
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
OPSET = 18
# int8 keeps every Conv float whose weight is not the encoder neck's. A one-off development sweep (demo model,
# 1024, 3 held-out images x 24 clicks, the FP32 decoder behind each encoder variant, mask IoU against the
# FP32 encoder): 0.766 with every Conv int8 (per tensor, as before), 0.763 per channel, 0.976 with the
# convolutions float but the neck's (+1.1 MB of 7.4), 0.978 with the neck's float too (+3.1 MB). ORT's
# dynamic activations are one range per tensor; the convolution stages' activations are where that loses.
NECK_WEIGHT_PREFIX = f"{NECK_MODULE}."
# Weights per channel, per model. The decoder's per-channel MatMul weights lost its masks after a fresh
# install (onnxruntime 1.32.0; the recipe had held 0.98 with the version before): a one-off development
# check (demo model, float decoder vs quantize_dynamic variants, 3 held-out images x 6 random prompts,
# low-res mask IoU) gave 0.73 per channel and 0.95 per tensor; the encoder per channel stays at 0.993. The
# larger sweep below (48 prompts x 4 photos, convolutions float) gave 0.970 per channel and 0.969 per tensor,
# so per channel is not shown to lose on its own; per tensor is what the validated recipe holds.
PER_CHANNEL = {ENCODER_FILE: True, DECODER_FILE: False}
# The decoder's MatMuls that stay float. A one-off development sweep (demo model, 1024, float decoder vs
# quantize_dynamic variants behind the float encoder, 4 scikit-image photos x 48 prompts: clicks, boxes,
# 3 clicks; low-res mask IoU), one MatMul int8 at a time: the point coordinates' Fourier features 0.983,
# layer 0's image-to-token attention projections 0.985-0.997, every other MatMul >= 0.996. The whole
# decoder int8: 0.969; these float: 0.990 (+0.8 MB of 5.1). Their inputs are the 4,096 image positions (or
# coordinates whose small errors become phase errors of sin/cos), one dynamic range per tensor.
FLOAT_DECODER_WEIGHTS = ("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",)
# torch.onnx (dynamo) records each node's module path here.
NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def float_nodes(path: Path) -> list[str]:
    """Names of the nodes of an ONNX model that int8 keeps float: every Conv / ConvTranspose whose weight is
    not the encoder neck's, and the decoder's MatMuls of FLOAT_DECODER_WEIGHTS or IMAGE_TO_TOKEN_SCOPE."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def keeps_float(node) -> bool:
        if node.op_type in ("Conv", "ConvTranspose"):
            return not node.input[1].startswith(NECK_WEIGHT_PREFIX)
        if node.op_type != "MatMul":
            return False
        scopes = next((prop.value for prop in node.metadata_props if prop.key == NAME_SCOPES_KEY), "")
        return node.input[1] in FLOAT_DECODER_WEIGHTS or IMAGE_TO_TOKEN_SCOPE in scopes

    return [node.name for node in graph.node if keeps_float(node)]


def _tensor_specs(path: Path) -> dict[str, Any]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dims = lambda t: [d.dim_param or d.dim_value for d in t.type.tensor_type.shape.dim]  # noqa: E731
    return {"inputs": {t.name: {"shape": dims(t)} for t in graph.input},
            "outputs": {t.name: {"shape": dims(t)} for t in graph.output}}


def _export(module: torch.nn.Module, kwargs: dict, path: Path, input_names, output_names, dynamic_shapes=None) -> None:
    from onnx_ir.passes.common import DeduplicateInitializersPass

    program = torch.onnx.export(module, (), kwargs=kwargs, input_names=list(input_names),
                                output_names=list(output_names), dynamic_shapes=dynamic_shapes, opset_version=OPSET,
                                dynamo=True, verbose=False)
    # Every TinyViT block of a stage holds the same relative-offset table; store it once.
    DeduplicateInitializersPass(size_limit=1 << 20)(program.model)
    program.save(str(path), external_data=False)


def convert(model: TinySam, config: ConvertConfig, work_dir: Path, checkpoint_sha256: str) -> dict[str, Any]:
    from rich.progress import Progress
    from torch.export import Dim

    size = model.config.img_size
    model = export_copy(model)
    with Progress(transient=True) as bar, torch.no_grad():
        task = bar.add_task("exporting the encoder (torch.onnx)", total=None)
        _export(PixelEncoder(model).eval(), {ENCODER_INPUT: torch.rand(1, size, size, 3) * 255},
                work_dir / ENCODER_FILE, [ENCODER_INPUT], [ENCODER_OUTPUT])
        bar.update(task, description="exporting the decoder (torch.onnx)")
        prompts, points = Dim("prompts", min=1, max=1024), Dim("points", min=MIN_PROMPT_TOKENS, max=MAX_ONNX_TOKENS)
        dynamic = {"image_embeddings": None, "point_coords": {0: prompts, 1: points},
                   "point_labels": {0: prompts, 1: points}, "mask_input": {0: prompts}, "has_mask_input": {0: prompts}}
        _export(PromptDecoder(model).eval(), decoder_sample_inputs(size, 2, config.max_tokens),
                work_dir / DECODER_FILE, DECODER_INPUTS, DECODER_OUTPUTS, dynamic)
        if config.precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            bar.update(task, description="quantizing weights to int8 (onnxruntime)")
            for name in (ENCODER_FILE, DECODER_FILE):
                float_path = work_dir / f"float_{name}"
                (work_dir / name).rename(float_path)
                quantize_dynamic(str(float_path), str(work_dir / name), weight_type=QuantType.QInt8,
                                 per_channel=PER_CHANNEL[name],
                                 nodes_to_exclude=float_nodes(float_path))
                float_path.unlink()
    artifacts = [artifact_record(work_dir, ENCODER_FILE, "encoder", **_tensor_specs(work_dir / ENCODER_FILE)),
                 artifact_record(work_dir, DECODER_FILE, "decoder", **_tensor_specs(work_dir / DECODER_FILE))]
    return write_manifest(
        work_dir, target="onnx", precision=config.precision, checkpoint_sha256=checkpoint_sha256, img_size=size,
        artifacts=artifacts, prompt_tokens=prompt_tokens(token_range(MAX_ONNX_TOKENS)),
        encoder_input={"name": ENCODER_INPUT, "layout": "NHWC (1, S, S, 3)", "values": "RGB pixels 0-255 float; "
                       "pad bottom/right with pixel_mean; normalisation happens inside the model"},
        decoder={"dynamic_axes": {"prompts": "B of point_coords, point_labels, mask_input, has_mask_input",
                                  "points": "N of point_coords, point_labels"}, "outputs": list(DECODER_OUTPUTS)},
    )
