"""SAM mask decoder with TinySAM's output semantics.

TinySAM always answers with mask tokens 1..3 (three masks and three IoU predictions); token 0,
SAM's single-mask token, is trained away and never returned. "Single mask" means the one of the
three with the highest predicted IoU (see utils.postprocess.best_mask).
"""

import torch
from torch import nn

from .common import MLP, LayerNorm2d, MatMul
from .transformer import TwoWayTransformer

NUM_MASK_TOKENS = 4
TINYSAM_TOKENS = slice(1, 4)


class MaskDecoder(nn.Module):
    def __init__(self, transformer_dim: int = 256, iou_head_hidden_dim: int = 256) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(embedding_dim=transformer_dim)
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(NUM_MASK_TOKENS, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4), nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2), nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(NUM_MASK_TOKENS)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, NUM_MASK_TOKENS, 3)
        self.mask_matmul = MatMul()

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image_embeddings (1 or B, C, h, w); sparse (B, N, C); dense (1 or B, C, h, w).

        Returns low-res logits (B, 3, 4h, 4w) and IoU predictions (B, 3) of tokens 1..3.
        """
        batch = sparse.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse], dim=1)
        # expand, not repeat_interleave: one embedding serves every prompt of the batch.
        src = (image_embeddings + dense).expand(batch, -1, -1, -1)
        pos = image_pe.expand(batch, -1, -1, -1)
        _, c, h, w = src.shape

        hs, src = self.transformer(src, pos, tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1:1 + NUM_MASK_TOKENS, :]

        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(batch, c, h, w))
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        _, c_up, h_up, w_up = upscaled.shape
        masks = self.mask_matmul(hyper_in, upscaled.reshape(batch, c_up, h_up * w_up)).reshape(batch, -1, h_up, w_up)
        iou_pred = self.iou_prediction_head(iou_token_out)
        return masks[:, TINYSAM_TOKENS], iou_pred[:, TINYSAM_TOKENS]
