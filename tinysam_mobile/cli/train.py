"""`tinysam-mobile train`: train TinySAM on generated scenes (GPU in bf16, or a small CPU run)."""

from pathlib import Path
from typing import Optional

import typer

from ..errors import TinySamError
from . import app

# A few steps at reduced size: checks the whole loop quickly, on any machine.
SMOKE = {"img_size": 256, "steps": 3, "batch_size": 1, "prompts_per_image": 4}


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
    resume: Optional[Path] = typer.Option(None, help="Continue from a state.pt: same data order, optimiser and "
                                                     "schedule. Options given here override the saved ones "
                                                     "(e.g. more --steps, --device cuda, another --img-size).",
                                          show_default=False),
    save_every: int = typer.Option(100, help="Write the resumable state every this many steps."),
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

    from ..training.train import TrainConfig, export_weights, load_state, new_state
    from ..training.train import train as run_training
    from rich.progress import Progress

    chosen = {"img_size": img_size, "steps": steps, "batch_size": batch_size,
              "prompts_per_image": prompts_per_image, "lr": lr}
    if smoke:
        chosen = {**chosen, **SMOKE}
    chosen["device"] = _device(device)
    if chosen["device"] == "cpu":
        torch.set_num_threads(max(1, threads))
    try:
        if resume is not None:
            if not resume.is_file():
                raise TinySamError(f"--resume: no saved state at {resume}")
            state = load_state(resume, **chosen)
        else:
            state = new_state(TrainConfig(seed=seed, **{k: v for k, v in chosen.items() if v is not None}))
    except ValueError as exc:
        raise TinySamError(str(exc)) from None
    config = state.config
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.txt"
    typer.echo(f"training on {config.device}: img_size {config.img_size}, {config.batch_size} images x "
               f"{config.prompts_per_image} prompts per step, steps {state.step} -> {config.steps}")
    with open(log_path, "a") as log, Progress() as progress:
        task = progress.add_task("training", total=config.steps, completed=state.step)

        def on_step(step: int, metrics: dict[str, float]) -> None:
            line = f"step {step} " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            log.write(line + "\n")
            log.flush()
            progress.update(task, completed=step, description=f"loss {metrics['loss']:.3f}")

        run_training(state, out, save_every=save_every, on_step=on_step)
    export_weights(state.model, out / "weights.safetensors")
    typer.echo(f"state: {out / 'state.pt'}\nweights (fp16): {out / 'weights.safetensors'}\nlog: {log_path}")
