"""`tinysam-mobile join-weights`: one checkpoint from the parts a training run wrote separately."""

from pathlib import Path

import typer

from . import app


@app.command("join-weights")
def join_weights(
    parts: list[Path] = typer.Argument(..., help="The part files (safetensors or .pth state dicts), e.g. "
                                                 "weights.encoder.safetensors weights.decoder.safetensors."),
    out: Path = typer.Option(..., "--out", "-o", help="The joined safetensors file (fp16 as the parts are)."),
) -> None:
    """Join weight parts (a GPU machine that hands back files of at most 16 MiB gets the ~20 MB model as
    encoder and decoder parts) into one checkpoint, checked key for key against TinySAM's state dict."""
    from safetensors.torch import save_file

    from ..checkpoint import check_state_dict, join_state_dicts
    from ..modeling import TinySam, TinySamConfig
    from ..utils.files import atomic_path

    state = join_state_dicts(parts)
    check_state_dict(TinySam(TinySamConfig(256)), state, " + ".join(str(p) for p in parts))
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    typer.echo(f"joined {len(state)} tensors from {len(parts)} parts: {out}")
