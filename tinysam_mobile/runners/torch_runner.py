"""PyTorch (eager, FP32) runner: the reference every other backend is measured against."""

from typing import Optional

import numpy as np
import torch

from ..modeling import TinySam


# The decoder's per-prompt cost grows with the batch on a CPU: each prompt carries its own 4096 image
# tokens through the two-way transformer, and large batches of them fall out of cache. Measured on
# 2 cores (seeded 1024 model, `tinysam-mobile benchmark`): ~44 ms per prompt in chunks of 4, ~100 ms
# when the 64 prompts go in one call.
DECODE_CHUNK = 4


class TorchRunner:
    name = "torch"
    num_points: Optional[int] = None

    def __init__(self, model: TinySam, batch_size: int = 64, decode_chunk: int = DECODE_CHUNK) -> None:
        self.model = model.eval()
        self.img_size = model.config.img_size
        self.batch_size = batch_size
        self.decode_chunk = decode_chunk

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.model.encode(torch.from_numpy(np.ascontiguousarray(image, np.float32))).numpy()

    @torch.inference_mode()
    def decode(self, embedding, point_coords, point_labels, mask_input, has_mask_input):
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
        embedding = t(embedding)
        outputs = [
            self.model.decode(embedding, t(point_coords[i:i + self.decode_chunk]),
                              t(point_labels[i:i + self.decode_chunk]), t(mask_input[i:i + self.decode_chunk]),
                              t(has_mask_input[i:i + self.decode_chunk]))
            for i in range(0, len(point_labels), self.decode_chunk)
        ]
        return torch.cat([o[0] for o in outputs]).numpy(), torch.cat([o[1] for o in outputs]).numpy()
