"""The training loop: generated scenes, prompts sampled from their masks, SAM's losses, resumable state.

Everything random is derived from (seed, step), so a run resumed from a saved state sees exactly the
data and prompts it would have seen without the interruption. Scene seeds used for training are
step * batch_size + i, always below EVAL_SEED_START (the held-out range evaluation draws from).
"""

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import SceneConfig, generate_scene
from ..modeling import TinySam, TinySamConfig
from ..utils.files import atomic_path
from ..utils.prompts import pad_points
from ..utils.transforms import normalize_and_pad
from . import prompts
from .losses import prompt_losses

EVAL_SEED_START = 1_000_000_000


@dataclass(frozen=True)
class TrainConfig:
    img_size: int = 256
    steps: int = 2000
    batch_size: int = 2  # images per step (one encoder pass)
    prompts_per_image: int = 8  # decoded together, batched over prompts
    refine_rounds: int = 1  # extra rounds with the previous low-res logits as mask_input plus a correction click
    lr: float = 6e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    final_lr_fraction: float = 0.05
    grad_clip: float = 1.0
    loss_size: int = 512  # masks are compared at min(img_size, loss_size) pixels
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        TinySamConfig(self.img_size)  # validates the size
        if self.steps * self.batch_size > EVAL_SEED_START:
            raise ValueError("training would reach the held-out scene seeds")


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, S, S) normalised and padded, on the training device
    masks: list[np.ndarray]  # per image (K, S, S) bool, padded like the image


def init_weights(model: TinySam) -> None:
    """TinyViT's initialisation for the encoder (truncated normal linears, unit LayerNorms); SAM's
    prompt encoder and decoder keep PyTorch's defaults, as SAM does."""
    for module in model.image_encoder.modules():
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def new_model(config: TrainConfig) -> TinySam:
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = TinySam(TinySamConfig(config.img_size))
        init_weights(model)
    return model


def step_rng(config: TrainConfig, step: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, step])


def make_batch(config: TrainConfig, step: int) -> Batch:
    """Scenes with the long side at img_size and a random aspect ratio (the rest is padding, as at inference)."""
    rng = np.random.default_rng([config.seed, step, 1])
    size = config.img_size
    images, masks = [], []
    for i in range(config.batch_size):
        short = int(size * rng.uniform(0.6, 1.0))
        h, w = (size, short) if rng.random() < 0.5 else (short, size)
        scene = generate_scene(step * config.batch_size + i, SceneConfig(height=h, width=w))
        images.append(normalize_and_pad(scene.image, size)[0])
        padded = np.zeros((len(scene.masks), size, size), bool)
        padded[:, :h, :w] = scene.masks
        masks.append(padded)
    return Batch(torch.from_numpy(np.stack(images)).to(config.device), masks)


def _autocast(device: str):
    # bf16 on CUDA; CPU stays in float32 (its bf16 autocast is slower than fp32 on most CPUs).
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))


def _decode_group(model: TinySam, embeddings: torch.Tensor, group: list[dict], mask_input: Optional[torch.Tensor],
                  device: str) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.from_numpy(np.stack([g["coords"] for g in group])).to(device)
    labels = torch.from_numpy(np.stack([g["labels"] for g in group])).to(device)
    index = torch.tensor([g["image"] for g in group], device=device)
    low = model.config.low_res_size
    if mask_input is None:
        mask_input = torch.zeros(len(group), 1, low, low, device=device)
        has_mask = torch.zeros(len(group), device=device)
    else:
        has_mask = torch.ones(len(group), device=device)
    with _autocast(device):
        logits, iou = model.decode(embeddings[index], coords, labels, mask_input, has_mask)
    return logits.float(), iou.float()


def _sample_groups(rng: np.random.Generator, config: TrainConfig, batch: Batch) -> list[list[dict]]:
    """Prompts of the step grouped by kind (each group has one slot count and decodes in one call)."""
    clicks = int(rng.integers(2, 5))
    extra_pad = int(rng.integers(1, 4)) if rng.random() < 0.3 else 0
    groups = {kind: [] for kind in prompts.KINDS}
    for i, masks in enumerate(batch.masks):
        if not len(masks):
            continue
        chosen = rng.choice(len(masks), config.prompts_per_image, replace=len(masks) < config.prompts_per_image)
        for k in chosen:
            kind = str(rng.choice(prompts.KINDS, p=[0.4, 0.3, 0.3]))
            coords, labels = prompts.first_prompt(rng, kind, masks[k], clicks)
            groups[kind].append({"image": i, "object": int(k), "coords": coords, "labels": labels,
                                 "ambiguous": kind == "point", "pad": extra_pad})
    for group in groups.values():
        for g in group:
            g["coords"], g["labels"] = pad_points(g["coords"], g["labels"], len(g["labels"]) + g["pad"])
    return [group for group in groups.values() if group]


def _targets(batch: Batch, group: list[dict], size: int, device: str) -> torch.Tensor:
    full = torch.from_numpy(np.stack([batch.masks[g["image"]][g["object"]] for g in group])).to(device)
    full = full[:, None].float()
    if full.shape[-1] != size:
        full = F.interpolate(full, size=(size, size), mode="area")
    return full[:, 0]


def compute_loss(model: TinySam, batch: Batch, rng: np.random.Generator, config: TrainConfig
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """Encode the batch once, then decode every prompt group for 1 + refine_rounds rounds."""
    device = config.device
    size = model.config.img_size
    loss_size = min(size, config.loss_size)
    with _autocast(device):
        embeddings = model.encode(batch.images)
    total, count, stats = 0.0, 0, {}
    for group in _sample_groups(rng, config, batch):
        target = _targets(batch, group, loss_size, device)
        mask_input = None
        for round_ in range(1 + config.refine_rounds):
            logits, iou = _decode_group(model, embeddings, group, mask_input, device)
            ambiguous = torch.tensor([g["ambiguous"] and round_ == 0 for g in group], device=device)
            up = F.interpolate(logits, size=(loss_size, loss_size), mode="bilinear", align_corners=False)
            loss, parts = prompt_losses(up, iou, target, ambiguous)
            total = total + loss * len(group)
            count += len(group)
            for name, value in parts.items():
                stats[name] = stats.get(name, 0.0) + float(value) * len(group)
            if round_ == config.refine_rounds:
                break
            # Next round: the mask an app would keep (highest predicted IoU) goes back in, plus a click on an error.
            best = iou.argmax(dim=1)
            chosen = logits[torch.arange(len(group), device=device), best][:, None].detach()
            predicted = (F.interpolate(chosen, size=(size, size), mode="bilinear", align_corners=False)[:, 0] > 0)
            predicted = predicted.cpu().numpy()
            for g, pred in zip(group, predicted):
                xy, label = prompts.correction_click(rng, pred, batch.masks[g["image"]][g["object"]])
                g["coords"], g["labels"] = prompts.add_click(g["coords"], g["labels"], xy, label)
            mask_input = chosen
    if not count:  # no scene of the batch kept an object: a zero loss that still reaches every weight
        return embeddings.sum() * 0.0, {}
    stats = {name: value / count for name, value in stats.items()}
    return total / count, stats


def lr_factor(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to final_lr_fraction."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    return config.final_lr_fraction + (1 - config.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: TinySam, config: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    # No weight decay on norms, biases and position-bias tables (the usual ViT recipe).
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 or "attention_biases" in name or "embed" in name else decay).append(param)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step))
    return optimizer, scheduler


def train_step(model: TinySam, optimizer: torch.optim.Optimizer, scheduler, batch: Batch,
               rng: np.random.Generator, config: TrainConfig) -> dict[str, float]:
    model.train()
    loss, stats = compute_loss(model, batch, rng, config)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    scheduler.step()
    return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0], **stats}


@dataclass
class TrainState:
    model: TinySam
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    config: TrainConfig
    step: int = 0


def new_state(config: TrainConfig) -> TrainState:
    model = new_model(config).to(config.device)
    optimizer, scheduler = make_optimizer(model, config)
    return TrainState(model, optimizer, scheduler, config)


def save_state(state: TrainState, path: "str | Path") -> None:
    """Everything needed to continue exactly: weights, optimiser, schedule, step, config, RNG."""
    payload = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "step": state.step,
        "config": asdict(state.config),
        "torch_rng": torch.get_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_state(path: "str | Path", **overrides) -> TrainState:
    """A saved state; overrides (steps, device, img_size, ...) replace saved config fields, e.g. to
    continue on a GPU or at another resolution (every weight is resolution-independent)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    config = replace(TrainConfig(**payload["config"]), **{k: v for k, v in overrides.items() if v is not None})
    state = new_state(config)
    state.model.load_state_dict(payload["model"], strict=True)
    state.optimizer.load_state_dict(payload["optimizer"])
    state.scheduler.load_state_dict(payload["scheduler"])
    state.step = int(payload["step"])
    torch.set_rng_state(payload["torch_rng"])
    return state


def export_weights(model: TinySam, path: "str | Path") -> None:
    """The official state dict, floating tensors as float16, in a safetensors file."""
    from safetensors.torch import save_file

    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})


def train(state: TrainState, out_dir: "str | Path", save_every: int = 100,
          on_step: Optional[Callable[[int, dict[str, float]], None]] = None,
          stop_at: Optional[int] = None) -> TrainState:
    """Run from state.step to config.steps (or to stop_at, the end of a time slice), saving
    out_dir/state.pt every save_every steps and where it stops."""
    out_dir = Path(out_dir)
    config = state.config
    last = config.steps if stop_at is None else min(stop_at, config.steps)
    while state.step < last:
        started = time.perf_counter()
        batch = make_batch(config, state.step)
        metrics = train_step(state.model, state.optimizer, state.scheduler, batch, step_rng(config, state.step), config)
        state.step += 1
        metrics["seconds"] = time.perf_counter() - started
        if on_step is not None:
            on_step(state.step, metrics)
        if state.step % save_every == 0 or state.step == last:
            save_state(state, out_dir / "state.pt")
    return state
