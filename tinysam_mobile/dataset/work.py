"""What a dataset run does to one image, in whichever process runs it: here, or a Ray worker.

A job (EverythingJob, ParityJob) is a small picklable description; job.worker() builds its runners once
(once per Ray actor) and returns the callable that turns an image file's bytes into the image's record.
Records hold JSON types only, so a journal line is exactly what the worker returned.
"""

import os
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..automatic_mask_generator import EverythingConfig
from ..errors import TinySamError
from ..utils.image_io import decode_image

# Runners whose constructor takes `threads` (PyTorch's are set process-wide by torch.set_num_threads).
THREADED_BACKENDS = ("tflite", "onnx", "executorch")


@dataclass(frozen=True)
class RunnerSpec:
    """make_runner's arguments, with absolute paths so that any process on the cluster can build it."""

    backend: str
    checkpoint: Optional[str] = None
    artifacts: Optional[str] = None
    options: tuple[tuple[str, Any], ...] = ()  # e.g. (("delegate", "cpu"),)
    threads: int = 1

    @classmethod
    def of(cls, backend: str, checkpoint: Optional[Path], artifacts: Optional[Path], threads: int,
           **options: Any) -> "RunnerSpec":
        """From the CLI's arguments, checked before anything loads (backend, artifacts, checkpoint)."""
        from ..converters.manifest import load_manifest
        from ..runners.factory import BACKENDS

        if backend not in BACKENDS:
            raise TinySamError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if backend != "torch" and artifacts is None:
            raise TinySamError(f"--backend {backend} needs --artifacts DIR (the output of 'tinysam-mobile convert')")
        absolute = lambda path: None if path is None else os.path.abspath(path)  # noqa: E731
        if artifacts is not None:
            load_manifest(artifacts)  # every listed file present and matching its hash
        spec = cls(backend, absolute(checkpoint), absolute(artifacts), tuple(sorted(options.items())), threads)
        spec.settings()  # hashes the checkpoint: refuses a missing one
        return spec

    def build(self):
        import torch

        from ..runners.factory import make_runner

        torch.set_num_threads(self.threads)  # PyTorch's runner, and the torch ops of pre/post-processing
        options = dict(self.options) | ({"threads": self.threads} if self.backend in THREADED_BACKENDS else {})
        return make_runner(self.backend, self.checkpoint and Path(self.checkpoint),
                           self.artifacts and Path(self.artifacts), **options)

    def settings(self) -> dict[str, Any]:
        """What the records depend on: the weights (file hash, or the artifacts' manifest hash), options."""
        from ..checkpoint import checkpoint_id, file_sha256

        weights = (checkpoint_id(self.checkpoint) if self.backend == "torch"
                   else file_sha256(Path(self.artifacts) / "manifest.json"))
        return {"backend": self.backend, "weights": weights, "options": dict(self.options), "threads": self.threads}


class TimedRunner:
    """A runner whose encode and decode calls add their seconds to `seconds`; everything else passes through."""

    PARTS = {"encode": "encoder", "decode": "decoder", "decode_filtered": "decoder"}

    def __init__(self, runner) -> None:
        self.runner = runner
        self.seconds = {"encoder": 0.0, "decoder": 0.0}

    def __getattr__(self, name: str):
        method = getattr(self.runner, name)
        if name not in self.PARTS:
            return method

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[self.PARTS[name]] += time.perf_counter() - start

        return timed


class _Worker:
    """bytes -> record, catching bad images (one "error" line each) and timing the steps."""

    def __call__(self, label: str, data: bytes) -> dict[str, Any]:
        started_at, start, cpu_start = time.time(), time.perf_counter(), time.process_time()
        try:
            rgb = decode_image(data, label)
        except TinySamError as exc:
            return {"error": str(exc)}
        decoded = time.perf_counter()
        record = {"height": rgb.shape[0], "width": rgb.shape[1], **self.process(rgb, data)}
        total = time.perf_counter() - start
        # started_at / ended_at (Unix time): the benchmark's idle time of a worker between two images;
        # cpu_s: this process's CPU time (all its threads) for the image: on a shared machine, what an idle
        # core would take
        record["timing"] = {"decode_image_s": decoded - start, **record.get("timing", {}), "total_s": total,
                            "cpu_s": time.process_time() - cpu_start, "started_at": started_at,
                            "ended_at": started_at + total}
        return record

    def process(self, rgb: np.ndarray, data: bytes) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class EverythingJob:
    runner: RunnerSpec
    mode: str
    config: EverythingConfig

    def settings(self) -> dict[str, Any]:
        return {"verb": "everything", "mode": self.mode, **self.runner.settings(), "config": asdict(self.config)}

    def worker(self) -> "_EverythingWorker":
        return _EverythingWorker(self)


class _EverythingWorker(_Worker):
    def __init__(self, job: EverythingJob) -> None:
        from ..cli.everything import generator_class

        self.runner = TimedRunner(job.runner.build())
        self.generator = generator_class(job.mode)(self.runner, job.config)

    def process(self, rgb: np.ndarray, data: bytes) -> dict[str, Any]:
        self.runner.seconds = dict.fromkeys(self.runner.seconds, 0.0)
        annotations = self.generator.generate(rgb)
        stats, seconds = self.generator.stats, self.runner.seconds
        return {"prompts": stats.prompts, "annotations": annotations,
                "timing": {"encoder_s": seconds["encoder"], "decoder_s": seconds["decoder"],
                           # resizing the photo, upsampling, scoring, NMS, RLE: the generator's time outside the runner
                           "pre_post_s": stats.total_s - seconds["encoder"] - seconds["decoder"]}}


@dataclass(frozen=True)
class ParityJob:
    """validate: the artifacts' runner against FP32 PyTorch from `checkpoint` at the artifacts' input size."""

    runner: RunnerSpec
    checkpoint: Optional[str]
    img_size: int
    prompts_per_image: int
    per_half: bool
    seed: int = 0

    def settings(self) -> dict[str, Any]:
        from ..checkpoint import checkpoint_id

        return {"verb": "validate", **self.runner.settings(), "reference": checkpoint_id(self.checkpoint),
                "prompts_per_image": self.prompts_per_image, "per_half": self.per_half, "seed": self.seed}

    def worker(self) -> "_ParityWorker":
        return _ParityWorker(self)


class _ParityWorker(_Worker):
    def __init__(self, job: ParityJob) -> None:
        from ..checkpoint import load_tinysam
        from ..modeling import TinySamConfig
        from ..predictor import TinySamPredictor
        from ..runners import TorchRunner
        from ..validation import HalfSwap

        self.job = job
        runner = job.runner.build()
        reference = TorchRunner(load_tinysam(job.checkpoint and Path(job.checkpoint), TinySamConfig(img_size=job.img_size)))
        self.expected = TinySamPredictor(reference)
        self.runs = {"pipeline": TinySamPredictor(runner)}
        if job.per_half:
            self.runs.update(encoder_only=TinySamPredictor(HalfSwap(runner, reference)),
                             decoder_only=TinySamPredictor(HalfSwap(reference, runner)))
        self.max_tokens = runner.max_tokens

    def process(self, rgb: np.ndarray, data: bytes) -> dict[str, Any]:
        from ..calibration.dataset import sample_user_prompts
        from ..utils.prompts import DEFAULT_MAX_TOKENS
        from ..validation import image_parity

        # Prompts seeded by the file's contents: the same image gets the same prompts wherever it runs.
        key = zlib.crc32(data)
        prompts = sample_user_prompts(np.random.default_rng([self.job.seed, key]), rgb.shape[:2], None,
                                      self.job.prompts_per_image, self.max_tokens or DEFAULT_MAX_TOKENS, first=key)
        return {"runs": {name: image_parity(predictor, self.expected, rgb, prompts)
                         for name, predictor in self.runs.items()}}
