"""CoreML target: TinySAM -> ML Program packages (encoder, interactive decoder, batched decoder).

Conversion goes through torch.export + run_decompositions({}) (coremltools 9 refuses torch 2.9+
training-dialect programs otherwise). The encoder takes an RGB image (CVPixelBuffer in Swift) with SAM's
per-channel normalisation inside the model, since a CoreML image input has one scalar scale.

The interactive decoder takes exactly the prompt's tokens (points, then 2 box corners or 1 padding point),
1 to max_tokens of them, through EnumeratedShapes on point_coords and point_labels: each enumerated shape
is compiled ahead and can run on the Neural Engine, whereas a RangeDim input runs there only at its
default shape (Apple's answer in developer forum thread 724930; coremltools' "Flexible Input Shapes"
guide recommends enumerated shapes for performance). Two enumerated inputs need iOS 18 (coremltools
refuses them below), so the decoder package targets iOS 18.
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from ..errors import TinySamError
from ..modeling import TinySam
from ..utils.transforms import MASK_THRESHOLD, PIXEL_MEAN, PIXEL_STD
from . import coreml_compression
from .config import EVERYTHING_POINTS, ConvertConfig, token_counts
from .coreml_package import import_coremltools, tensor_specs
from . import export_modules
from .export_modules import DECODER_OUTPUTS, ENCODER_OUTPUT, DensePositionalEncoding
from .manifest import artifact_record, prompt_tokens, write_manifest

PRECISIONS = ("fp16", "fp32", "int8", "palettize4", "palettize6", "palettize8", "w8a8")
COMPUTE_PRECISIONS = ("fp16", "fp32")
ENCODER_FILE = "encoder.mlpackage"
DECODER_FILE = "decoder.mlpackage"
BATCH_DECODER_FILE = "decoder_batch.mlpackage"
AUTHOR = "tinysam-mobile; TinySAM model by Shu et al. (Huawei Noah's Ark Lab)"
LICENSE = "Apache-2.0"
# uint8 pixel buffers cannot hold SAM's mean exactly: the nearest colour normalises to within 0.01 of 0.
PAD_COLOR_RGB = [int(round(float(v))) for v in PIXEL_MEAN]

DESCRIPTIONS = {
    "image": "RGB, 0-255: the photo resized (bilinear) so its longest side is the input size, at the "
             f"top-left, the rest filled with the mean colour {tuple(PAD_COLOR_RGB)}",
    "image_embeddings": "(1, 256, S/16, S/16) image embedding from the encoder",
    "point_coords": "(B, N, 2) prompt points (x, y) in pixels of the resized image, then the box corners or "
                    "one (0, 0) padding point; the interactive decoder takes N = 1 to its maximum, exactly",
    "point_labels": "(B, N) 1 positive, 0 negative, 2 box top-left, 3 box bottom-right, -1 padding",
    "mask_input": "(B, 1, S/4, S/4) low-res mask logits of an earlier prediction; zeros when unused",
    "has_mask_input": "(B,) 1 to use mask_input, 0 to ignore it",
    "low_res_masks": "(B, 3, S/4, S/4) logits of TinySAM's three masks (mask = logit > 0) in the padded "
                     "input frame at 1/4 scale",
    "iou_predictions": "(B, 3) predicted IoU of each mask; the best single mask has the highest",
}


class PixelEncoder(export_modules.PixelEncoder):
    """NCHW 0-255 RGB, as CoreML image inputs arrive; a plain tensor output for ct.convert."""

    def __init__(self, model: TinySam) -> None:
        super().__init__(model, channels_last=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.embed(image)


class Decoder(nn.Module):
    """TinySam.decode (the interactive decoder's contract) with the positional encoding computed in-graph."""

    def __init__(self, model: TinySam) -> None:
        super().__init__()
        self.model = model  # the attribute name is part of the exported weight names (coreml_compression)
        self.dense_pe = DensePositionalEncoding(model.prompt_encoder)

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        prompts = self.model.prompt_encoder
        sparse = prompts.embed_points(point_coords, point_labels)
        dense = prompts.embed_mask(mask_input, has_mask_input)
        return self.model.mask_decoder(image_embeddings, self.dense_pe(image_embeddings), sparse, dense)


class EverythingDecoder(Decoder):
    """Many single-point prompts against one embedding, no mask prompt (everything mode); the
    no-mask embedding is added once, unexpanded."""

    def forward(self, image_embeddings, point_coords, point_labels):
        prompts = self.model.prompt_encoder
        sparse = prompts.embed_points(point_coords, point_labels)
        no_mask = prompts.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return self.model.mask_decoder(image_embeddings, self.dense_pe(image_embeddings), sparse, no_mask)


FLEXIBLE_TOKENS = ("point_coords", "point_labels")  # the interactive decoder's inputs with a token axis (axis 1)
INTERACTIVE_DECODER = "decoder"  # the package whose FLEXIBLE_TOKENS take every token count


def deployment_target(ct, precision: str, enumerated_tokens: bool):
    """iOS17 (activation quantize ops, int8 weights); iOS18 for per-grouped-channel palettes and for the
    interactive decoder's two enumerated-shape inputs."""
    return ct.target.iOS18 if precision.startswith("palettize") or enumerated_tokens else ct.target.iOS17


def example_inputs(model: TinySam, config: ConvertConfig) -> dict[str, dict[str, torch.Tensor]]:
    """Export-time sample tensors of each part; their shapes become the packages' fixed shapes."""
    s, e, low = model.config.img_size, model.config.embedding_size, model.config.low_res_size
    n, b = config.max_tokens, config.everything_batch
    embedding = torch.randn(1, 256, e, e)
    labels = torch.full((1, n), -1.0)
    labels[0, :2] = 1.0
    return {
        "encoder": {"image": torch.rand(1, 3, s, s) * 255},
        "decoder": {"image_embeddings": embedding, "point_coords": torch.rand(1, n, 2) * s,
                    "point_labels": labels, "mask_input": torch.zeros(1, 1, low, low),
                    "has_mask_input": torch.zeros(1)},
        "decoder_batch": {"image_embeddings": embedding, "point_coords": torch.rand(b, EVERYTHING_POINTS, 2) * s,
                          "point_labels": torch.tensor([[1.0, -1.0]]).expand(b, -1).contiguous()},
    }


PARTS = {  # role: (file, wrapper, output names); tensor names shared with the LiteRT / ONNX contract
    "encoder": (ENCODER_FILE, PixelEncoder, [ENCODER_OUTPUT]),
    "decoder": (DECODER_FILE, Decoder, list(DECODER_OUTPUTS)),
    "decoder_batch": (BATCH_DECODER_FILE, EverythingDecoder, list(DECODER_OUTPUTS)),
}


def convert_part(ct, module: nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str], precision: str,
                 compute_precision: str, tokens: "range | None" = None):
    """Export one wrapper and convert it to an ML Program with float32 tensor I/O, fixed shapes except the
    token axis of FLEXIBLE_TOKENS when `tokens` (the counts to enumerate) is given."""
    dynamic = None
    if tokens is not None:
        axis = torch.export.Dim("tokens", min=tokens.start, max=tokens.stop - 1)
        dynamic = tuple({1: axis} if name in FLEXIBLE_TOKENS else None for name in inputs)
    exported = torch.export.export(module.eval(), tuple(inputs.values()), dynamic_shapes=dynamic).run_decompositions({})

    def shape(name: str, x: torch.Tensor):
        if tokens is None or name not in FLEXIBLE_TOKENS:
            return tuple(x.shape)
        return ct.EnumeratedShapes(shapes=[(x.shape[0], t, *x.shape[2:]) for t in tokens], default=tuple(x.shape))

    input_types = [
        ct.ImageType(name=name, shape=tuple(x.shape), color_layout=ct.colorlayout.RGB, scale=1.0)
        if name == "image" else ct.TensorType(name=name, shape=shape(name, x), dtype=np.float32)
        for name, x in inputs.items()
    ]
    pipeline = ct.PassPipeline.DEFAULT
    if precision.startswith("palettize"):  # a const shared by a conv and a norm (equal biases) blocks palettizing
        pipeline.remove_passes(["common::const_deduplication"])
    return ct.convert(
        exported, inputs=input_types, outputs=[ct.TensorType(name=name, dtype=np.float32) for name in outputs],
        convert_to="mlprogram", minimum_deployment_target=deployment_target(ct, precision, tokens is not None),
        compute_precision=ct.precision.FLOAT32 if compute_precision == "fp32" else ct.precision.FLOAT16,
        pass_pipeline=pipeline,
    )


def package_metadata(role: str, config: ConvertConfig, checkpoint_sha256: str, img_size: int) -> dict[str, str]:
    """user_defined_metadata: the manifest's essentials, so a package dropped into Xcode explains itself."""
    return {
        "tinysam.role": role,
        "tinysam.precision": config.precision,
        "tinysam.compute_precision": effective_compute_precision(config),
        "tinysam.checkpoint_sha256": checkpoint_sha256,
        "tinysam.input_size": str(img_size),
        "tinysam.pixel_mean": ",".join(f"{v:g}" for v in PIXEL_MEAN),
        "tinysam.pixel_std": ",".join(f"{v:g}" for v in PIXEL_STD),
        "tinysam.pad_color_rgb": ",".join(map(str, PAD_COLOR_RGB)),
        "tinysam.resize": "longest side to input_size, new = int(old * input_size / max(h, w) + 0.5), bilinear; "
                          "top-left, pad bottom/right with pad_color_rgb",
        "tinysam.prompt_tokens": (f"{token_counts(config).start}-{config.max_tokens}, exactly the prompt's"
                                  if role == "decoder" else str(EVERYTHING_POINTS)),
        "tinysam.batch": str(config.everything_batch if role == "decoder_batch" else 1),
        "tinysam.point_labels": "-1 padding, 0 negative, 1 positive, 2 box top-left, 3 box bottom-right",
        "tinysam.mask_threshold": f"{MASK_THRESHOLD:g}",
    }


def describe(mlmodel, role: str, config: ConvertConfig, checkpoint_sha256: str, img_size: int) -> None:
    from .. import __version__

    mlmodel.author = AUTHOR
    mlmodel.license = LICENSE
    mlmodel.version = __version__
    mlmodel.short_description = {
        "encoder": "TinySAM image encoder (TinyViT-5M): RGB image -> image embedding",
        "decoder": f"TinySAM prompt encoder + mask decoder: 1 to {config.max_tokens} prompt tokens (points, then "
                   "box corners or one padding point)",
        "decoder_batch": f"TinySAM decoder for everything mode: {config.everything_batch} single-point prompts",
    }[role] + f"; {config.precision} weights"
    for name in list(mlmodel.input_description) + list(mlmodel.output_description):
        target = mlmodel.input_description if name in mlmodel.input_description else mlmodel.output_description
        target[name] = DESCRIPTIONS[name]
    mlmodel.user_defined_metadata.update(package_metadata(role, config, checkpoint_sha256, img_size))


def effective_compute_precision(config: ConvertConfig) -> str:
    return "fp32" if config.precision == "fp32" else config.compute_precision


def check_config(config: ConvertConfig) -> None:
    if config.precision not in PRECISIONS:
        raise TinySamError(f"unknown CoreML precision {config.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if config.compute_precision not in COMPUTE_PRECISIONS:
        raise TinySamError(f"--compute-precision must be fp16 or fp32, got {config.compute_precision!r}")
    if config.scales is not None and config.precision not in ("int8", "w8a8") and not config.precision.startswith("palettize"):
        raise TinySamError(f"--scales applies to int8, w8a8 and palettize*, not {config.precision}")


def convert(model: TinySam, config: ConvertConfig, work_dir: Path, checkpoint_sha256: str) -> dict[str, Any]:
    """Write encoder, decoder and batched-decoder packages plus manifest.json into work_dir."""
    check_config(config)
    ct = import_coremltools()
    plan = coreml_compression.plan_for(model, config, checkpoint_sha256)
    samples = example_inputs(model, config)
    records, reports = [], {}
    with Progress(transient=True) as progress:
        task = progress.add_task(f"CoreML {config.precision}", total=len(PARTS))
        for role, (file, wrapper, outputs) in PARTS.items():
            progress.update(task, description=f"CoreML {config.precision}: {role}")
            mlmodel = convert_part(ct, wrapper(plan.model), samples[role], outputs, config.precision,
                                   effective_compute_precision(config),
                                   token_counts(config) if role == INTERACTIVE_DECODER else None)
            mlmodel, reports[role] = coreml_compression.compress(plan, mlmodel, role)
            describe(mlmodel, role, config, checkpoint_sha256, model.config.img_size)
            mlmodel.save(str(work_dir / file))
            records.append(artifact_record(work_dir, file, role, **tensor_specs(mlmodel.get_spec())))
            progress.advance(task)
    return write_manifest(
        work_dir, target="coreml", precision=config.precision, checkpoint_sha256=checkpoint_sha256,
        img_size=model.config.img_size, artifacts=records,
        prompt_tokens=prompt_tokens(token_counts(config)), everything_batch=config.everything_batch,
        coreml={
            # the interactive decoder's (iOS18, enumerated token shapes): the highest of the three packages
            "minimum_deployment_target": deployment_target(ct, config.precision, enumerated_tokens=True).name,
            "compute_precision": effective_compute_precision(config),
            "image_input": {"color_layout": "RGB", "range": "0-255", "pad_color_rgb": PAD_COLOR_RGB,
                            "normalisation": "inside the model: (rgb - pixel_mean) / pixel_std"},
            "batch_decoder_prompts": "point_coords (B, 2, 2): the point, then (0, 0); point_labels (B, 2): 1, -1",
            "compression": plan.summary,
            "weight_reports": reports,
        },
    )
