"""Latency and peak memory of the PyTorch reference model."""

import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch


def median_seconds(fn: Callable[[], object], runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_torch(checkpoint: Optional[Path], runs: int = 5, threads: int = 2, batch: int = 64) -> dict:
    """Encoder and decoder through TorchRunner, i.e. as the pipeline runs them (decoder in chunks)."""
    from ..checkpoint import load_tinysam
    from ..runners import TorchRunner

    torch.set_num_threads(threads)
    runner = TorchRunner(load_tinysam(checkpoint))
    size, low = runner.img_size, runner.model.config.low_res_size
    rss_before = peak_rss_mb()
    image = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    embedding = runner.encode(image)
    encoder_s = median_seconds(lambda: runner.encode(image), runs)
    rss_encoder = peak_rss_mb()

    def decode(n: int):
        coords = np.random.default_rng(n).random((n, 2, 2), dtype=np.float32) * size
        labels = np.tile(np.array([[1.0, -1.0]], np.float32), (n, 1))
        return runner.decode(embedding, coords, labels, np.zeros((n, 1, low, low), np.float32), np.zeros(n, np.float32))

    decoder_1 = median_seconds(lambda: decode(1), runs * 4)
    decoder_b = median_seconds(lambda: decode(batch), runs)
    chunk, runner.decode_chunk = runner.decode_chunk, batch  # the same batch as one call, for comparison
    decoder_one_call = median_seconds(lambda: decode(batch), runs)
    runner.decode_chunk = chunk
    return {
        "machine": f"{platform.processor() or platform.machine()}, {threads} threads, torch {torch.__version__}",
        "encoder_ms_median": round(encoder_s * 1000, 1),
        "decoder_ms_one_prompt": round(decoder_1 * 1000, 2),
        f"decoder_ms_batch_{batch}": round(decoder_b * 1000, 1),
        "decoder_ms_per_prompt_batched": round(decoder_b * 1000 / batch, 2),
        "decoder_chunk": runner.decode_chunk,
        "decoder_ms_per_prompt_one_call": round(decoder_one_call * 1000 / batch, 2),
        "peak_rss_mb_before_model_run": round(rss_before, 1),
        "peak_rss_mb_after_encoder": round(rss_encoder, 1),
        "peak_rss_mb_total": round(peak_rss_mb(), 1),
        "encoder_input": f"1x3x{size}x{size}",
        "runs": runs,
    }
