"""`tinysam-mobile calibrate` (TinySAM PTQ scales, or the Q-TinySAM import) and `quant-report`."""

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import TinySamError
from . import app
from .options import CheckpointOption

BITS_HELP = "Bit width of weights and activations: 8 (W8A8, TinySAM's default) or 6 (W6A6); 4-8 accepted."
IMG_SIZE_HELP = ("Model input side. Artifacts ship at 1024; smaller multiples of 64 only for quick experiments "
                 "(the scales then fit that size).")


def _config(bits: int, num_images: int, seed: int):
    from ..calibration.config import CalibrationConfig

    if not 4 <= bits <= 8:
        raise TinySamError(f"--bits must be between 4 and 8, got {bits}")
    if num_images < 1:
        raise TinySamError("--num-images must be at least 1")
    return CalibrationConfig(bits=bits, num_images=num_images, seed=seed)


def _model(checkpoint: Optional[Path], img_size: int):
    from ..checkpoint import checkpoint_id, load_tinysam
    from ..modeling import TinySamConfig

    try:
        config = TinySamConfig(img_size)
    except ValueError as exc:
        raise TinySamError(f"--img-size: {exc}") from None
    return load_tinysam(checkpoint, config), checkpoint_id(checkpoint)


def _import_qtinysam(source: Path, out: Path, float_checkpoint: Optional[Path]) -> None:
    from safetensors.torch import save_file

    from ..calibration.qtinysam import import_qtinysam, qtinysam_scales
    from ..calibration.scales import save_scales
    from ..checkpoint import check_state_dict, file_sha256
    from ..modeling import TinySam
    from ..utils.files import atomic_path

    imported = import_qtinysam(source)
    check_state_dict(TinySam(), imported.state_dict, str(source))
    float_checkpoint = float_checkpoint or out.with_name(out.stem + "_float.safetensors")
    with atomic_path(float_checkpoint) as tmp:
        save_file({k: v.contiguous() for k, v in imported.state_dict.items()}, str(tmp))
    save_scales(qtinysam_scales(imported, file_sha256(float_checkpoint)), out)
    for note in imported.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"float weights: {float_checkpoint}")
    typer.echo(f"scales: {out} ({len(imported.ops)} quantized ops; summary {out.with_suffix('.json')})")


@app.command()
def calibrate(
    out: Path = typer.Option(..., "--out", "-o", show_default=False,
                             help="Scales file to write, NAME.safetensors; a readable NAME.json is written beside it."),
    images: Optional[Path] = typer.Option(
        None, "--images", show_default=False,
        help="Folder of calibration images (its first --num-images, sorted by name). Default: 4 scikit-image "
             "photos and 4 generated scenes."),
    checkpoint: Optional[Path] = CheckpointOption,
    bits: int = typer.Option(8, "--bits", help=BITS_HELP),
    num_images: int = typer.Option(8, "--num-images", help="Calibration images (the paper uses 8)."),
    seed: int = typer.Option(0, "--seed", help="Seed of prompt sampling, activation sampling and the search."),
    method: str = typer.Option("tinysam-ptq", "--method",
                               help="tinysam-ptq (searched scales, twin-uniform) or minmax (plain baseline)."),
    img_size: int = typer.Option(1024, "--img-size", help=IMG_SIZE_HELP),
    import_qtinysam: Optional[Path] = typer.Option(
        None, "--import-qtinysam", show_default=False,
        help="Instead of calibrating, read the official Q-TinySAM pickle (tinysam_w8a8.pth) with a restricted "
             "unpickler (no code runs) and write its scales to --out and its float weights to --float-checkpoint."),
    float_checkpoint: Optional[Path] = typer.Option(
        None, "--float-checkpoint", show_default=False,
        help="With --import-qtinysam: where to write the float weights (default: OUT's name + _float.safetensors)."),
) -> None:
    """Compute TinySAM's post-training quantization scales for a checkpoint.

    Captures the inputs of every conv, deconv, linear and attention matmul on the calibration images
    (prompts sampled per image) and searches each op's scales against the task loss (Hessian-guided,
    alternating weight / activation, 100 candidates, 3 rounds); post-softmax and post-GELU activations
    get twin-uniform scales. Feed the result to 'tinysam-mobile convert --scales' and 'quant-report'.
    Example: tinysam-mobile calibrate --checkpoint tinysam_42.3.pth --out scales_w8a8.safetensors
    """
    from ..utils.files import check_outputs

    if out.suffix != ".safetensors":
        raise TinySamError(f"--out {out}: the scales file must end in .safetensors")
    if float_checkpoint is not None and import_qtinysam is None:
        raise TinySamError("--float-checkpoint applies to --import-qtinysam only")
    if import_qtinysam is not None:
        float_checkpoint = float_checkpoint or out.with_name(out.stem + "_float.safetensors")
    check_outputs(files=(out, out.with_suffix(".json"), float_checkpoint))
    if import_qtinysam is not None:
        _import_qtinysam(import_qtinysam, out, float_checkpoint)
        return
    from ..calibration.pipeline import calibration_samples, capture_with_progress, scales_from_capture
    from ..calibration.scales import save_scales

    if method not in ("tinysam-ptq", "minmax"):
        raise TinySamError(f"unknown --method {method!r}; choose tinysam-ptq or minmax")
    config = _config(bits, num_images, seed)
    if images is not None and not images.is_dir():
        raise TinySamError(f"--images {images} is not a folder")
    model, checkpoint_sha = _model(checkpoint, img_size)
    captured = capture_with_progress(model, calibration_samples(config, img_size, images), config)
    scales = scales_from_capture(captured, config, checkpoint_sha, method)
    save_scales(scales, out)
    typer.echo(f"scales: {out} ({len(scales.ops)} ops, W{bits}A{bits}, {method}; summary {out.with_suffix('.json')})")


@app.command("quant-report")
def quant_report(
    checkpoint: Optional[Path] = CheckpointOption,
    scales: Optional[Path] = typer.Option(None, "--scales", show_default=False,
                                          help="TinySAM PTQ W8A8 scales to evaluate. Default: calibrate now."),
    scales_w6a6: Optional[Path] = typer.Option(None, "--scales-w6a6", show_default=False,
                                               help="W6A6 scales. Default: calibrate now."),
    images: Optional[Path] = typer.Option(
        None, "--images", show_default=False,
        help="Folder of held-out images. Default: 4 other scikit-image photos and 4 unseen generated scenes."),
    num_images: int = typer.Option(8, "--num-images", help="Held-out images."),
    seed: int = typer.Option(0, "--seed", help="Seed of prompt sampling and calibration."),
    backend: Optional[str] = typer.Option(None, "--backend", show_default=False,
                                          help="Also score converted artifacts with this runner (e.g. tflite)."),
    artifacts: list[Path] = typer.Option([], "--artifacts", show_default=False,
                                         help="Artifact folder(s) from 'tinysam-mobile convert' (repeatable)."),
    img_size: int = typer.Option(1024, "--img-size", help=IMG_SIZE_HELP),
    json_out: Optional[Path] = typer.Option(None, "--json", show_default=False, help="Also write the table as JSON."),
) -> None:
    """Mean mask IoU vs FP32 of quantized TinySAM on held-out images and prompts.

    Rows: plain min/max W8A8, TinySAM PTQ W8A8, the same as a per-channel / per-tensor int8 format can
    hold it (what the converters approximate), without twin-uniform, min/max and TinySAM PTQ W6A6, and
    any --artifacts.
    """
    from rich.console import Console
    from rich.table import Table

    from ..calibration.export import mobile_approximation
    from ..calibration.fakequant import fake_quant_model
    from ..calibration.pipeline import calibration_samples, capture_with_progress, progress_bar, scales_from_capture
    from ..calibration.report import fidelity, runner_predict, single_scale_twins, torch_predict
    from ..calibration.scales import load_scales
    from ..converters.manifest import load_manifest
    from ..runners.factory import BACKENDS, make_runner
    from ..utils.files import atomic_path, check_outputs

    if artifacts and backend is None:
        raise TinySamError("--artifacts needs --backend (tflite, coreml or onnx)")
    if backend is not None and not artifacts:
        raise TinySamError("--backend needs --artifacts (folders written by 'tinysam-mobile convert')")
    if backend is not None and backend not in BACKENDS:
        raise TinySamError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if num_images < 1:
        raise TinySamError("--num-images must be at least 1")
    if images is not None and not images.is_dir():
        raise TinySamError(f"--images {images} is not a folder")
    for path, option in ((scales, "--scales"), (scales_w6a6, "--scales-w6a6")):
        if path is not None and not path.is_file():
            raise TinySamError(f"{option} {path}: file not found")
    for folder in artifacts:
        load_manifest(folder)  # missing or modified artifacts fail now, not after the calibration
    check_outputs(files=(json_out,))
    model, checkpoint_sha = _model(checkpoint, img_size)
    captured = None

    def scales_for(path: Optional[Path], bits: int, method: str = "tinysam-ptq"):
        nonlocal captured
        if path is not None:
            loaded = load_scales(path)
            if loaded.checkpoint_sha256 != checkpoint_sha:
                raise TinySamError(f"{path} was calibrated for checkpoint {loaded.checkpoint_sha256[:12]}, "
                                   f"not this one ({checkpoint_sha[:12]})")
            return loaded
        config = _config(bits, 8, seed)
        if captured is None:  # one capture serves every bit width and method
            captured = capture_with_progress(model, calibration_samples(config, img_size), config)
        return scales_from_capture(captured, config, checkpoint_sha, method)

    ptq8 = scales_for(scales, 8)
    variants = {
        "min/max W8A8": scales_for(None, 8, "minmax"),
        "TinySAM PTQ W8A8": ptq8,
        "  as int8 formats hold it": mobile_approximation(ptq8),
        "  without twin-uniform": single_scale_twins(ptq8),
        "min/max W6A6": scales_for(None, 6, "minmax"),
        "TinySAM PTQ W6A6": scales_for(scales_w6a6, 6),
    }
    candidates = {name: torch_predict(fake_quant_model(model, s)) for name, s in variants.items()}
    for folder in artifacts:
        candidates[f"{backend}: {folder.name}"] = runner_predict(make_runner(backend, checkpoint, folder))
    held_out = calibration_samples(_config(8, num_images, seed), img_size, images, held_out=True)
    with progress_bar() as bar:
        task = bar.add_task("scoring held-out prompts", total=len(held_out) * len(candidates))
        results = fidelity(torch_predict(model), candidates, held_out, img_size, progress=lambda: bar.advance(task))
    table = Table(title=f"mask IoU vs FP32 ({results[next(iter(results))].num_masks} masks, "
                        f"{len(held_out)} held-out images)")
    for column in ("variant", "mean IoU (3 masks)", "mean IoU (best mask)", "IoU-prediction MAE"):
        table.add_column(column)
    for name, f in results.items():
        table.add_row(name, f"{f.mask_iou_all:.4f}", f"{f.mask_iou_best:.4f}", f"{f.iou_pred_mae:.4f}")
    Console().print(table)
    if json_out is not None:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps({name: f.__dict__ for name, f in results.items()}, indent=1) + "\n")
