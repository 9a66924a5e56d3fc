"""The upload library: data set files in <data dir>/datasets/, written atomically under safe names, listed cheaply.

Each file has a small sidecar (`.<name>.info.json`) holding its content hash, row count and detected format, so a
listing never reads a whole file twice; a re-upload of the same content returns the file that holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from sft_ui.config import MAX_NAME_LENGTH
from sft_ui.data import peek
from sft_ui.data.sources import DataError
from sft_ui.settings import jobs_naming
from sft_ui.status import iso_time
from sft_ui.uploads import Incoming

FOLDER = "datasets"
ACCEPTED = peek.SUFFIXES
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20
_lock = threading.Lock()  # choosing a name and writing sidecars: one upload at a time


class DatasetNotFoundError(LookupError):
    """No file of that name in the library."""


def folder(data_root: Path) -> Path:
    """The library folder, `<data dir>/datasets`."""
    return data_root / FOLDER


def safe_name(filename: str) -> str:
    """The name an uploaded file is kept under: its last path part, safe characters only, the extension kept."""
    base = re.split(r"[/\\]", str(filename or ""))[-1]
    stem, dot, suffix = base.rpartition(".")
    suffix = "." + suffix.lower() if dot else ""
    if suffix not in ACCEPTED:
        raise ValueError(f"file: {base[:100]!r} is not a {', '.join(ACCEPTED)} file")
    stem = _UNSAFE.sub("_", stem).strip("._-")
    limit = MAX_NAME_LENGTH - len(FOLDER) - 1 - len(suffix) - 4  # room for datasets/ and a -NN suffix
    stem = stem[:limit].rstrip("._-")
    if not stem:
        raise ValueError(f"file: {base[:100]!r} has no usable name once unsafe characters are removed; rename it")
    return stem + suffix


def check_name(name: str) -> str:
    """A library file name as given (no path, no unsafe characters); ValueError naming `name` otherwise."""
    if not isinstance(name, str) or not _valid(name):
        raise ValueError(f"name: {str(name)[:100]!r} is not a library file name (letters, digits, . _ - and one of "
                         f"{', '.join(ACCEPTED)})")
    return name


def _valid(name: str) -> bool:
    """Whether `name` is one that check_name takes."""
    try:
        return safe_name(name) == name
    except ValueError:
        return False


def path_of(data_root: Path, name: str) -> Path:
    """The file of a library entry; DatasetNotFoundError when there is none."""
    path = folder(data_root) / check_name(name)
    if not path.is_file():
        raise DatasetNotFoundError(f"data set {name} not found in {folder(data_root)}")
    return path


class Upload:
    """One upload streamed into a hidden temp file in the library folder; finish() renames it into place."""

    def __init__(self, data_root: Path, filename: str, max_bytes: int) -> None:
        self.data_root, self.name = data_root, safe_name(filename)
        folder(data_root).mkdir(parents=True, exist_ok=True)
        self.incoming = Incoming(folder(data_root), Path(self.name).suffix, max_bytes, "SFT_UI_MAX_UPLOAD_MB")

    def write(self, chunk: bytes) -> None:
        """Append a chunk; TooLargeError (and nothing left on disk) past the limit."""
        self.incoming.write(chunk)

    def abort(self) -> None:
        """Drop the temp file."""
        self.incoming.abort()

    def finish(self) -> dict[str, Any]:
        """Check the rows, then keep the file (or return the entry already holding this content)."""
        tmp, digest = self.incoming.close(), self.incoming.sha256()
        try:
            info = _inspect(tmp)
        except ValueError as exc:
            tmp.unlink(missing_ok=True)
            raise ValueError(f"file: could not read {self.name}: {exc}") from None
        try:
            with _lock:
                same = next((e for e in _entries(self.data_root) if e.get("sha256") == digest), None)
                if same is not None:
                    return {**_public(same), "already_uploaded": True}
                path = _link_unique(tmp, folder(self.data_root), self.name)
                stat = path.stat()
                entry = {"name": path.name, "sha256": digest, "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                         "uploaded_at": iso_time(), **info}
                _write_sidecar(path, entry)
        finally:
            tmp.unlink(missing_ok=True)
        return {**_public(entry), "already_uploaded": False}


def save(data_root: Path, filename: str, chunks: Iterable[bytes], max_bytes: int) -> dict[str, Any]:
    """Stream `chunks` into the library as `filename` (sanitised): the entry, as list_entries shows it."""
    upload = Upload(data_root, filename, max_bytes)
    try:
        for chunk in chunks:
            upload.write(chunk)
    except BaseException:
        upload.abort()
        raise
    return upload.finish()


def read_chunks(file: IO[bytes]) -> Iterable[bytes]:
    """A binary file in 1 MiB chunks."""
    while chunk := file.read(_CHUNK):
        yield chunk


def list_entries(data_root: Path) -> list[dict[str, Any]]:
    """Every file in the library, newest first: name, path, rows, format, columns, size_bytes, uploaded_at."""
    return [_public(entry) for entry in _entries(data_root)]


def _entries(data_root: Path) -> list[dict[str, Any]]:
    """list_entries with what the sidecars keep (sha256, mtime_ns)."""
    where = folder(data_root)
    if not where.is_dir():
        return []
    entries = []
    for path in where.iterdir():
        if not _valid(path.name) or not path.is_file():  # hidden files, sidecars, names the API cannot take
            continue
        with contextlib.suppress(OSError):  # deleted meanwhile
            entries.append(_entry(path))
    entries.sort(key=lambda e: (e["uploaded_at"], e["name"]), reverse=True)
    return entries


def get_entry(data_root: Path, name: str) -> dict[str, Any]:
    """One library entry, as list_entries shows it."""
    return _public(_entry(path_of(data_root, name)))


def users(data_root: Path, name: str, records: Iterable[dict[str, Any]]) -> list[str]:
    """The job ids among `records` whose config's dataset_name is this library file."""
    return jobs_naming(data_root, path_of(data_root, name).resolve(), "dataset_name", records)


def delete(data_root: Path, name: str) -> None:
    """Remove a library file and its sidecar."""
    path = path_of(data_root, name)
    with _lock:
        path.unlink(missing_ok=True)
        _sidecar(path).unlink(missing_ok=True)


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of an entry (the sidecar also keeps the hash and mtime); `path` and `dataset_name` are the
    same: the Gradio API shows only the second (gradio_client would take a "path" for a file to download)."""
    out = {key: entry.get(key) for key in ("name", "rows", "format", "columns", "size_bytes", "uploaded_at")}
    out["path"] = out["dataset_name"] = f"{FOLDER}/{entry['name']}"
    if entry.get("error"):
        out["error"] = entry["error"]
    return out


def _entry(path: Path) -> dict[str, Any]:
    """The sidecar's entry when it matches the file, else one made now (and kept)."""
    stat = path.stat()
    try:
        entry = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        if entry.get("size_bytes") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return entry
    except (OSError, ValueError):
        pass
    try:
        info: dict[str, Any] = _inspect(path)
    except ValueError as exc:
        info = {"rows": None, "format": None, "columns": [], "error": f"could not read {path.name}: {exc}"}
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in read_chunks(file):
            hasher.update(chunk)
    entry = {"name": path.name, "sha256": hasher.hexdigest(), "size_bytes": stat.st_size,
             "mtime_ns": stat.st_mtime_ns, "uploaded_at": iso_time(stat.st_mtime), **info}
    with contextlib.suppress(OSError):
        _write_sidecar(path, entry)
    return entry


def _inspect(path: Path) -> dict[str, Any]:
    """rows, format (detected from the first rows; None when no format fits) and columns; ValueError if unreadable."""
    from sft_ui.data import detect_format

    sample = peek.first_rows(path)
    if not sample:
        raise ValueError("it has no rows")
    found = peek.columns(sample)
    try:
        fmt: str | None = detect_format(found)
    except DataError:
        fmt = None
    return {"rows": peek.count_rows(path), "format": fmt, "columns": found}


def _link_unique(tmp: Path, where: Path, name: str) -> Path:
    """Hard-link `tmp` as `name`, or name-2, name-3, ... when taken (never replacing a file)."""
    stem, suffix = name.rsplit(".", 1)
    for number in range(1, 10_000):
        target = where / (name if number == 1 else f"{stem}-{number}.{suffix}")
        try:
            os.link(tmp, target)
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: claim the name, then move the file onto it
            try:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            except FileExistsError:
                continue
            os.replace(tmp, target)
        return target
    raise ValueError(f"file: too many files named like {name}")


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.info.json")


def _write_sidecar(path: Path, entry: dict[str, Any]) -> None:
    """Write the sidecar atomically."""
    side = _sidecar(path)
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(entry), encoding="utf-8")
    os.replace(tmp, side)
