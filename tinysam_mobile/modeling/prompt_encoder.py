"""SAM prompt encoder, written for fixed-shape export: every prompt is a point with a label.

Labels follow SAM's ONNX decoder contract: -1 padding, 0 negative, 1 positive, 2 / 3 box
top-left / bottom-right. No data-dependent indexing, so the same code exports to LiteRT and CoreML.
"""

import math

import torch
from torch import nn

from .common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates."""

    def __init__(self, num_pos_feats: int = 128) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """coords in [0, 1], shape (..., 2) -> (..., 2 * num_pos_feats)."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def dense(self, height: int, width: int) -> torch.Tensor:
        """(C, H, W) encoding of the embedding grid's cell centres."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
        grid = torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)], dim=-1)
        return self.encode(grid).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int, image_embedding_size: int, input_image_size: int,
                 mask_in_chans: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0 negative point, 1 positive point, 2 box top-left, 3 box bottom-right.
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2), LayerNorm2d(mask_in_chans // 4), nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2), LayerNorm2d(mask_in_chans),
            nn.GELU(), nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        """(1, C, h, w) positional encoding of the image embedding."""
        side = self.image_embedding_size
        return self.pe_layer.dense(side, side).unsqueeze(0)

    def point_features(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (B, N, 2) in the input frame (pixels of the padded square) -> (B, N, C) Fourier features."""
        return self.pe_layer.encode((coords + 0.5) / self.input_image_size)  # SAM shifts to the pixel centre

    def embed_point_features(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Point tokens from their Fourier features and labels (B, N) float: padding points (-1) become
        not_a_point_embed, the others add their label's embedding. The label tests select 1 or 0 rather
        than casting the comparison: full-integer graphs have an int8 select, no integer cast from bool."""
        labels = labels.unsqueeze(-1)
        one, zero = torch.ones_like(labels), torch.zeros_like(labels)  # tensors: coremltools has no scalar where
        is_pad = torch.where(labels == -1, one, zero)
        embedding = features * (1 - is_pad) + self.not_a_point_embed.weight * is_pad
        for label, table in enumerate(self.point_embeddings):
            embedding = embedding + table.weight * torch.where(labels == label, one, zero)
        return embedding

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """coords (B, N, 2) in the input frame, labels (B, N) float."""
        return self.embed_point_features(self.point_features(coords), labels)

    def embed_mask(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """Dense prompt: downscaled mask where has_mask_input is 1, the learned no-mask embedding else."""
        has_mask = has_mask_input.reshape(-1, 1, 1, 1).to(mask_input.dtype)
        no_mask = self.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return has_mask * self.mask_downscaling(mask_input) + (1 - has_mask) * no_mask
