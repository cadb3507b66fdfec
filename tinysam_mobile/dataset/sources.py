"""Which images a dataset run covers: every image file below a folder, or the paths listed in a text file."""

import os
from dataclasses import dataclass
from pathlib import Path

from ..calibration.dataset import IMAGE_SUFFIXES
from ..errors import ImageError

LIST_SUFFIXES = (".txt", ".lst")  # a file of image paths, one per line


@dataclass(frozen=True)
class ImageItem:
    name: str  # as the output names it: the path below the folder, or the line of the list file
    path: Path  # absolute


def is_image_list(source: Path) -> bool:
    """A folder or a list file (a dataset run) rather than one image."""
    return source.is_dir() or source.suffix.lower() in LIST_SUFFIXES


@dataclass(frozen=True)
class Listing:
    names: list[str]  # every listed image, in order
    items: list[ImageItem]  # those that can be read
    unreadable: dict[str, str]  # the others: name -> reason


def list_images(source: "str | Path") -> Listing:
    """The images of a folder (recursively, by suffix, sorted by path) or of a list file (one path per
    line, relative to the list's folder; blank lines and lines starting with # skipped; a repeated path
    counted once)."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        entries = [(p.relative_to(source).as_posix(), p) for p in files]
        if not entries:
            raise ImageError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) in it or below it")
    elif source.is_file():
        if source.suffix.lower() not in LIST_SUFFIXES:
            raise ImageError(f"{source} is a file; give a folder of images or a list of their paths "
                             f"({', '.join(LIST_SUFFIXES)}, one per line)")
        try:
            lines = source.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ImageError(f"cannot read the image list {source}: {exc}") from None
        names = dict.fromkeys(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
        entries = [(name, source.parent / name) for name in names]
        if not entries:
            raise ImageError(f"image list {source} names no images")
    else:
        raise ImageError(f"images folder or list not found: {source}")
    items, unreadable = [], {}
    for name, path in entries:
        path = Path(os.path.abspath(path))
        if not path.is_file():
            unreadable[name] = f"{path}: " + ("is a folder" if path.is_dir() else "not found")
        elif not os.access(path, os.R_OK):
            unreadable[name] = f"{path}: not readable (permissions)"
        else:
            items.append(ImageItem(name, path))
    return Listing([name for name, _ in entries], items, unreadable)
