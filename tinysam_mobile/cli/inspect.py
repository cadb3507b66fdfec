"""`tinysam-mobile inspect`: what a converted artifact holds, without running it."""

import json
from collections import Counter
from pathlib import Path

import typer

from . import app

WORST_SHOWN = 5


def _render(report: dict) -> None:
    from rich.console import Console

    console = Console()
    console.print(f"[bold]{report['artifact']}[/bold]  {report['format']}"
                  + (f", {report['deployment_target']}" if "deployment_target" in report else "")
                  + f", {report['size_bytes'] / 1e6:.2f} MB"
                  + (f" ({report['weights_bytes'] / 1e6:.2f} MB weights)" if report.get("weights_bytes") else ""))
    for direction in ("inputs", "outputs"):
        for t in report[direction]:
            kind = t.get("color_space") or t.get("dtype")
            console.print(f"  {direction[:-1]:>6} {t['name']:<18} {str(t['shape']):<22} {kind}")
    dtypes = report.get("compute_dtypes") or report.get("tensor_dtypes")
    console.print("  precision: " + ", ".join(f"{k} x{v}" for k, v in dtypes.items()))
    console.print("  ops: " + ", ".join(f"{k} x{v}" for k, v in report["op_histogram"].items()))
    compressed = report.get("compressed_weights", [])
    if compressed:
        groups = Counter((w["op"], w["bits"], w["granularity"]) for w in compressed)
        console.print("  compressed weights:")
        for (op, bits, granularity), count in groups.most_common():
            console.print(f"   - {count} x {op}, {bits}-bit, {granularity}")
    elif "compressed_weights" in report:
        console.print("  compressed weights: none (float weights)")
    if report.get("weight_report"):
        errors = sorted(report["weight_report"], key=lambda r: -r["relative_rms_error"])
        mean = sum(r["relative_rms_error"] for r in errors) / len(errors)
        console.print(f"  weight error vs float (manifest.json): {len(errors)} layers, relative RMS mean "
                      f"{mean:.4f}, worst:")
        for r in errors[:WORST_SHOWN]:
            console.print(f"   - {r.get('layer', r.get('weight'))}: {r['relative_rms_error']:.4f}")
    risks = report["accelerator_risks"]
    console.print("  risks: " + ("none found" if not risks else ""))
    for risk in risks:
        console.print(f"   - {risk}")


@app.command()
def inspect(
    artifact: Path = typer.Argument(..., help="An .mlpackage (CoreML) or .tflite (LiteRT) file.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print the full report (every compressed weight and layer error) as JSON."),
) -> None:
    """Show what a converted model holds: inputs and outputs, op histogram, compute precision,
    compressed weights (op, bits, granularity), size, and risks for the Neural Engine or an NPU
    (tensors above rank 5, dynamic shapes, float32 compute, ops that commonly fall back to CPU/GPU).

    For CoreML packages written by 'tinysam-mobile convert', the per-layer weight error recorded in
    the manifest beside the package (int8 quantization, palettization) is shown too.
    """
    from ..converters.inspection import inspect_artifact

    report = inspect_artifact(artifact)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _render(report)
