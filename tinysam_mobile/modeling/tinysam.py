"""The TinySAM student: TinyViT-5M encoder, SAM prompt encoder, SAM mask decoder."""

from dataclasses import dataclass

import torch
from torch import nn

from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .tiny_vit import TinyViT

EMBED_DIM = 256
ENCODER_STRIDE = 16


@dataclass(frozen=True)
class TinySamConfig:
    """img_size 1024 is TinySAM's and the only size artifacts ship at; smaller sizes (multiples of
    64, e.g. 256) keep every weight shape and serve fast logic tests."""

    img_size: int = 1024

    def __post_init__(self) -> None:
        if self.img_size < 64 or self.img_size % 64:
            raise ValueError(f"img_size must be a multiple of 64, got {self.img_size}")

    @property
    def embedding_size(self) -> int:
        return self.img_size // ENCODER_STRIDE

    @property
    def low_res_size(self) -> int:
        return self.embedding_size * 4


class TinySam(nn.Module):
    def __init__(self, config: TinySamConfig = TinySamConfig()) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = TinyViT(out_chans=EMBED_DIM)
        self.prompt_encoder = PromptEncoder(EMBED_DIM, config.embedding_size, config.img_size)
        self.mask_decoder = MaskDecoder(EMBED_DIM)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised, padded images (B, 3, S, S) -> embeddings (B, 256, S/16, S/16)."""
        return self.image_encoder(images)

    def decode(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor,
               mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The deployment decoder contract (SAM's ONNX one, TinySAM's three outputs).

        image_embeddings (1 or B, 256, h, w); point_coords (B, N, 2) in the S x S input frame;
        point_labels (B, N) float; mask_input (B, 1, 4h, 4w) low-res logits; has_mask_input (B,).
        Returns low-res mask logits (B, 3, 4h, 4w) and IoU predictions (B, 3).
        """
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels)
        dense = self.prompt_encoder.embed_mask(mask_input, has_mask_input)
        return self.mask_decoder(image_embeddings, self.prompt_encoder.dense_pe(), sparse, dense)


class EncoderModule(nn.Module):
    """The encoder alone, as converters export it."""

    def __init__(self, model: TinySam) -> None:
        super().__init__()
        self.image_encoder = model.image_encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(images)


class DecoderModule(nn.Module):
    """Prompt encoder + mask decoder behind the fixed deployment signature."""

    def __init__(self, model: TinySam) -> None:
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        return self.model.decode(image_embeddings, point_coords, point_labels, mask_input, has_mask_input)
