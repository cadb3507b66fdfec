"""The modules LiteRT and ONNX export: TinySAM behind the app-facing contracts.

Encoder input: RGB pixels 0-255, NHWC (1, S, S, 3) float, the resized photo top-left and the rest
filled with PIXEL_MEAN (which normalises to SAM's zero padding). Android Bitmaps are NHWC 8-bit, so
the app copies pixels without per-channel arithmetic, and a full-integer model represents 0-255
pixels exactly in int8 (scale 1). Decoder: SAM's ONNX contract (see utils/prompts.py).
"""

import copy

import torch
from torch import nn

from ..modeling import TinySam
from ..modeling.common import LayerNorm2d
from ..utils.transforms import PIXEL_MEAN, PIXEL_STD

ENCODER_INPUT = "image"
ENCODER_OUTPUT = "image_embeddings"
DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")
DECODER_OUTPUTS = ("low_res_masks", "iou_predictions")


class RsqrtLayerNorm2d(LayerNorm2d):
    """LayerNorm2d as (x - mean) * rsqrt(var + eps): the same values, but an int8 graph has no DIV whose
    quantized denominator can round to zero (LiteRT's int8 DIV refuses it), e.g. on an all-zero mask prompt."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        x = centred * torch.rsqrt((centred * centred).mean(1, keepdim=True) + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def export_copy(model: TinySam) -> TinySam:
    """A copy of the model with export-friendly modules swapped in (same weights, same function)."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if type(module) is LayerNorm2d:
            module.__class__ = RsqrtLayerNorm2d
    return model


class PixelEncoder(nn.Module):
    """0-255 RGB pixels -> (1, 256, S/16, S/16) embedding, SAM's normalisation folded into the graph.

    channels_last: (1, S, S, 3) input as Android Bitmaps hold it (LiteRT, ONNX); else (1, 3, S, S)
    as CoreML image inputs arrive.
    """

    def __init__(self, model: TinySam, channels_last: bool = True) -> None:
        super().__init__()
        self.image_encoder = model.image_encoder
        self.channels_last = channels_last
        shape = (1, 1, 1, 3) if channels_last else (1, 3, 1, 1)
        self.register_buffer("mean", torch.from_numpy(PIXEL_MEAN).reshape(shape))
        self.register_buffer("inv_std", torch.from_numpy(1.0 / PIXEL_STD).reshape(shape))

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        pixels = (image - self.mean) * self.inv_std
        return self.image_encoder(pixels.permute(0, 3, 1, 2) if self.channels_last else pixels)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {ENCODER_OUTPUT: self.embed(image)}


class PromptDecoder(nn.Module):
    """TinySam.decode with the dense positional encoding stored as a constant: exported graphs
    otherwise recompute its 64x64 sin/cos grid on every call (and integer quantization trips on it)."""

    def __init__(self, model: TinySam) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        with torch.no_grad():
            self.register_buffer("image_pe", model.prompt_encoder.dense_pe().clone())

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels)
        dense = self.prompt_encoder.embed_mask(mask_input, has_mask_input)
        masks, iou = self.mask_decoder(image_embeddings, self.image_pe, sparse, dense)
        return dict(zip(DECODER_OUTPUTS, (masks, iou)))


def decoder_sample_inputs(img_size: int, batch: int, num_points: int) -> dict[str, torch.Tensor]:
    """Example inputs (for tracing) of a decoder evaluating `batch` prompts against one embedding."""
    side = img_size // 16
    labels = torch.full((batch, num_points), -1.0)
    labels[:, 0] = 1.0
    return {
        "image_embeddings": torch.randn(1, 256, side, side),
        "point_coords": torch.rand(batch, num_points, 2) * img_size,
        "point_labels": labels,
        "mask_input": torch.zeros(batch, 1, 4 * side, 4 * side),
        "has_mask_input": torch.zeros(batch),
    }
