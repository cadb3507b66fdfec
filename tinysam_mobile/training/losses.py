"""SAM's training losses: 20 x focal + dice on each mask, MSE of the IoU head against the true IoU."""

import torch
import torch.nn.functional as F

FOCAL_WEIGHT = 20.0
DICE_WEIGHT = 1.0
IOU_WEIGHT = 1.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Per-mask mean sigmoid focal loss over pixels: (..., H, W) -> (...)."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    weight = alpha * target + (1 - alpha) * (1 - target)
    return (weight * ce * (1 - p_t) ** gamma).flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-mask soft dice loss: (..., H, W) -> (...)."""
    p = torch.sigmoid(logits).flatten(-2)
    t = target.flatten(-2)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded prediction (logit > 0) with a binary target: (..., H, W) -> (...)."""
    pred = logits > 0
    gt = target > 0.5
    inter = (pred & gt).flatten(-2).sum(-1)
    union = (pred | gt).flatten(-2).sum(-1)
    return inter.float() / union.clamp(min=1).float()


def prompt_losses(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor, ambiguous: torch.Tensor,
                  focal_weight: float = FOCAL_WEIGHT) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """logits (P, 3, H, W), iou_pred (P, 3), target (P, H, W) in [0, 1], ambiguous (P,) bool.

    Ambiguous prompts train only the token with the lowest mask loss (SAM's best-of-3); the others
    train all three. The IoU head learns every token's true IoU.
    """
    target3 = target[:, None].expand_as(logits)
    per_token = focal_weight * focal_loss(logits, target3) + DICE_WEIGHT * dice_loss(logits, target3)
    mask_term = torch.where(ambiguous, per_token.min(dim=1).values, per_token.mean(dim=1))
    true_iou = mask_iou(logits.detach(), target3)
    iou_term = F.mse_loss(iou_pred.float(), true_iou, reduction="none").mean(dim=1)
    loss = (mask_term + IOU_WEIGHT * iou_term).mean()
    return loss, {"mask": mask_term.mean().detach(), "iou_mse": iou_term.mean().detach(),
                  "true_iou": true_iou.max(dim=1).values.mean()}
