"""The `tinysam-mobile` command: one sub-command per verb, each in its own module."""

import importlib
import sys
import warnings

import typer

from ..errors import TinySamError

app = typer.Typer(
    name="tinysam-mobile",
    help="TinySAM on phones: convert checkpoints to CoreML and LiteRT, run and validate the artifacts, "
         "and segment images with the same glue the iOS and Android apps use.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its command(s) on `app` when imported.
COMMAND_MODULES = ["segment", "convert", "benchmark", "golden", "install_artifacts", "everything",
                   "benchmark_everything", "inspect", "train", "evaluate", "calibrate", "validate",
                   "benchmark_runtimes", "join_weights", "report", "benchmark_dataset", "benchmark_memory"]

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")


def main() -> None:
    warnings.formatwarning = lambda message, category, *_args, **_kw: f"warning: {message}\n"
    try:
        app()
    except TinySamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
