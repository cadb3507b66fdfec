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


@contextmanager
def atomic_path(target: "str | Path") -> Iterator[Path]:
    """Yield a temporary file path beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    _check_writable_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_directory(target: "str | Path") -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it takes `target`'s place whole.

    An existing `target` is moved aside first and removed only after the new one is in place.
    """
    target = Path(target)
    _check_writable_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
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
