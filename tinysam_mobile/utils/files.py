"""Writing outputs whole or not at all: temporary name in the same folder, then an atomic rename."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import TinySamError


def _check_writable_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TinySamError(f"cannot create output folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise TinySamError(f"output folder {folder} is not writable")


def check_output_path(target: "str | Path", kind: str = "file") -> None:
    """Refuse an output path that cannot be written, before any work and without creating anything.

    kind "file": target must not be a folder; kind "folder": target must not be a file. The nearest
    existing folder above target must be a writable folder (missing folders between are created later)."""
    target = Path(target)
    if kind == "file" and target.is_dir():
        raise TinySamError(f"output {target} is a folder; give a file name, e.g. {target / 'NAME'}")
    if kind == "folder" and target.exists() and not target.is_dir():
        raise TinySamError(f"output folder {target} is an existing file; give a folder name")
    ancestor = target.absolute().parent
    while not ancestor.exists() and not ancestor.is_symlink() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise TinySamError(f"cannot create output folder {target.parent}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK):
        raise TinySamError(f"output folder {ancestor} is not writable")


def check_outputs(files: "tuple[str | Path | None, ...]" = (), folders: "tuple[str | Path | None, ...]" = ()) -> None:
    """check_output_path for each given output file and folder (None: not asked for); verbs call it first."""
    for path in files:
        if path is not None:
            check_output_path(path, "file")
    for path in folders:
        if path is not None:
            check_output_path(path, "folder")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _give_default_mode(path: Path, full: int) -> None:
    """mkstemp / mkdtemp create 0600 / 0700 (private while unfinished); the finished output gets the mode
    any other file the user writes would have (0666 / 0777 less the umask), so an artifact folder can be
    shared with a build machine or another account."""
    os.chmod(path, full & ~_umask())


@contextmanager
def atomic_path(target: "str | Path") -> Iterator[Path]:
    """Yield a temporary file path beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    check_output_path(target, "file")
    _check_writable_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _give_default_mode(Path(tmp), 0o666)
        try:
            os.replace(tmp, target)
        except OSError as exc:  # e.g. a folder of that name appeared meanwhile
            raise TinySamError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_directory(target: "str | Path") -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it takes `target`'s place whole.

    An existing `target` is moved aside first and removed only after the new one is in place.
    """
    target = Path(target)
    check_output_path(target, "folder")
    _check_writable_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        _give_default_mode(tmp, 0o777)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
