"""PyTorch (eager, FP32) runner: the reference every other backend is measured against."""

from typing import Optional

import numpy as np
import torch

from ..modeling import TinySam


class TorchRunner:
    name = "torch"
    num_points: Optional[int] = None

    def __init__(self, model: TinySam, batch_size: int = 64) -> None:
        self.model = model.eval()
        self.img_size = model.config.img_size
        self.batch_size = batch_size

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.model.encode(torch.from_numpy(np.ascontiguousarray(image, np.float32))).numpy()

    @torch.inference_mode()
    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
        logits, iou = self.model.decode(t(embedding), t(point_coords), t(point_labels), t(mask_input),
                                        t(has_mask_input))
        return logits.numpy(), iou.numpy()
