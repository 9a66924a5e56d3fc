"""The files of one job's directory: the contract between the server and its worker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONFIG = "config.json"  # the validated SFTConfig, written by the server
STATUS = "status.json"  # phase, progress and last metrics, rewritten by the worker (throttled)
RESULT = "result.json"  # final status, error and result, written once by the worker
METRICS = "metrics.jsonl"  # one line per logged step, append-only
LOG = "log.txt"  # the worker's stdout and stderr
STOP = "stop"  # created by the server to ask the worker to stop
MODEL = "model"  # the saved adapter or model, with its tokenizer
CHECKPOINTS = "checkpoints"


def write_json(path: Path, data: dict[str, Any], durable: bool = False) -> None:
    """Replace `path` atomically; `durable` also fsyncs (for files that must survive a crash)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def read_metrics(path: Path, since: int | None = None) -> list[dict[str, Any]]:
    """Metric points from metrics.jsonl, only those with step > since when given."""
    points: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    point = json.loads(line)
                except ValueError:
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
