"""TinySamPredictor: SamPredictor's shape (set_image once, predict many times) over any runner."""

from typing import Optional

import numpy as np

from .errors import PromptError
from .modeling import TinySam
from .runners import Runner, TorchRunner
from .utils.image_io import load_image
from .utils.prompts import encode_prompts
from .utils.transforms import MASK_THRESHOLD, preprocess, upscale_logits


class TinySamPredictor:
    def __init__(self, model_or_runner: "TinySam | Runner") -> None:
        self.runner: Runner = TorchRunner(model_or_runner) if isinstance(model_or_runner, TinySam) else model_or_runner
        self.reset_image()

    def reset_image(self) -> None:
        self.embedding: Optional[np.ndarray] = None
        self.original_size: Optional[tuple[int, int]] = None
        self.input_size: Optional[tuple[int, int]] = None

    @property
    def is_image_set(self) -> bool:
        return self.embedding is not None

    def set_image(self, image) -> None:
        """Path, PIL image or array (RGB; grayscale/RGBA/16-bit are converted). Runs the encoder once."""
        rgb = load_image(image)
        tensor, self.input_size = preprocess(rgb, self.runner.img_size)
        self.original_size = rgb.shape[:2]
        self.embedding = self.runner.encode(tensor)

    def predict(self, point_coords: Optional[np.ndarray] = None, point_labels: Optional[np.ndarray] = None,
                box: Optional[np.ndarray] = None, mask_input: Optional[np.ndarray] = None,
                multimask_output: bool = True, return_logits: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prompts in original-image pixels: point_coords (N, 2) (x, y), point_labels (N,) 1 / 0,
        box (4,) XYXY, mask_input (1, 256, 256) low-res logits of an earlier call.

        Returns masks (C, H, W) (bool, or logits with return_logits), IoU predictions (C,) and
        low-res logits (C, 256, 256); C is 3, or 1 (the highest predicted IoU, TinySAM's single
        mask) when multimask_output is False.
        """
        if not self.is_image_set:
            raise PromptError("call set_image() before predict()")
        coords, labels = encode_prompts(point_coords, point_labels, box, self.original_size,
                                        self.runner.img_size, self.runner.max_tokens)
        low_res_side = self.embedding.shape[-1] * 4
        if mask_input is None:
            mask = np.zeros((1, 1, low_res_side, low_res_side), np.float32)
            has_mask = np.zeros(1, np.float32)
        else:
            mask = np.asarray(mask_input, np.float32)
            if mask.size != low_res_side * low_res_side:
                raise PromptError(f"mask_input must be the {low_res_side}x{low_res_side} low-res logits of an "
                                  f"earlier call, got shape {mask.shape}")
            mask = mask.reshape(1, 1, low_res_side, low_res_side)
            has_mask = np.ones(1, np.float32)
        low_res, iou = self.runner.decode(self.embedding, coords, labels, mask, has_mask)
        low_res, iou = low_res[0], iou[0]
        if not multimask_output:
            best = int(np.argmax(iou))
            low_res, iou = low_res[best:best + 1], iou[best:best + 1]
        masks = upscale_logits(low_res[None], self.input_size, self.original_size, self.runner.img_size)[0]
        if not return_logits:
            masks = masks > MASK_THRESHOLD
        return masks, iou, low_res
