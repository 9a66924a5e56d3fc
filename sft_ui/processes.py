"""The worker processes of jobs: how they start, with what environment, and how they are ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from sft_ui import jobdir


def start_worker(job_dir: Path, data_dir: Path, cache_dir: Path) -> subprocess.Popen[bytes]:
    """`python -m sft_ui.worker JOB_DIR` in a session of its own (one signal reaches all it starts), logging."""
    with open(job_dir / jobdir.LOG, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "sft_ui.worker", str(job_dir), "--data-root", str(data_dir),
             "--cache-dir", str(cache_dir)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=worker_env(), cwd=str(job_dir),
        )


def worker_env() -> dict[str, str]:
    """The server's environment, plus what workers need: timeouts, quiet threads, this package importable."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    env.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "20")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Torch's OpenMP threads spin while they wait for each other; when anything else wants a core (the server
    # answering polls, another job) a spinning thread steals it from the one doing the work, and a CPU step can
    # take 10-40 times longer. Waiting threads that sleep instead keep training steady under load.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONUNBUFFERED"] = "1"
    # The worker runs in its job dir; make this package importable from there.
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def killpg(pid: int, sig: int) -> None:
    """Signal the process group led by `pid`; one that is already gone is fine."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all(pid: int | None, job_dir: Path) -> None:
    """SIGKILL the worker's process group and every process of the job that recorded its pid (launch.py)."""
    if pid:
        killpg(pid, signal.SIGKILL)
    for path in (job_dir / jobdir.PIDS).glob("*") if (job_dir / jobdir.PIDS).is_dir() else ():
        if path.name.isdigit() and is_worker(int(path.name), job_dir):
            killpg(int(path.name), signal.SIGKILL)  # torch's launcher gives each process its own group


def is_worker(pid: int, job_dir: Path) -> bool:
    """True when `pid` is a live sft_ui worker process of the job in `job_dir`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        if "sft_ui.worker" not in cmdline:
            return False
        # A spare worker was named no job dir when it started; it moved into the job dir when it got the job.
        return str(job_dir) in cmdline or Path(f"/proc/{pid}/cwd").resolve() == job_dir.resolve()
    except OSError:
        return False


def kill_orphan(record: dict[str, Any]) -> None:
    """End a worker that outlived its server, if that pid is still our worker for this job."""
    pid, job_dir = record.get("worker_pid"), Path(record["job_dir"])
    kill_all(pid if pid and is_worker(pid, job_dir) else None, job_dir)
