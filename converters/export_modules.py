"""The modules LiteRT and ONNX export: TinySAM behind the app-facing contracts.

Encoder input: RGB pixels 0-255, NHWC (1, S, S, 3) float, the resized photo top-left and the rest
filled with PIXEL_MEAN (which normalises to SAM's zero padding). Android Bitmaps are NHWC 8-bit, so
the app copies pixels without per-channel arithmetic, and a full-integer model represents 0-255
pixels exactly in int8 (scale 1). Decoder: SAM's ONNX contract (see utils/prompts.py).
"""

import copy
import math

import torch
from torch import nn

from ..modeling import TinySam
from ..modeling.common import LayerNorm2d, MatMul
from ..modeling.transformer import Attention
from ..utils.transforms import PIXEL_MEAN, PIXEL_STD

ENCODER_INPUT = "image"
ENCODER_OUTPUT = "image_embeddings"
DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")
DECODER_OUTPUTS = ("low_res_masks", "iou_predictions")
POINT_FEATURES = "point_features"  # FeaturePromptDecoder's input in place of point_coords
BATCH_SIGNATURE = "decode_batch"  # LiteRT: everything mode's batch of 2-token prompts


def token_signature(tokens: int) -> str:
    """LiteRT signature of the interactive decoder for prompts of exactly `tokens` tokens."""
    return f"decode_tokens_{tokens}"


def rsqrt_normalize(x: torch.Tensor, dim: int, eps: float) -> torch.Tensor:
    """(x - mean) * rsqrt(var + eps) over `dim`, written with the ops XNNPACK runs in int8 on the full-size
    tensors (SUB, MUL, MEAN): only the per-position ADD eps and RSQRT are left to LiteRT's own kernels."""
    centred = x - x.mean(dim, keepdim=True)
    return centred * torch.rsqrt((centred * centred).mean(dim, keepdim=True) + eps)


class RsqrtLayerNorm2d(LayerNorm2d):
    """LayerNorm2d through rsqrt_normalize: the same values, but an int8 graph has no DIV whose quantized
    denominator can round to zero (LiteRT's int8 DIV refuses it), e.g. on an all-zero mask prompt."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight[:, None, None] * rsqrt_normalize(x, 1, self.eps) + self.bias[:, None, None]


class RsqrtLayerNorm(nn.LayerNorm):
    """nn.LayerNorm (last axis) through rsqrt_normalize. litert-torch lowers nn.LayerNorm to
    SQUARED_DIFFERENCE and a SUB from a constant, which XNNPACK does not take in int8: each TinyViT
    LayerNorm then moved two full-size tensors out of the full-integer encoder's XNNPACK graph."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rsqrt_normalize(x, -1, self.eps) * self.weight + self.bias


# LiteRT's int16 SOFTMAX kernel reads exp from a table that ends at x - max = -10: each lower logit counts
# as e^-10 of the row's largest weight instead of nearly 0 and comes out as about one output step (1/32768).
# Over the decoder's 4,096 image positions these add up (23-30% of the demo model's token-to-image logits
# lie that low over 15 prompts on 3 photos, 43-46% for the test's clicks). Weights below e^-9.5 of the row's
# largest are dropped: 9.5 rather than 10 also takes the steps rounding put on the floor (a one-off sweep of
# 8 / 9 / 9.5 / 10 on logits captured from 3 photos).
INT16_SOFTMAX_FLOOR = math.exp(-9.5)


class FlooredSoftmaxAttention(Attention):
    """Attention for LiteRT's integer decoders: the softmax weights below INT16_SOFTMAX_FLOOR of their row's
    largest are dropped and the rest renormalised, so the int16 kernel's exp floor no longer adds to every
    row. Renormalising after the matmul divides a few token rows rather than 4,096-wide weights. Error of
    the attention output against float softmax, LiteRT 16x8 kernels, logits of the demo model (one-off
    sweep with the row sum taken by SUM, 3 photos, calibrated on some prompts and measured on others):
    3.1% -> 0.7% (second block), 3.2% -> 1.3% (first), 0.9% -> 0.6% (final); one click on chelsea (the
    test, this form): 14.3% -> 3.8%, of which the dropped weights alone (in float) 2.6%.
    """

    def attend(self, logits: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        weights = logits.softmax(dim=-1)
        # the row's largest weight as -min(-w): ai-edge-quantizer has no int16 REDUCE_MAX, REDUCE_MIN it has
        top = -torch.amin(-weights, dim=-1, keepdim=True)
        weights = torch.relu(weights - top * INT16_SOFTMAX_FLOOR)
        # the row's sum as mean x width: LiteRT's reference int16 SUM (the NPU stand-in's) wraps around over
        # 4,096 entries (rows summing to 1 came out 0 or -1), its MEAN holds
        return self.av_matmul(weights, v) / (weights.mean(dim=-1, keepdim=True) * weights.shape[-1])


class BmmMatMul(MatMul):
    """MatMul as one 3-D batched matmul. ExecuTorch's edge lowering decomposes a 4-D aten.matmul into
    expand_copy + view + bmm, and XNNPACK does not take expand_copy (even of an unchanged shape): each
    attention then left 4 full-size copies to the portable kernels between delegate calls (40 in
    TinyViT). Folding the leading axes into bmm's batch avoids them."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = torch.bmm(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
        return out.reshape(*a.shape[:-2], *out.shape[-2:])


def export_copy(model: TinySam, rsqrt_encoder_norms: bool = False, rsqrt_decoder_norms: bool = False,
                bmm_encoder_matmuls: bool = False, floored_image_softmax: bool = False) -> TinySam:
    """A copy of the model with export-friendly modules swapped in (same weights; the same function but for
    floored_image_softmax, which drops weights below e^-9.5 of their row's largest).
    rsqrt_encoder_norms (LiteRT): TinyViT's nn.LayerNorms as RsqrtLayerNorm; ONNX keeps its fused
    LayerNormalization. rsqrt_decoder_norms (LiteRT integer decoders): the mask decoder's too, as
    SQUARED_DIFFERENCE has no int16 (16x8) quantization. bmm_encoder_matmuls (ExecuTorch): TinyViT's MatMuls
    as BmmMatMul (the decoder's keep aten.matmul: folding its dynamic prompt and token axes into one batch
    axis makes torch.export guard on them and refuse the dynamic shapes). floored_image_softmax (LiteRT
    integer decoders): the token-to-image attentions, whose softmax spans the image, as
    FlooredSoftmaxAttention."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if type(module) is LayerNorm2d:
            module.__class__ = RsqrtLayerNorm2d
    parts = ((model.image_encoder, rsqrt_encoder_norms), (model.mask_decoder, rsqrt_decoder_norms))
    for module in (m for part, wanted in parts if wanted for m in part.modules()):
        if type(module) is nn.LayerNorm:
            module.__class__ = RsqrtLayerNorm
    for module in model.image_encoder.modules() if bmm_encoder_matmuls else ():
        if type(module) is MatMul:
            module.__class__ = BmmMatMul
    transformer = model.mask_decoder.transformer
    wide = [layer.cross_attn_token_to_image for layer in transformer.layers] + [transformer.final_attn_token_to_image]
    for module in wide if floored_image_softmax else ():
        module.__class__ = FlooredSoftmaxAttention
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


class DensePositionalEncoding(nn.Module):
    """The prompt encoder's dense positional encoding (1, C, h, w), rebuilt inside the exported graph.

    As a constant it is C*h*w values (4 MB in fp32, 2.1 MB in fp16) that weight compression (palettes,
    int8 weights) leaves alone. sin/cos of the grid projection are separable,
    sin(a_x + a_y) = sin a_x cos a_y + cos a_x sin a_y (and cos alike), so the graph stores per-axis
    tables (w x C/2 and h x C/2 each) and multiplies them out with mul/add: no sin/cos, which integer
    graphs cannot run. Max error of the encoding in an fp16 CoreML program (MIL interpreter, seeded
    weights): these tables 1.1e-3, the fp16 constant 2.4e-4; sin/cos of the projection in fp16 3.1e-2
    (arguments reach 33 rad, where fp16 steps are 0.03 rad), in fp32 2.5e-4 but float32 ops leave the
    Neural Engine, which computes in fp16 only.

    Built channels-last, (h, w, C), then transposed: litert-torch 0.10 miscompiles the same products
    written as (C, 1, w) x (C, h, 1) inside the decoder graph (1% error in the masks, although the
    encoding alone converts exactly).
    """

    def __init__(self, prompt_encoder) -> None:
        super().__init__()
        half = prompt_encoder.embed_dim // 2
        side = prompt_encoder.image_embedding_size
        with torch.no_grad():  # dense() at 1 row / column: the other coordinate is the centre, projected to 0
            along_x = prompt_encoder.pe_layer.dense(1, side)[:, 0].T  # (w, C)
            along_y = prompt_encoder.pe_layer.dense(side, 1)[:, :, 0].T  # (h, C)
        self.register_buffer("sin_x", along_x[None, :, :half].contiguous())  # (1, w, C/2)
        self.register_buffer("cos_x", along_x[None, :, half:].contiguous())
        self.register_buffer("sin_y", along_y[:, None, :half].contiguous())  # (h, 1, C/2)
        self.register_buffer("cos_y", along_y[:, None, half:].contiguous())
        # tensors, not Python numbers: coremltools has no where with a scalar
        self.register_buffer("one", torch.ones(1))
        self.register_buffer("zero", torch.zeros(1))

    def forward(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        # Tied to an input by a factor 1 no converter can prove (x == x selects it): an all-constant chain is
        # folded back into the (1, C, h, w) constant (in batched decoders expanded to the batch). TFLite's
        # converter folds x * 0; EQUAL and SELECT have int8 kernels, where relu(-|x|) left ABS in float.
        corner = image_embeddings[0, 0, :1, :1]
        one = torch.where(corner == corner, self.one, self.zero)
        sin_x, cos_x = self.sin_x * one, self.cos_x * one
        sin = sin_x * self.cos_y + cos_x * self.sin_y
        cos = cos_x * self.cos_y - sin_x * self.sin_y
        return torch.cat([sin, cos], dim=-1).permute(2, 0, 1).unsqueeze(0)


class PromptDecoder(nn.Module):
    """TinySam.decode behind SAM's ONNX contract, the dense positional encoding computed in-graph."""

    def __init__(self, model: TinySam) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        self.dense_pe = DensePositionalEncoding(model.prompt_encoder)

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        features = self.prompt_encoder.point_features(point_coords)
        return self.decode(image_embeddings, features, point_labels, mask_input, has_mask_input)

    def decode(self, image_embeddings, point_features, point_labels, mask_input, has_mask_input):
        sparse = self.prompt_encoder.embed_point_features(point_features, point_labels)
        dense = self.prompt_encoder.embed_mask(mask_input, has_mask_input)
        masks, iou = self.mask_decoder(image_embeddings, self.dense_pe(image_embeddings), sparse, dense)
        return dict(zip(DECODER_OUTPUTS, (masks, iou)))


class FeaturePromptDecoder(PromptDecoder):
    """The full-integer (w8a8, w8a16) decoders' contract: the points' Fourier features (B, N, C) come from the
    app (utils/prompts.point_features, with the manifest's gaussian matrix) instead of their coordinates,
    because sin / cos have no integer kernels. Everything else as PromptDecoder."""

    def forward(self, image_embeddings, point_features, point_labels, mask_input, has_mask_input):
        return self.decode(image_embeddings, point_features, point_labels, mask_input, has_mask_input)


def decoder_sample_inputs(img_size: int, batch: int, num_points: int,
                          point_features: bool = False) -> dict[str, torch.Tensor]:
    """Example inputs (for tracing) of a decoder evaluating `batch` prompts against one embedding;
    point_features: FeaturePromptDecoder's inputs."""
    side = img_size // 16
    labels = torch.full((batch, num_points), -1.0)
    labels[:, 0] = 1.0
    points = ({POINT_FEATURES: torch.rand(batch, num_points, 256) * 2 - 1} if point_features
              else {"point_coords": torch.rand(batch, num_points, 2) * img_size})
    return {
        "image_embeddings": torch.randn(1, 256, side, side),
        **points,
        "point_labels": labels,
        "mask_input": torch.zeros(batch, 1, 4 * side, 4 * side),
        "has_mask_input": torch.zeros(batch),
    }
