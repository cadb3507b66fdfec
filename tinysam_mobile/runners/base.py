"""The runner interface every backend (PyTorch, LiteRT, CoreML, ONNX Runtime) implements."""

from typing import Optional, Protocol

import numpy as np


class Runner(Protocol):
    """Encoder and decoder of one TinySAM model on one backend. All tensors are numpy float32.

    - img_size: side of the square encoder input (1024 for every shipped artifact).
    - min_tokens, max_tokens: the prompt-token counts the decoder takes (a prompt's points, then 2 box
      corners or 1 padding point), each exactly, never padded; max_tokens None: any count.
    - batch_size: how many prompts one decoder call evaluates at best; decode() accepts any
      batch and splits or pads internally, so this is only a hint for everything mode.

    Optional: decode_filtered(embedding, point_coords, point_labels, iou_threshold) -> (indices, low-res
    logits, IoUs) decodes only the prompts (no mask input) some of whose masks predict IoU above the
    threshold, with decode()'s outputs for them; everything mode uses it when present (TorchRunner).
    """

    name: str
    img_size: int
    min_tokens: int
    max_tokens: Optional[int]
    batch_size: int

    def encode(self, image: np.ndarray) -> np.ndarray:
        """(1, 3, S, S) normalised, zero-padded image -> (1, 256, S/16, S/16) embedding."""
        ...

    def decode(self, embedding: np.ndarray, point_coords: np.ndarray, point_labels: np.ndarray,
               mask_input: np.ndarray, has_mask_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """embedding (1, 256, h, w); point_coords (B, N, 2) in the input frame; point_labels (B, N);
        mask_input (B, 1, 4h, 4w); has_mask_input (B,) -> (low-res logits (B, 3, 4h, 4w), IoU (B, 3))."""
        ...
