"""Encoder and decoder latency of every runtime side by side, measured in one process on one machine."""

import platform
import statistics
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .torch_latency import median_seconds


def _prompts(batch: int, points: int, size: int, rng: np.random.Generator):
    coords = (rng.random((batch, points, 2)) * size).astype(np.float32)
    labels = np.full((batch, points), -1.0, np.float32)
    labels[:, 0] = 1.0
    low = size // 4
    return coords, labels, np.zeros((batch, 1, low, low), np.float32), np.zeros(batch, np.float32)


# Prompt-token counts timed one prompt at a time: a click (2), a click and a box (3), and the most a default
# decoder takes (10, which a decoder padding every prompt to 10 slots would run for a click).
TIMED_TOKENS = (2, 3, 10)


def interleaved_medians(calls: dict, runs: int) -> dict:
    """Median seconds of each call, timed in turn (one round calls each once), after one warm-up round:
    slow phases of a loaded machine then fall on every call alike."""
    times = {key: [] for key in calls}
    for round_ in range(runs + 1):
        for key, fn in calls.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def time_runner(runner, runs: int, batch: int) -> dict:
    """Median encoder latency, decoder latency for one prompt (per token count, interleaved) and for
    `batch` single-point prompts."""
    rng = np.random.default_rng(0)
    size = runner.img_size
    image = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    embedding = runner.encode(image)
    one, many = _prompts(1, 2, size, rng), _prompts(batch, 2, size, rng)
    encoder = median_seconds(lambda: runner.encode(image), runs)
    decoder_one = median_seconds(lambda: runner.decode(embedding, *one), runs * 4)
    decoder_batch = median_seconds(lambda: runner.decode(embedding, *many), runs)
    counts = [t for t in TIMED_TOKENS if runner.max_tokens is None or t <= runner.max_tokens]
    prompts = {t: _prompts(1, t, size, rng) for t in counts}
    by_tokens = interleaved_medians({t: (lambda p=prompts[t]: runner.decode(embedding, *p)) for t in counts}, runs * 4)
    return {"encoder_ms": round(encoder * 1000, 1), "decoder_ms_one_prompt": round(decoder_one * 1000, 2),
            "decoder_ms_by_tokens": {t: round(s * 1000, 2) for t, s in by_tokens.items()},
            f"decoder_ms_batch_{batch}": round(decoder_batch * 1000, 1),
            "decoder_ms_per_prompt_batched": round(decoder_batch * 1000 / batch, 2)}


def artifact_sizes(folder: Path) -> dict:
    from ..converters.manifest import load_manifest

    manifest = load_manifest(folder, verify=False)
    return {r["role"]: r["size_bytes"] for r in manifest["artifacts"] if r["role"] in ("encoder", "decoder")}


def measure_runtimes(checkpoint: Optional[Path], artifact_dirs: list[Path], runs: int, threads: int,
                     batch: int, on_step=lambda name: None) -> dict:
    """{name: timings} for PyTorch eager and each artifact folder (named target/precision)."""
    from ..checkpoint import load_tinysam
    from ..converters.manifest import load_manifest
    from ..runners import TorchRunner
    from ..runners.factory import make_runner

    manifests = [load_manifest(folder) for folder in artifact_dirs]  # bad folders fail before any timing
    torch.set_num_threads(threads)
    results = {"machine": f"{platform.processor() or platform.machine()}, {threads} threads", "runs": runs,
               "runtimes": {}}
    on_step("torch fp32")
    results["runtimes"]["torch fp32 (eager)"] = time_runner(TorchRunner(load_tinysam(checkpoint)), runs, batch)
    for folder, manifest in zip(artifact_dirs, manifests):
        name = f"{manifest['target']} {manifest['precision']}"
        if name in results["runtimes"]:  # two folders of one target and precision (e.g. before / after a change)
            name = f"{name} ({folder})"
        on_step(name)
        threaded = manifest["target"] in ("tflite", "onnx", "executorch")
        runner = make_runner(manifest["target"], artifacts=folder, **({"threads": threads} if threaded else {}))
        results["runtimes"][name] = {**time_runner(runner, runs, batch),
                                     "size_bytes": artifact_sizes(folder), "folder": str(folder)}
    return results
