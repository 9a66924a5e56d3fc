"""A file arriving over HTTP: streamed into a hidden temp file beside where it will live, within a size limit.

Past the limit, or when the disk is full, the temp file is gone and nothing anyone sees has changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO

from sft_ui.storage import StoreWriteError


class TooLargeError(ValueError):
    """An upload over its size limit (HTTP 413)."""


class Incoming:
    """One upload being written: write() its chunks, then close() for the temp file's path (or abort())."""

    def __init__(self, where: Path, suffix: str, max_bytes: int, setting: str) -> None:
        self.max_bytes, self.setting = max_bytes, setting
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".upload-", suffix=suffix)
        self.tmp = Path(tmp)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append a chunk; TooLargeError (and nothing left on disk) past the limit."""
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.abort()
            raise TooLargeError(f"file: larger than the upload limit of {self.max_bytes / 2**20:g} MB "
                                f"({self.setting})")
        assert self._file is not None
        try:
            self._file.write(chunk)
        except OSError as exc:  # a full disk: 507 like any refused write, and no half file left behind
            self.abort()
            raise StoreWriteError(exc.errno, exc.strerror) from None
        self._hash.update(chunk)

    def sha256(self) -> str:
        """The hex digest of what was written."""
        return self._hash.hexdigest()

    def abort(self) -> None:
        """Drop the temp file."""
        if self._file is not None:
            with contextlib.suppress(OSError):  # its buffer cannot be written either: it is dropped anyway
                self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)

    def close(self) -> Path:
        """Write out the buffer (a full disk shows here too) and return the temp file."""
        assert self._file is not None
        try:
            self._file.close()
        except OSError as exc:
            self._file = None
            self.tmp.unlink(missing_ok=True)
            raise StoreWriteError(exc.errno, exc.strerror) from None
        self._file = None
        return self.tmp
