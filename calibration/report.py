"""Fidelity of quantized TinySAM variants against FP32 on held-out images and prompts.

Metric: mean mask IoU vs FP32 (pycocotools), masks thresholded at 0 after SAM's upscaling to the
original image size; "all" compares the three outputs index by index, "best" compares the mask each
model picks by its own highest predicted IoU (what an app shows).
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..modeling.tinysam import TinySam
from ..utils.transforms import MASK_THRESHOLD, upscale_logits
from ..validation.metrics import mask_ious
from .dataset import PromptedImage
from .scales import OpScales, Quantizer, ScalesFile

# (image (1, 3, S, S), coords (P, N, 2), labels (P, N)) -> (low-res logits (P, 3, s, s), iou (P, 3)), numpy
PredictFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class Fidelity:
    mask_iou_all: float
    mask_iou_best: float
    iou_pred_mae: float
    num_masks: int


def torch_predict(model: TinySam) -> PredictFn:
    def predict(image, coords, labels):
        prompts, side = coords.shape[0], model.config.low_res_size
        with torch.no_grad():
            embedding = model.encode(torch.from_numpy(image))
            logits, iou = model.decode(embedding, torch.from_numpy(coords), torch.from_numpy(labels),
                                       torch.zeros(prompts, 1, side, side), torch.zeros(prompts))
        return logits.numpy(), iou.numpy()
    return predict


def runner_predict(runner) -> PredictFn:
    """A Runner (LiteRT, CoreML, ONNX artifacts), one prompt at a time with the tokens torch_predict decodes
    (the calibration set's prompts, padded to one length so that they batch)."""
    def predict(image, coords, labels):
        embedding = runner.encode(image)
        side = embedding.shape[-1] * 4
        outputs = []
        for c, lab in zip(coords, labels):
            outputs.append(runner.decode(embedding, c[None], lab[None], np.zeros((1, 1, side, side), np.float32),
                                         np.zeros(1, np.float32)))
        return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs])
    return predict


def _masks(logits: np.ndarray, sample: PromptedImage, img_size: int) -> np.ndarray:
    return upscale_logits(logits, sample.input_size, sample.original_size, img_size) > MASK_THRESHOLD


def fidelity(reference: PredictFn, candidates: dict[str, PredictFn], samples: list[PromptedImage], img_size: int,
             progress: Callable[[], None] = lambda: None) -> dict[str, Fidelity]:
    """Mean mask IoU (and IoU-prediction error) of every candidate against the reference."""
    scores: dict[str, dict[str, list[float]]] = {name: {"all": [], "best": [], "mae": []} for name in candidates}
    for sample in samples:
        args = (sample.image.numpy(), sample.coords.numpy(), sample.labels.numpy())
        ref_logits, ref_iou = reference(*args)
        ref_masks = _masks(ref_logits, sample, img_size)
        for name, predict in candidates.items():
            logits, iou = predict(*args)
            masks = _masks(logits, sample, img_size)
            for p in range(masks.shape[0]):
                scores[name]["all"] += mask_ious(masks[p], ref_masks[p]).tolist()
                scores[name]["best"].append(float(mask_ious(masks[p, iou[p].argmax()][None], ref_masks[p, ref_iou[p].argmax()][None])[0]))
            scores[name]["mae"].append(float(np.abs(iou - ref_iou).mean()))
            progress()
    return {name: Fidelity(float(np.mean(s["all"])), float(np.mean(s["best"])), float(np.mean(s["mae"])),
                           len(s["all"])) for name, s in scores.items()}


def single_scale_twins(scales: ScalesFile) -> ScalesFile:
    """Every twin-uniform quantizer replaced by one symmetric uniform scale over the same range
    (what a format without twin-uniform can do): measures what twin-uniform buys."""
    ops = {}
    for name, op in scales.ops.items():
        quantizers = {}
        for operand, q in op.quantizers.items():
            if q.scheme == "uniform":
                quantizers[operand] = q
            else:
                low, high = q.covered_range()
                quantizers[operand] = Quantizer("uniform", q.bits, torch.tensor([max(-low, high) / q.qmax]))
        ops[name] = OpScales(op.kind, quantizers)
    return ScalesFile(scales.checkpoint_sha256, f"{scales.method}+single-scale", ops, scales.seed)
