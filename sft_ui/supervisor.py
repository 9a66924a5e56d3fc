"""The worker processes of jobs: how they start, with what environment, how they are followed and ended."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sft_ui import gpus, jobdir, pids, settings
from sft_ui.status import JobStatus

log = logging.getLogger(__name__)

EARLY_PHASES = (None, "starting", "loading_model", "loading_data")  # nothing trained yet: nothing to save


class Run:
    """One running job's worker as its supervisor thread sees it: its live status, stop, and how it ended."""

    def __init__(self, job_id: str, job_dir: Path) -> None:
        self.job_id = job_id
        self.job_dir = job_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.stop_requested = threading.Event()
        self.live: dict[str, Any] = {}  # the worker's latest status.json
        self.processes = 1  # num_processes: several are stopped through the stop file only
        self.done = threading.Event()

    def follow(self) -> dict[str, Any]:
        """Read the worker's status file until it exits, honouring stop; its outcome (status, error, result)."""
        try:
            return self._follow()
        finally:
            gpus.release(self.job_dir)  # the worker has exited: its GPUs are free for the next job

    def _follow(self) -> dict[str, Any]:
        assert self.process is not None
        status_file = self.job_dir / jobdir.STATUS
        last_mtime = 0.0
        stop_sent_at: float | None = None
        while True:
            code = self.process.poll()
            try:
                mtime = status_file.stat().st_mtime
                if mtime != last_mtime:
                    last_mtime = mtime
                    self.live = jobdir.read_json(status_file) or self.live
            except FileNotFoundError:
                pass
            if code is not None:
                break
            if self.stop_requested.is_set() and stop_sent_at is None:
                stop_sent_at = time.monotonic()
                self.ask_to_stop()
            elif stop_sent_at is not None and time.monotonic() - stop_sent_at > settings.stop_grace_seconds():
                log.warning("job %s did not stop within the grace period; killing it", self.job_id)
                pids.kill_all(self.process.pid, self.job_dir)
            try:  # returns as soon as the worker exits, so the job ends without a polling delay
                self.process.wait(0.1 if self.stop_requested.is_set() else 0.25)
            except subprocess.TimeoutExpired:
                pass
        result = jobdir.read_json(self.job_dir / jobdir.RESULT)
        if result is not None:
            return result
        if self.stop_requested.is_set():
            return {"status": JobStatus.STOPPED}
        cause = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return {"status": JobStatus.FAILED, "error": f"worker {cause} before it finished (see the log)"}

    def ask_to_stop(self) -> None:
        """Ask the worker to stop; before training begins there is nothing to save, so end it now."""
        assert self.process is not None
        (self.job_dir / jobdir.STOP).touch()
        if self.live.get("phase") in EARLY_PHASES:
            pids.kill_all(self.process.pid, self.job_dir)
        elif self.processes == 1:
            pids.killpg(self.process.pid, signal.SIGTERM)
        # Several processes: the stop file alone, so that they stop after the same step (a signal to torch's
        # launcher would make it kill them after 30 s, mid-save).


def start_worker(job_dir: Path, data_dir: Path, cache_dir: Path) -> subprocess.Popen[bytes]:
    """`python -m sft_ui.worker JOB_DIR` in a session of its own (one signal reaches all it starts), logging; with
    SFT_UI_GPU_PER_JOB, on GPUs of its own (given back when Run.follow sees it end)."""
    env = worker_env()
    devices = gpus.assign(job_dir)
    try:
        with open(job_dir / jobdir.LOG, "ab") as log_file:
            if devices is not None:
                env["CUDA_VISIBLE_DEVICES"] = devices
                log_file.write(f"[sft-ui] GPU per job: CUDA_VISIBLE_DEVICES={devices}\n".encode())
                log_file.flush()
            return subprocess.Popen(
                [sys.executable, *jobdir.worker_args(job_dir, data_dir, cache_dir), "--server-pid", str(os.getpid())],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env, cwd=str(job_dir),
            )
    except BaseException:
        gpus.release(job_dir)
        raise


def worker_env() -> dict[str, str]:
    """The server's environment, plus what workers need: timeouts, quiet threads, this package importable."""
    env = dict(os.environ)
    env.pop("SFT_UI_API_KEY", None)  # the workers serve nothing: they have no use for the server's key
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


def kill_orphan(record: dict[str, Any]) -> None:
    """End a worker that outlived its server, if that pid is still our worker for this job."""
    pid, job_dir = record.get("worker_pid"), Path(record["job_dir"])
    pids.kill_all(pid if pid and pids.is_worker(pid, job_dir) else None, job_dir)
