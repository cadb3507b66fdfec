"""`tinysam-mobile train`: train TinySAM on generated scenes (GPU in bf16, or a small CPU run)."""

from pathlib import Path
from typing import Optional

import typer

from ..errors import TinySamError
from . import app

# A few steps at reduced size: checks the whole loop quickly, on any machine.
SMOKE = {"img_size": 256, "steps": 3, "batch_size": 1, "prompts_per_image": 4}


def _sizes(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise TinySamError(f"--sizes must be comma-separated integers, not {text!r}") from None


def _device(choice: str) -> str:
    import torch

    if choice not in ("auto", "cpu", "cuda"):
        raise TinySamError(f"--device must be auto, cpu or cuda, not {choice!r}")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise TinySamError("--device cuda: no CUDA GPU is visible to PyTorch")
    return choice


@app.command()
def train(
    out: Path = typer.Option(Path("outputs/train"), "--out", "-o",
                             help="Folder for the resumable state (state.pt, rewritten every --save-every "
                                  "steps), the log, and the final fp16 weights (weights.safetensors)."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda. CUDA runs in bf16 autocast."),
    img_size: Optional[int] = typer.Option(None, help="Training resolution, a multiple of 64 (default 256; "
                                                      "1024 is what artifacts ship at). Weights do not depend on it.",
                                           show_default=False),
    steps: Optional[int] = typer.Option(None, help="Total optimiser steps of the run (default 2000); the "
                                                   "learning rate warms up, then follows a cosine to 5%.",
                                        show_default=False),
    batch_size: Optional[int] = typer.Option(None, help="Generated images per step (default 2).", show_default=False),
    prompts_per_image: Optional[int] = typer.Option(None, help="Prompts decoded per image and step (default 8).",
                                                    show_default=False),
    lr: Optional[float] = typer.Option(None, help="Peak AdamW learning rate (default 6e-4).", show_default=False),
    sizes: Optional[str] = typer.Option(None, help="Multi-resolution training: comma-separated input sizes "
                                                   "(multiples of 64), one drawn per step, e.g. 256,384,512.",
                                        show_default=False),
    easy_steps: Optional[int] = typer.Option(None, help="Curriculum: this many first steps on easy scenes only "
                                                        "(flat fills, 2-5 large objects). Default 0.",
                                             show_default=False),
    easy_fraction: Optional[float] = typer.Option(None, help="Share of easy scenes after the curriculum "
                                                             "(default 0).", show_default=False),
    focal_weight: Optional[float] = typer.Option(None, help="Weight of the focal term beside dice (SAM's 20, "
                                                            "the default).", show_default=False),
    refine_rounds: Optional[int] = typer.Option(None, help="Extra decoder rounds per prompt with the previous "
                                                           "mask as mask_input plus a correction click (default 1).",
                                                show_default=False),
    loss_size: Optional[int] = typer.Option(None, help="Masks are compared at min(step size, this) pixels "
                                                       "(default 512).", show_default=False),
    warmup_steps: Optional[int] = typer.Option(None, help="Linear learning-rate warm-up steps (default 100).",
                                               show_default=False),
    resume: Optional[Path] = typer.Option(None, help="Continue from a state.pt: same data order, optimiser and "
                                                     "schedule. Options given here override the saved ones "
                                                     "(e.g. more --steps, --device cuda, another --img-size).",
                                          show_default=False),
    init_weights: Optional[Path] = typer.Option(None, help="Start a new run from these weights (a TinySAM "
                                                           "checkpoint, e.g. the embedded demo model or an "
                                                           "earlier run's weights.safetensors) with a fresh "
                                                           "optimiser.", show_default=False),
    workers: int = typer.Option(0, help="Processes that generate scenes ahead of the training loop "
                                        "(0: in the loop; on a GPU machine, its spare cores)."),
    weight_parts: bool = typer.Option(False, "--weight-parts", help="Also write the weights as "
                                      "weights.encoder.safetensors and weights.decoder.safetensors (each "
                                      "below 16 MiB); `join-weights` puts them back together."),
    save_every: int = typer.Option(100, help="Write the resumable state every this many steps."),
    eval_every: int = typer.Option(0, help="Measure held-out quality at 1024 every this many steps (and at "
                                           "the end) into curve.csv / curve.png in --out; 0: never."),
    eval_scenes: int = typer.Option(10, help="Held-out scenes per learning-curve point."),
    stop_at: Optional[int] = typer.Option(None, help="End this run at this step (a time slice): the state is "
                                                     "saved there and --resume continues the same schedule.",
                                          show_default=False),
    time_limit: Optional[float] = typer.Option(None, help="Stop (saving the state and the weights) once this "
                                                          "many seconds of training have passed.",
                                               show_default=False),
    threads: int = typer.Option(2, help="CPU threads for torch (ignored on CUDA)."),
    seed: int = typer.Option(0, help="Seed of the initial weights and of every sampled prompt."),
    smoke: bool = typer.Option(False, "--smoke", help="Three steps at img_size 256, one image each: a quick "
                                                     "check that training runs here."),
) -> None:
    """Train the full TinySAM architecture (official state-dict format) on procedurally generated scenes.

    Each step encodes --batch-size scenes, samples prompts from their exact masks (single clicks, several
    clicks with negatives, jittered boxes) and decodes them batched, then once more with the previous
    low-res logits as mask_input plus a correction click. Losses are SAM's: 20 x focal + dice (best of
    the three masks for single clicks, all three otherwise) and MSE of the IoU head against the true IoU.

    Example (sized for one modern GPU; not yet run by this project):
    tinysam-mobile train --device cuda --img-size 1024 --steps 3000 --batch-size 8 --prompts-per-image 16
    """
    import torch
    from rich.progress import Progress

    from ..training.job import run_job, start_state

    overrides = {"img_size": img_size, "steps": steps, "batch_size": batch_size,
                 "prompts_per_image": prompts_per_image, "lr": lr, "easy_steps": easy_steps,
                 "easy_fraction": easy_fraction, "focal_weight": focal_weight, "refine_rounds": refine_rounds,
                 "loss_size": loss_size, "warmup_steps": warmup_steps, "sizes": _sizes(sizes)}
    if smoke:
        overrides = {**overrides, **SMOKE}
    overrides["device"] = _device(device)
    if overrides["device"] == "cpu":
        torch.set_num_threads(max(1, threads))
    state = start_state(overrides, seed=seed, resume=resume, init_weights=init_weights)
    config = state.config
    typer.echo(f"training on {config.device}: img_size {config.img_size}, {config.batch_size} images x "
               f"{config.prompts_per_image} prompts per step, steps {state.step} -> {config.steps}")
    with Progress() as progress:
        task = progress.add_task("training", total=config.steps, completed=state.step)
        weights = run_job(state, out, save_every=save_every, eval_every=eval_every, eval_scenes=eval_scenes,
                          stop_at=stop_at, workers=workers, weight_parts=weight_parts,
                          time_limit=time_limit,
                          on_step=lambda step, metrics: progress.update(
                              task, completed=step, description=f"loss {metrics['loss']:.3f}"))
    typer.echo(f"state: {out / 'state.pt'}\nweights (fp16): {weights}\nlog: {out / 'log.txt'}")
