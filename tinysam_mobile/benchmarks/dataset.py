"""Throughput of `everything` over a folder: here vs on Ray with 1, 2, ... workers, and where the time goes.

Each configuration runs the whole folder through the real dataset machinery (run_images, a fresh journal in
a temporary folder, the same runner spec) and timestamps every record as it reaches the driver. Per
configuration: wall time from the start of the run (the runner's load, or the actors' start, included),
the time to the first record, and the rate between the first and the last record. The per-image cost split
comes from the workers' own timing of each image (decode, encoder, decoder, pre/post-processing). With one
worker, the time the worker sits idle between two images (its next image's start minus its last one's end)
is what the run adds per image: reading the file and the journal here, fetching the next block and
returning the record on Ray. Ray's overhead per image is that idle time of one Ray worker minus the local
run's; it is measured inside one run, so the machine's load, which changes the model's time from run to
run, does not enter it. Startup (until the first image starts) is reported apart: it is paid once per run.
"""

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from ..dataset import Journal, Listing, run_images
from ..dataset.run import ImageProgress, ray_session
from ..dataset.work import EverythingJob

COST_PARTS = ("decode_image_s", "encoder_s", "decoder_s", "pre_post_s", "total_s", "cpu_s")


class _Arrivals(ImageProgress):
    """A silent progress that timestamps each record as it reaches the driver."""

    def __init__(self) -> None:
        super().__init__("benchmark", quiet=True)
        self.records: list[tuple[float, dict[str, Any]]] = []

    def record(self, record: dict[str, Any]) -> None:
        self.records.append((time.perf_counter(), record))


def _measure(job: EverythingJob, listing: Listing, folder: Path, name: str, ray: Any = None,
             workers: Optional[int] = None) -> dict[str, Any]:
    load_before = os.getloadavg()
    arrivals = _Arrivals()
    with Journal(folder / f"{name}.journal", job.settings()) as journal, arrivals:
        start, start_at = time.perf_counter(), time.time()
        summary = run_images(job, listing, journal, arrivals, ray, workers)
    times = [t - start for t, record in arrivals.records if "error" not in record]
    records = [record for _, record in arrivals.records if "error" not in record]
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    cost = {part: statistics.fmean(r["timing"][part] for r in records) for part in COST_PARTS}
    spans = sorted((r["timing"]["started_at"], r["timing"]["ended_at"]) for r in records)
    serial = workers in (None, 1) and len(spans) > 1
    return {
        "run": name,
        "workers": workers,
        "images": len(records),
        "failed": summary.failed,
        "wall_s": summary.seconds,
        "images_per_s": len(records) / summary.seconds,
        "first_record_s": times[0] if times else None,
        "steady_images_per_s": steady,
        "steady_s_per_image": 1 / steady if steady else None,
        "cost_per_image_s": cost,
        "startup_s": spans[0][0] - start_at,  # until the first image starts: runner load, actor start
        # one worker: its idle time between two images
        "idle_s_per_image": (statistics.fmean(b[0] - a[1] for a, b in zip(spans, spans[1:])) if serial else None),
        "masks_per_image": statistics.fmean(len(r["annotations"]) for r in records),
        "prompts_per_image": statistics.fmean(r["prompts"] for r in records),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def benchmark_dataset(job: EverythingJob, listing: Listing, workers: tuple[int, ...] = (1, 2),
                      ray_address: str = "auto") -> dict[str, Any]:
    """The local run, then one Ray run per entry of `workers`, on the same images and job."""
    file_bytes = [item.path.stat().st_size for item in listing.items]
    with tempfile.TemporaryDirectory(prefix="tinysam-benchmark-dataset-") as tmp:
        folder = Path(tmp)
        runs = [_measure(job, listing, folder, "local")]
        started = time.perf_counter()
        with ray_session(ray_address) as ray:
            ray_start_s = time.perf_counter() - started
            cluster_cpus = ray.cluster_resources().get("CPU")
            runs += [_measure(job, listing, folder, f"ray-{n}", ray, n) for n in workers]
        record_bytes = [len(line) for line in (folder / "local.journal").read_bytes().splitlines()[1:]]
    local = runs[0]
    one_worker = next((run for run in runs if run["workers"] == 1), None)
    overhead = None
    if one_worker and one_worker["idle_s_per_image"] is not None and local["idle_s_per_image"] is not None:
        seconds = one_worker["idle_s_per_image"] - local["idle_s_per_image"]
        overhead = {"seconds_per_image": seconds, "share_of_local": seconds / local["cost_per_image_s"]["total_s"]}
    return {
        "settings": job.settings(),
        "cpus": os.cpu_count(),
        "ray_cluster_cpus": cluster_cpus,
        "ray_start_s": ray_start_s,
        "mean_file_bytes": statistics.fmean(file_bytes),
        "mean_record_bytes": statistics.fmean(record_bytes),
        "runs": runs,
        "ray_overhead_per_image": overhead,
    }
