"""PyTorch (eager, FP32) runner: the reference every other backend is measured against."""

from typing import Optional

import numpy as np
import torch

from ..modeling import TinySam
from ..modeling.iou_only import IouOnlyDecoder


# The decoder's per-prompt cost grows with the batch on a CPU: each prompt carries its own 4096 image
# tokens through the two-way transformer, and large batches of them fall out of cache. Measured on
# 2 cores (seeded 1024 model, `tinysam-mobile benchmark`): ~44 ms per prompt in chunks of 4, ~100 ms
# when the 64 prompts go in one call.
DECODE_CHUNK = 4
# IouOnlyDecoder's IoUs differ from decode()'s by float32 re-association only: measured up to 1.2e-4 on
# weights whose IoU outputs span [-23, 54], ~1e-7 on seeded ones. Prompts within this margin of the
# threshold are decoded in full, so decode_filtered keeps exactly the prompts decode() would.
IOU_SCREEN_MARGIN = 0.01
# Prompts per IouOnlyDecoder call (each carries a few 56 x 4096 float arrays at 1024 input). Measured
# (1 thread, coffee, seeded 1024 model, loaded machine): 8.4 ms CPU per prompt in chunks of 4, 9.6 in
# chunks of 2, 12 in chunks of 8 or 16, whose arrays leave the cache.
SCREEN_CHUNK = 4


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, np.float32))


class TorchRunner:
    name = "torch"
    min_tokens: int = 1
    max_tokens: Optional[int] = None  # any prompt, exactly

    def __init__(self, model: TinySam, batch_size: int = 64, decode_chunk: int = DECODE_CHUNK) -> None:
        self.model = model.eval()
        self.img_size = model.config.img_size
        self.batch_size = batch_size
        self.decode_chunk = decode_chunk
        self._iou_only: Optional[tuple[np.ndarray, IouOnlyDecoder]] = None

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.model.encode(_tensor(image)).numpy()

    @torch.inference_mode()
    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        embedding, chunk = _tensor(embedding), self.decode_chunk
        outputs = [
            self.model.decode(embedding, _tensor(point_coords[i:i + chunk]), _tensor(point_labels[i:i + chunk]),
                              _tensor(mask_input[i:i + chunk]), _tensor(has_mask_input[i:i + chunk]))
            for i in range(0, len(point_labels), chunk)
        ]
        return torch.cat([o[0] for o in outputs]).numpy(), torch.cat([o[1] for o in outputs]).numpy()

    def decode_filtered(self, embedding: np.ndarray, point_coords: np.ndarray, point_labels: np.ndarray,
                        iou_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Everything mode's decode: prompts without mask input, of which only those with some predicted
        IoU above iou_threshold matter. Returns the indices of those prompts and their decode() outputs
        (low-res logits, IoUs); every prompt left out has all its IoUs <= iou_threshold.

        The IoUs of all prompts come from IouOnlyDecoder (no masks, image work shared); only the prompts
        within IOU_SCREEN_MARGIN of passing are decoded in full."""
        screen, step = self._screen(embedding), SCREEN_CHUNK
        iou = torch.cat([screen(_tensor(point_coords[i:i + step]), _tensor(point_labels[i:i + step]))
                         for i in range(0, len(point_labels), step)]).numpy()
        index = np.flatnonzero((iou > iou_threshold - IOU_SCREEN_MARGIN).any(1))
        side = embedding.shape[-1] * 4
        if len(index) == 0:
            return index, np.zeros((0, iou.shape[1], side, side), np.float32), np.zeros((0, iou.shape[1]), np.float32)
        low_res, iou = self.decode(embedding, point_coords[index], point_labels[index],
                                   np.zeros((len(index), 1, side, side), np.float32), np.zeros(len(index), np.float32))
        return index, low_res, iou

    def _screen(self, embedding: np.ndarray) -> IouOnlyDecoder:
        # Everything mode calls decode_filtered batch after batch with one image: build its shared part once.
        if self._iou_only is None or not np.array_equal(self._iou_only[0], embedding):
            self._iou_only = (np.array(embedding, copy=True), IouOnlyDecoder(self.model, _tensor(embedding)))
        return self._iou_only[1]
