"""The processes a job runs: recorded by pid in its job dir (jobdir.PIDS), recognised, and ended."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from sft_ui import jobdir


def record(job_dir: Path, rank: int | None) -> None:
    """Note this process's pid in the job dir, for the server (and the launching worker) to find it."""
    folder = job_dir / jobdir.PIDS
    folder.mkdir(exist_ok=True)
    (folder / str(os.getpid())).write_text(json.dumps({"rank": rank}), encoding="utf-8")


def killpg(pid: int, sig: int) -> None:
    """Signal the process group led by `pid`; one that is already gone is fine."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all(pid: int | None, job_dir: Path, skip: int | None = None) -> None:
    """SIGKILL the worker's process group and every process of the job that recorded its pid, but for `skip`."""
    if pid:
        killpg(pid, signal.SIGKILL)
    for path in (job_dir / jobdir.PIDS).glob("*") if (job_dir / jobdir.PIDS).is_dir() else ():
        if path.name.isdigit() and int(path.name) != skip and is_worker(int(path.name), job_dir):
            killpg(int(path.name), signal.SIGKILL)  # torch's launcher gives each process its own group


def is_worker(pid: int, job_dir: Path) -> bool:
    """True when `pid` is a live sft_ui worker process of the job in `job_dir`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        if jobdir.WORKER_MODULE not in cmdline:
            return False
        # A spare worker was named no job dir when it started; it moved into the job dir when it got the job.
        return str(job_dir) in cmdline or Path(f"/proc/{pid}/cwd").resolve() == job_dir.resolve()
    except OSError:
        return False
