"""The training loop: generated scenes, prompts sampled from their masks, SAM's losses, resumable state.

Everything random is derived from (seed, step), so a run resumed from a saved state sees exactly the
data and prompts it would have seen without the interruption. Scene seeds used for training are
step * batch_size + i, always below EVAL_SEED_START (the held-out range evaluation draws from).
"""

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Optional

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
from .losses import FOCAL_WEIGHT, prompt_losses

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
    loss_size: int = 512  # masks are compared at min(step size, loss_size) pixels
    focal_weight: float = FOCAL_WEIGHT  # SAM's 20; lower weights favour dice, which never rewards an empty mask
    # Multi-resolution: each step draws its input size from these (every weight is resolution-independent);
    # empty means every step at img_size.
    sizes: tuple[int, ...] = ()
    # Curriculum: the first easy_steps use easy scenes only (flat fills, a few large objects), after which
    # easy_fraction of the scenes stay easy so what was learnt there is not forgotten.
    easy_steps: int = 0
    easy_fraction: float = 0.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for size in (self.img_size, *self.sizes):
            TinySamConfig(size)  # validates the size
        if self.steps * self.batch_size > EVAL_SEED_START:
            raise ValueError("training would reach the held-out scene seeds")
        if not 0.0 <= self.easy_fraction <= 1.0:
            raise ValueError(f"easy_fraction must lie in [0, 1], got {self.easy_fraction}")

    def step_size(self, step: int) -> int:
        """The input size of one step, drawn from sizes by (seed, step)."""
        if not self.sizes:
            return self.img_size
        return int(np.random.default_rng([self.seed, step, 2]).choice(self.sizes))

    def easy(self, step: int, image: int) -> bool:
        """Whether one image of one step is an easy (curriculum) scene."""
        if step < self.easy_steps:
            return True
        return bool(np.random.default_rng([self.seed, step, 3, image]).random() < self.easy_fraction)


# Flat fills and a few large objects: every mask is a colour region, so the click-to-object association
# can form before textures make the boundaries hard.
EASY_SCENE = dict(flat_fills=True, min_objects=2, max_objects=5, min_radius=0.12, max_radius=0.4)


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


def use_input_size(model: TinySam, size: int) -> None:
    """Point the model at another input size in place: only the prompt encoder's frame depends on it."""
    model.config = TinySamConfig(size)
    model.prompt_encoder.input_image_size = size
    model.prompt_encoder.image_embedding_size = model.config.embedding_size


def make_batch(config: TrainConfig, step: int) -> Batch:
    """Scenes with the long side at the step's size and a random aspect ratio (the rest is padding, as at
    inference)."""
    rng = np.random.default_rng([config.seed, step, 1])
    size = config.step_size(step)
    images, masks = [], []
    for i in range(config.batch_size):
        short = int(size * rng.uniform(0.6, 1.0))
        h, w = (size, short) if rng.random() < 0.5 else (short, size)
        extra = EASY_SCENE if config.easy(step, i) else {}
        scene = generate_scene(step * config.batch_size + i, SceneConfig(height=h, width=w, **extra))
        images.append(normalize_and_pad(scene.image, size)[0])
        padded = np.zeros((len(scene.masks), size, size), bool)
        padded[:, :h, :w] = scene.masks
        masks.append(padded)
    return Batch(torch.from_numpy(np.stack(images)), masks)


class StepBatches(torch.utils.data.Dataset):
    """The batch of each step, by step number: DataLoader workers generate scenes ahead of the training
    loop (on a GPU machine's spare cores) and still give the exact data of a serial run."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    def __len__(self) -> int:
        return self.config.steps

    def __getitem__(self, step: int) -> Batch:
        return make_batch(self.config, step)


def _unbatched(batch: Batch) -> Batch:  # module level: worker processes pickle the collate function
    return batch


def batches(config: TrainConfig, first: int, last: int, workers: int) -> Iterator[Batch]:
    """Batches of steps first..last-1, in order, generated in `workers` processes (0: in this one)."""
    if workers == 0:
        return (make_batch(config, step) for step in range(first, last))
    loader = torch.utils.data.DataLoader(StepBatches(config), sampler=range(first, last), batch_size=None,
                                         collate_fn=_unbatched, num_workers=workers, prefetch_factor=4,
                                         persistent_workers=False)
    return iter(loader)


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
            loss, parts = prompt_losses(up, iou, target, ambiguous, config.focal_weight)
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
    use_input_size(model, batch.images.shape[-1])
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
    seconds: float = 0.0  # training wall time so far, across resumes (the learning curve's x axis)


def new_state(config: TrainConfig, init_weights: Optional[dict[str, torch.Tensor]] = None) -> TrainState:
    """A fresh run: TinyViT-initialised weights, or init_weights (a full state dict) with a new optimiser."""
    model = new_model(config)
    if init_weights is not None:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in init_weights.items()})
    model = model.to(config.device)
    optimizer, scheduler = make_optimizer(model, config)
    return TrainState(model, optimizer, scheduler, config)


def save_state(state: TrainState, path: "str | Path") -> None:
    """Everything needed to continue exactly: weights, optimiser, schedule, step, config, RNG."""
    payload = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "step": state.step,
        "seconds": state.seconds,
        "config": asdict(state.config),
        "torch_rng": torch.get_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_state(path: "str | Path", **overrides) -> TrainState:
    """A saved state; overrides (steps, device, img_size, ...) replace saved config fields, e.g. to
    continue on a GPU or at another resolution (every weight is resolution-independent)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    saved = {**payload["config"], "sizes": tuple(payload["config"].get("sizes", ()))}
    config = replace(TrainConfig(**saved), **{k: v for k, v in overrides.items() if v is not None})
    state = new_state(config)
    state.model.load_state_dict(payload["model"], strict=True)
    state.optimizer.load_state_dict(payload["optimizer"])
    state.scheduler.load_state_dict(payload["scheduler"])
    state.step = int(payload["step"])
    state.seconds = float(payload.get("seconds", 0.0))
    torch.set_rng_state(payload["torch_rng"])
    return state


# The exported weights again split in two files (fp16 ~12 MB and ~8 MB), for machines that only hand
# back files below 16 MiB; `tinysam-mobile join-weights` puts them together.
WEIGHT_PARTS = {"encoder": ("image_encoder.",), "decoder": ("prompt_encoder.", "mask_decoder.")}


def export_weights(model: TinySam, path: "str | Path", parts: bool = False) -> None:
    """The official state dict, floating tensors as float16, in a safetensors file; with parts, also as
    <stem>.encoder.safetensors and <stem>.decoder.safetensors beside it."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in model.state_dict().items()}
    files = {path: tensors}
    if parts:
        for name, prefixes in WEIGHT_PARTS.items():
            files[path.with_suffix(f".{name}.safetensors")] = {
                k: v for k, v in tensors.items() if k.startswith(prefixes)}
    for target, content in files.items():
        with atomic_path(target) as tmp:
            save_file(content, str(tmp), metadata={"format": "pt"})


def train(state: TrainState, out_dir: "str | Path", save_every: int = 100,
          on_step: Optional[Callable[[int, dict[str, float], bool], None]] = None,
          stop_at: Optional[int] = None, workers: int = 0, time_limit: Optional[float] = None) -> TrainState:
    """Run from state.step to config.steps (or to stop_at, the end of a time slice, or until time_limit
    seconds of this call have passed), saving out_dir/state.pt every save_every steps and where it
    stops; `workers` processes generate the scenes."""
    out_dir = Path(out_dir)
    config = state.config
    last = config.steps if stop_at is None else min(stop_at, config.steps)
    began = started = time.perf_counter()
    for batch in batches(config, state.step, last, workers):
        batch.images = batch.images.to(config.device, non_blocking=True)
        metrics = train_step(state.model, state.optimizer, state.scheduler, batch, step_rng(config, state.step), config)
        state.step += 1
        metrics["seconds"] = time.perf_counter() - started  # the step and the wait for its batch
        metrics["size"] = batch.images.shape[-1]
        state.seconds += metrics["seconds"]
        out_of_time = time_limit is not None and time.perf_counter() - began > time_limit
        if state.step % save_every == 0 or state.step == last or out_of_time:
            save_state(state, out_dir / "state.pt")
        if on_step is not None:
            on_step(state.step, metrics, out_of_time)
        if out_of_time:
            break
        started = time.perf_counter()  # evaluation inside on_step is not training time
    return state
