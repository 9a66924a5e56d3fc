"""The files of one job's directory: the contract between the server and its worker."""

from __future__ import annotations

import collections
import errno
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from sft_ui import settings

WORKER_MODULE = "sft_ui.worker"  # `python -m sft_ui.worker`: the job's process, and how it is recognised
CONFIG = "config.json"  # the validated SFTConfig, written by the server
STATUS = "status.json"  # phase, progress and last metrics, rewritten by the worker (throttled)
RESULT = "result.json"  # final status, error and result, written once by the worker
METRICS = "metrics.jsonl"  # one line per logged step, append-only
SAMPLES = "samples.jsonl"  # one line per sample prompt answered at a step, append-only
EVENTS = "events.jsonl"  # one line per job event (sft_ui.events), appended by server and worker, never rewritten
LOG = "log.txt"  # the worker's stdout and stderr
STOP = "stop"  # created by the server to ask the worker to stop
MODEL = "model"  # the saved adapter or model, with its tokenizer
CHECKPOINTS = "checkpoints"
PIDS = "pids"  # one empty-ish file per process of a multi-process job, named by its pid
DELETED = "deleted"  # written by the server when the job is deleted from the list: a rebuild leaves it out
RESUME = "resume.json"  # written by the server to resume from a checkpoint: {"checkpoint": name, "step": N}


_JOB_ID = re.compile(r"^[0-9a-f]{12}$")  # store.new_id's ids


def _not_a_number(constant: str) -> None:
    """NaN and +-Infinity (a diverged loss) read as null: JSON answers cannot carry them."""
    return None


_DECODER = json.JSONDecoder(parse_constant=_not_a_number)


def _point(line: str | bytes) -> dict[str, Any] | None:
    """One metrics line as a dict with a numeric step; None for a line cut short by a kill or not a point."""
    try:
        point = _DECODER.decode(line.decode("utf-8") if isinstance(line, bytes) else line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(point, dict) or not isinstance(point.get("step", 0), int | float):
        return None
    return point


class MetricsReader:
    """Reads metrics.jsonl files incrementally: each call parses only the lines appended since the last one.

    Polling clients ask for a running job's history over and over; reading the whole file each time would cost
    the server time that grows with the steps. A file that was replaced or cut is read again from the start.
    """

    def __init__(self, max_files: int = 32) -> None:
        self._lock = threading.Lock()
        self._files: collections.OrderedDict[Path, tuple[int, int, list[dict[str, Any]]]] = collections.OrderedDict()
        self.max_files = max_files

    def read(self, path: Path, since: int | None = None, max_points: int | None = None) -> list[dict[str, Any]]:
        """Like read_metrics(path, since), thinned evenly to at most `max_points` points when given (decimate)."""
        with self._lock:
            try:
                with open(path, "rb") as fh:
                    inode, size = os.fstat(fh.fileno()).st_ino, os.fstat(fh.fileno()).st_size
                    cached_inode, offset, points = self._files.get(path, (inode, 0, []))
                    if offset:
                        fh.seek(offset - 1)
                        if cached_inode != inode or size < offset or fh.read(1) != b"\n":
                            offset, points = 0, []  # replaced, cut, or rewritten: start over
                            fh.seek(0)
                    chunk = fh.read(size - offset)
            except FileNotFoundError:
                self._files.pop(path, None)
                return []
            whole = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
            points.extend(p for p in map(_point, chunk[:whole].splitlines()) if p is not None)
            self._files[path] = (inode, offset + whole, points)
            self._files.move_to_end(path)
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
            last = _point(chunk[whole:]) if chunk[whole:].strip() else None
            found = [*points, last] if last is not None else points
            if since is not None:
                found = [p for p in found if p.get("step", 0) > since]
            return [dict(p) for p in decimate(found, max_points)]


def decimate(points: list[Any], limit: int | None) -> list[Any]:
    """At most `limit` evenly spaced items of `points` (all when `limit` is None), keeping the first and last."""
    if limit is None or len(points) <= limit:
        return points
    if limit < 2:
        return points[-limit:] if limit > 0 else []
    last = len(points) - 1
    return [points[round(i * last / (limit - 1))] for i in range(limit)]


def worker_args(job_dir: Path | None, data_root: Path, cache_dir: Path) -> list[str]:
    """The worker's command line after the interpreter: `-m sft_ui.worker [JOB_DIR] --data-root .. --cache-dir ..`
    (no JOB_DIR for a spare, which reads it on stdin)."""
    job = [str(job_dir)] if job_dir is not None else []
    return ["-m", WORKER_MODULE, *job, "--data-root", str(data_root), "--cache-dir", str(cache_dir)]


def write_text(path: Path, text: str, durable: bool = False) -> None:
    """Replace `path` atomically (temp file + rename); `durable` also fsyncs (files that must survive a crash)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any], durable: bool = False) -> None:
    """Replace `path` atomically with `data` as JSON; `durable` also fsyncs."""
    write_text(path, json.dumps(data, ensure_ascii=False), durable)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = _DECODER.decode(fh.read())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def read_metrics(path: Path, since: int | None = None) -> list[dict[str, Any]]:
    """Metric points from metrics.jsonl, only those with step > since when given."""
    points: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                point = _point(line)
                if point is None:
                    continue  # a line cut short by a kill
                if since is None or point.get("step", 0) > since:
                    points.append(point)
    except FileNotFoundError:
        pass
    return points


def tail(path: Path, max_bytes: int = 20_000) -> str:
    """The last `max_bytes` of a text file ('' when missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def is_job_folder(path: Path) -> bool:
    """A folder the server made for a job: named by a job id, holding its config.json."""
    return bool(_JOB_ID.match(path.name)) and (path / CONFIG).is_file()


def was_deleted(path: Path) -> bool:
    """True for the folder of a job that was deleted from the list (its files stay)."""
    return (path / DELETED).exists()


def output_folder(root: Path, output_dir: str, cache_dir: Path) -> Path:
    """`output_dir` resolved under the data root `root`; ValueError naming it when it leads out, into the server's
    own files (its private folder, where older versions kept the database), the cache, or a job's folder."""
    folder = settings.resolve_inside(root, output_dir, "output_dir")
    for reserved in (settings.private_dir(root), root / "sft_ui.json", cache_dir.resolve()):
        if folder == reserved or reserved in folder.parents:
            raise ValueError(f"output_dir: {output_dir!r} is reserved for the server's own files")
    for inside in (folder, *folder.parents):
        if inside == root:
            break
        if is_job_folder(inside):
            raise ValueError(f"output_dir: {output_dir!r} is inside the folder of job {inside.name}")
    return folder


def make(job_dir: Path, config: dict[str, Any], output_dir: str) -> None:
    """Make a new job's folder with its config.json; nothing is left behind when that fails.

    A full disk is a StoreWriteError-like OSError (errno kept), anything else a ValueError naming output_dir.
    """
    try:
        job_dir.mkdir(parents=True, exist_ok=False)
        (job_dir / CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
    except OSError as exc:
        shutil.rmtree(job_dir, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(exc.errno, f"cannot make the job folder: {exc.strerror}") from None
        raise ValueError(f"output_dir: cannot make a job folder under {output_dir!r}: {exc.strerror or exc}") from None
