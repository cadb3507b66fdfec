"""The journal of a dataset run: JSON lines beside the output, a header with the run's settings, then one
line per image as it finishes. An interrupted run leaves at most a torn last line, which the next run
cuts off; a rerun skips the images the journal holds (and retries those that failed)."""

import json
import os
from pathlib import Path
from typing import Any, Iterator

from ..errors import TinySamError
from ..utils.files import atomic_path, check_output_path

FORMAT = "tinysam-mobile journal 1"


class Journal:
    def __init__(self, path: "str | Path", settings: dict[str, Any]) -> None:
        """settings: everything the records depend on (verb, model, options); a journal written with
        other settings is refused rather than mixed."""
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings))  # as it reads back
        self._offsets: dict[str, int] = {}  # file name -> offset of its latest line
        self._failed: set[str] = set()
        self._file = None

    def __enter__(self) -> "Journal":
        check_output_path(self.path)
        if self.path.exists():
            self._load()
        else:
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps({"format": FORMAT, "settings": self.settings}) + "\n")
        self._file = open(self.path, "ab")
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    def _load(self) -> None:
        with open(self.path, "rb+") as f:
            header = f.readline()
            try:
                written = json.loads(header)
            except ValueError:
                written = None
            if not isinstance(written, dict) or written.get("format") != FORMAT or "settings" not in written:
                raise TinySamError(f"{self.path} is not a journal of tinysam-mobile; pass another --journal "
                                   "or remove the file") from None
            if written["settings"] != self.settings:
                changed = sorted(key for key in {*written["settings"], *self.settings}
                                 if written["settings"].get(key) != self.settings.get(key))
                raise TinySamError(f"journal {self.path} holds a run with other settings ({', '.join(changed)}); "
                                   "rerun with the same options, pass another --journal, or remove it to start over")
            offset = f.tell()
            for line in f:
                if not line.endswith(b"\n"):  # torn by an interruption: cut off, the image is redone
                    f.truncate(offset)
                    break
                record = json.loads(line)
                self._offsets[record["file_name"]] = offset
                (self._failed.add if "error" in record else self._failed.discard)(record["file_name"])
                offset += len(line)

    def finished(self, name: str) -> bool:
        return name in self._offsets and name not in self._failed

    def append(self, record: dict[str, Any]) -> None:
        """Add one image's record (with "file_name"; "error" for an image that failed), durably."""
        self._file.seek(0, os.SEEK_END)
        self._offsets[record["file_name"]] = self._file.tell()
        (self._failed.add if "error" in record else self._failed.discard)(record["file_name"])
        self._file.write(json.dumps(record).encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def records(self, names: "list[str]") -> Iterator[dict[str, Any]]:
        """The latest record of each of `names` that the journal holds, in that order (read from disk one
        by one, so a million images need no memory beyond the index)."""
        with open(self.path, "rb") as f:
            for name in names:
                if name in self._offsets:
                    f.seek(self._offsets[name])
                    yield json.loads(f.readline())
