"""What the verbs that take a folder or list of images share (`everything DIR`, `validate --images DIR`):
their options and the run itself (journal, progress, here or on Ray)."""

from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from ..errors import TinySamError

RayOption = typer.Option(
    None, "--ray", metavar="auto|ADDRESS", show_default=False,
    help="Run on Ray. auto: the cluster this machine belongs to (RAY_ADDRESS or 'ray start'), else a local Ray "
         "on this machine's CPUs; or a cluster address (e.g. ray://head:10001; the images must be readable at "
         "the same paths on every node). Ray Data reads the files; an actor pool holds one runner per worker. "
         "Records go to the same journal and output as a local run, and equal its records at the same --threads. "
         "Needs the optional extra: pip install 'tinysam-mobile\\[ray]'.")
WorkersOption = typer.Option(
    None, "--workers", min=1, show_default=False,
    help="With --ray: actors in the pool, each holding one runner. Default: the cluster's CPUs / --threads.")
ThreadsOption = typer.Option(
    None, "--threads", min=1, show_default=False,
    help="Folders and lists: CPU threads of the runner (this process's, or each Ray worker's, which reserves as "
         "many CPUs). Default 1. Runs with the same count give identical records; another count changes "
         "predicted IoUs and scores by float rounding (about 1e-7).")
JournalOption = typer.Option(
    None, "--journal", show_default=False,
    help="Folders and lists: the journal, one JSON line per finished image, appended as images finish (default: "
         "beside the output). A rerun skips the images it holds and retries those that failed; it is kept, so "
         "a later run over a grown folder only does the new images. Delete it to start over.")


def check_dataset_options(is_dataset: bool, ray: Optional[str], workers: Optional[int], threads: Optional[int],
                          journal: Optional[Path], what: str) -> None:
    """Refuse dataset options where they do not apply, and --ray without Ray, before anything loads."""
    given = [name for name, value in (("--ray", ray), ("--workers", workers), ("--threads", threads),
                                      ("--journal", journal)) if value is not None]
    if given and not is_dataset:
        raise TinySamError(f"{', '.join(given)}: only with {what}")
    if workers is not None and ray is None:
        raise TinySamError("--workers sizes the Ray actor pool; give --ray auto or --ray ADDRESS too")
    if ray is not None:
        from ..dataset.run import import_ray

        import_ray()


def run_dataset(job, listing, journal_path: Path, ray: Optional[str], workers: Optional[int], description: str):
    """Run `job` over `listing` with a progress bar; returns (summary, journal) once every image is done."""
    from ..dataset import Journal, run_images
    from ..dataset.run import ImageProgress, ray_session

    journal = Journal(journal_path, job.settings())
    # Ray first: a cluster that cannot be reached leaves no journal behind.
    with ray_session(ray) if ray is not None else nullcontext() as ray_module, journal, \
            ImageProgress(description) as progress:
        summary = run_images(job, listing, journal, progress, ray_module, workers)
    return summary, journal


def summary_line(summary, what: str) -> str:
    rate = f" ({summary.done / summary.seconds:.2f}/s)" if summary.done and summary.seconds else ""
    return (f"{what}: {summary.done} done in {summary.seconds:.1f} s{rate}, {summary.failed} failed, "
            f"{summary.skipped} already in the journal")
