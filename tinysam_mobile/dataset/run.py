"""Running a job over images, here or on Ray, every finished image going to the journal as it arrives.

On Ray, Ray Data reads the files (tasks that take no CPU slot, so that a pool using every CPU cannot
starve them), and an actor pool of `workers` actors, each holding one runner, turns them into records
(map_batches with a callable class). Only the compressed file bytes travel to the actors and only the
records come back, so the object store carries kilobytes per image, not decoded pixels.
"""

import json
import logging
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np

from ..errors import TinySamError
from .journal import Journal
from .sources import ImageItem, Listing

RAY_EXTRA = "pip install 'tinysam-mobile[ray]'"


@dataclass
class RunSummary:
    done: int = 0  # images done in this run
    failed: int = 0  # images that could not be read or decoded
    skipped: int = 0  # already finished in the journal
    seconds: float = 0.0


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise TinySamError(f"--ray needs Ray, an optional extra: {RAY_EXTRA}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail at once where nothing listens at a HOST:PORT address (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if host and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise TinySamError(f"cannot connect to Ray at {address!r}: {exc.strerror or exc}") from None


@contextmanager
def ray_session(address: str) -> Iterator[Any]:
    """Ray, connected: 'auto' joins the cluster this machine belongs to (RAY_ADDRESS or `ray start`) or
    starts a local instance on this machine's CPUs; anything else is a cluster address. A Ray already
    initialised in this process is used as it is (and left running)."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        if address != "auto":
            _check_reachable(address)
        try:
            ray.init(address=None if address == "auto" else address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise TinySamError(f"cannot connect to Ray at {address!r}: {str(exc).splitlines()[0]}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes would break the progress bar
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


class RayWorker:
    """Ray Data's callable class: builds the job's worker (its runner) once per actor; batches of files
    (path, bytes) -> (path, record as JSON)."""

    def __init__(self, job) -> None:
        self.work = job.worker()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = [json.dumps(self.work(str(path), bytes(data))) for path, data in zip(batch["path"], batch["bytes"])]
        return {"path": batch["path"], "record": np.array(records, dtype=object)}


def _run_here(job, items: list[ImageItem]) -> Iterator[tuple[str, dict[str, Any]]]:
    import torch

    threads = torch.get_num_threads()  # the worker sets the job's count; the caller's is restored after
    try:
        work = job.worker()
        for item in items:
            try:
                data = item.path.read_bytes()
            except OSError as exc:
                yield str(item.path), {"error": f"{item.path}: cannot read ({exc.strerror})"}
                continue
            yield str(item.path), work(str(item.path), data)
    finally:
        torch.set_num_threads(threads)


def _run_on_ray(ray, job, items: list[ImageItem], workers: Optional[int], threads: int
                ) -> Iterator[tuple[str, dict[str, Any]]]:
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    # One file per block: each image's record comes back (and is journaled) as soon as it is done, rather
    # than with the other images of its block.
    files = ray.data.read_binary_files([str(item.path) for item in items], include_paths=True, num_cpus=0,
                                       override_num_blocks=len(items))
    records = files.map_batches(RayWorker, fn_constructor_args=(job,), batch_size=1, num_cpus=threads,
                                compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))))
    for row in records.iter_rows():
        yield row["path"], json.loads(row["record"])


class ImageProgress:
    """What a run reports as it goes: a rich progress bar (images, images/s, elapsed, ETA) on stderr, and
    one "warning: ..." line per image that failed. quiet=True reports nothing (benchmarks)."""

    def __init__(self, description: str, quiet: bool = False) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.console = Console(stderr=True, quiet=quiet)
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=self.console, transient=True)
        self.task = self.bar.add_task(description, total=None, rate="")

    def __enter__(self) -> "ImageProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def start(self, total: int) -> None:
        self.bar.update(self.task, total=total)

    def record(self, record: dict[str, Any]) -> None:
        if "error" in record:
            self.console.print(f"warning: skipped {record['error']}", markup=False, highlight=False, soft_wrap=True)
            return
        self.bar.advance(self.task)
        speed = self.bar.tasks[0].speed
        self.bar.update(self.task, rate=f"{speed:.2f} images/s" if speed else "")


def run_images(job, listing: Listing, journal: Journal, progress: ImageProgress, ray: Any = None,
               workers: Optional[int] = None) -> RunSummary:
    """Run `job` on the images the journal does not hold as finished, appending each record to the journal
    as it arrives. ray: a connected Ray module (ray_session), or None to run in this process. Listed
    files that cannot be read are recorded as failed first."""
    summary, start = RunSummary(), time.perf_counter()
    for name, reason in listing.unreadable.items():
        record = {"file_name": name, "error": reason}
        journal.append(record)
        progress.record(record)
        summary.failed += 1
    todo = [item for item in listing.items if not journal.finished(item.name)]
    summary.skipped = len(listing.items) - len(todo)
    progress.start(len(todo))
    if todo:
        names = {str(item.path): item.name for item in todo}
        results = (_run_here(job, todo) if ray is None
                   else _run_on_ray(ray, job, todo, workers, job.runner.threads))
        for path, record in results:
            record = {"file_name": names[path], **record}
            journal.append(record)
            summary.done += "error" not in record
            summary.failed += "error" in record
            progress.record(record)
    summary.seconds = time.perf_counter() - start
    return summary
