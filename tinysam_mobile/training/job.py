"""A training job in one call: start or resume a run, log every step, measure the learning curve, export.

The `train` command wraps it with a progress bar; a GPU machine that has only torch, numpy, Pillow,
safetensors and scikit-image (no typer, rich or matplotlib) calls it directly:
python -c "from tinysam_mobile.training.job import start_state, run_job; ..."
"""

from pathlib import Path
from typing import Callable, Optional

from ..checkpoint import check_state_dict, read_state_dict
from ..errors import TinySamError
from ..modeling import TinySam, TinySamConfig
from .curve import append_point, measure, plot_curve
from .evaluation import EvalConfig
from .train import TrainConfig, TrainState, export_weights, load_state, new_state, train


def start_state(overrides: dict, seed: int = 0, resume: Optional[Path] = None,
                init_weights: Optional[Path] = None) -> TrainState:
    """A new run (TinyViT initialisation, or init_weights with a fresh optimiser) or a resumed one.
    overrides: TrainConfig fields; None values keep the default (or the saved value when resuming)."""
    chosen = {k: v for k, v in overrides.items() if v is not None}
    if resume is not None and init_weights is not None:
        raise TinySamError("--resume continues a run with its own weights; --init-weights starts a new one")
    try:
        if resume is not None:
            if not Path(resume).is_file():
                raise TinySamError(f"--resume: no saved state at {resume}")
            return load_state(resume, **chosen)
        initial = None
        if init_weights is not None:
            initial = read_state_dict(init_weights)
            check_state_dict(TinySam(TinySamConfig(256)), initial, str(init_weights))
        return new_state(TrainConfig(seed=seed, **chosen), initial)
    except ValueError as exc:
        raise TinySamError(str(exc)) from None


def run_job(state: TrainState, out: "str | Path", save_every: int = 100, eval_every: int = 0,
            eval_scenes: int = 10, stop_at: Optional[int] = None, workers: int = 0, weight_parts: bool = False,
            time_limit: Optional[float] = None, on_step: Optional[Callable[[int, dict[str, float]], None]] = None) -> Path:
    """Train to config.steps (or stop_at) writing out/log.txt (a line per step), out/state.pt, the
    learning curve out/curve.csv (held-out scenes at 1024 every eval_every steps and at the end, also
    when time_limit seconds of training have passed and the run stops early; plotted
    to curve.png where matplotlib is installed) and the fp16 weights; returns the weights' path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = state.config
    last = config.steps if stop_at is None else min(stop_at, config.steps)

    def curve_point(step: int) -> str:
        figures = measure(state.model, EvalConfig(scenes=eval_scenes))
        append_point(out / "curve.csv", step, state.seconds, figures)
        try:
            plot_curve(out / "curve.csv", out / "curve.png", f"held-out scenes at 1024, {eval_scenes} per point")
        except ImportError:
            pass  # no matplotlib (a bare GPU machine): the CSV is the curve, plotted where it lands
        return " ".join(f"{k}={v:.4g}" for k, v in figures.items() if isinstance(v, float))

    with open(out / "log.txt", "a") as log:
        def logged_step(step: int, metrics: dict[str, float], final: bool) -> None:
            line = f"step {step} " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            if eval_every and (step % eval_every == 0 or step == last or final):
                line += "\neval " + curve_point(step)
            log.write(line + "\n")
            log.flush()
            if on_step is not None:
                on_step(step, metrics)

        train(state, out, save_every=save_every, on_step=logged_step, stop_at=stop_at, workers=workers,
              time_limit=time_limit)
    weights = out / "weights.safetensors"
    export_weights(state.model, weights, parts=weight_parts)
    return weights
