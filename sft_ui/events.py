"""A job's events: what happened to it, in order, in the append-only events.jsonl of its job dir.

The server and the worker both append, each line in one O_APPEND write (whole on a local disk), so no lock is
needed between them. An event's id is "evt_<line number>": the file is never rewritten, so ids stay fixed and
ordered, and `after=evt_12` means the lines after line 12.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from sft_ui import jobdir
from sft_ui.status import JobStatus, iso_time

log = logging.getLogger(__name__)

LEVELS = ("info", "warning", "error")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_ID = re.compile(r"^evt_([1-9][0-9]{0,11})$")


def append(job_dir: Path, type: str, message: str, level: str = "info", **data: Any) -> None:  # noqa: A002
    """Append one event; a disk that refuses it is logged, never raised (an event must not end a job)."""
    event = {"created_at": iso_time(), "level": level if level in LEVELS else "info", "type": type,
             "message": message, "data": data}
    line = (json.dumps(event, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    try:
        fd = os.open(job_dir / jobdir.EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("job dir %s: event %r not written: %s", job_dir, type, exc)


def check_limit(limit: Any) -> int:
    """`limit` as a whole number from 1 to MAX_LIMIT (DEFAULT_LIMIT when None); ValueError naming `limit`."""
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: must be a whole number from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def cursor(after: str | None) -> int:
    """The line number an `after` cursor names (0 for none); ValueError naming `after` for anything else."""
    if after is None or after == "":
        return 0
    match = _ID.match(after) if isinstance(after, str) else None
    if match is None:
        raise ValueError(f"after: must be an event id such as 'evt_12' (the last one you read), got {after!r}")
    return int(match.group(1))


def _event(number: int, line: bytes) -> dict[str, Any] | None:
    """Line `number` as an event with its id; None for a line cut short by a kill or not an event."""
    try:
        event = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    data = event.get("data")
    return {"id": f"evt_{number}", "created_at": event.get("created_at"), "level": event.get("level", "info"),
            "type": event["type"], "message": str(event.get("message", "")),
            "data": data if isinstance(data, dict) else {}}


def read(job_dir: Path, after: str | None = None, limit: int | None = DEFAULT_LIMIT) -> tuple[list[dict[str, Any]],
                                                                                              bool]:
    """(up to `limit` events after the cursor `after`, in order; whether more follow them)."""
    start, count = cursor(after), check_limit(limit)
    try:
        content = (job_dir / jobdir.EVENTS).read_bytes()
    except FileNotFoundError:
        return [], False
    lines = content[:content.rfind(b"\n") + 1].splitlines()  # a line still being written waits for the next call
    found: list[dict[str, Any]] = []
    for number in range(start + 1, len(lines) + 1):
        event = _event(number, lines[number - 1])
        if event is None:
            continue
        if len(found) == count:
            return found, True
        found.append(event)
    return found, False


def read_all(job_dir: Path) -> list[dict[str, Any]]:
    """Every event of the job, in order."""
    found, more, after = [], True, None
    while more:
        page, more = read(job_dir, after, MAX_LIMIT)
        found += page
        after = page[-1]["id"] if page else None
        more = more and bool(page)
    return found


# --- the server's events (JobManager calls these) ---

def ended(job_dir: Path, fields: dict[str, Any]) -> None:
    """The job's end from the fields its record gets: completed, stopped, or failed with the cause."""
    status = str(fields.get("status"))
    step = (fields.get("progress") or {}).get("step")
    if status == JobStatus.COMPLETED:
        append(job_dir, "completed", f"Completed at step {step}", step=step)
    elif status == JobStatus.STOPPED:
        append(job_dir, "stopped", "Stopped" + (f" at step {step}" if step else " before training"), step=step)
    else:
        error = fields.get("error") or "unknown cause"
        append(job_dir, "failed", f"Failed: {error}", "error", step=step, error=error)


def started(job_dir: Path, pid: int, spare: bool) -> None:
    """The worker took the job: its pid, and whether it was the spare (libraries already loaded)."""
    how = "the spare worker (libraries already loaded)" if spare else "a fresh worker"
    append(job_dir, "started", f"Started in {how}, pid {pid}", pid=pid, spare=spare)


def queued(job_dir: Path, position: int) -> None:
    """The job waits for a free slot at `position` (1 = next)."""
    append(job_dir, "queued", f"Queued at position {position}", position=position)


def resumed(job_dir: Path, point: dict[str, Any], position: int) -> None:
    """The job continues from checkpoint `point` ({"checkpoint", "step"}) and is queued again."""
    append(job_dir, "resumed", f"Resumed from {point['checkpoint']} (step {point['step']})",
           checkpoint=point["checkpoint"], step=point["step"])
    queued(job_dir, position)
