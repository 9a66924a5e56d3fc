"""One spare worker process, started ahead of time with torch, transformers, trl and peft imported.

A fresh worker spends ~5 s on imports before its first step; a spare has paid them already, so a job
handed to it reaches its first loss point in about a second (bench/responsiveness.py). It costs the memory
of one idle Python process with those libraries loaded (see README, SFT_UI_SPARE_WORKER).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
from pathlib import Path

from sft_ui import gpus, jobdir


class Spare:
    """Keeps at most one spare worker; `take` hands it over and `refill` starts the next."""

    def __init__(self, data_root: Path, cache_dir: Path, env: dict[str, str]) -> None:
        self._args = jobdir.worker_args(None, data_root, cache_dir)
        self._cwd = str(data_root)
        self._env = env
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._closed = False

    def refill(self) -> None:
        """Start a spare unless one is waiting (or the manager shut down)."""
        with self._lock:
            if self._closed or (self._process is not None and self._process.poll() is None):
                return
            if gpus.pool() is not None:  # each job gets GPUs of its own, which a started worker cannot change
                return
            self._ready = False
            self._process = subprocess.Popen(
                [sys.executable, *self._args, "--spare", "--server-pid", str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True, env=self._env, cwd=self._cwd,
            )

    def take(self, job_dir: Path) -> subprocess.Popen[bytes] | None:
        """Hand `job_dir` to the waiting spare and return its process; None when none is alive."""
        with self._lock:
            process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return None
        try:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(f"{job_dir}\n".encode())
            process.stdin.close()
            process.stdout.close()
        except OSError:  # it died just now
            process.kill()
            return None
        return process

    def ready(self) -> bool:
        """True once the waiting spare has finished its imports."""
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                return False
            if not self._ready:
                assert process.stdout is not None
                if select.select([process.stdout], [], [], 0)[0]:
                    self._ready = process.stdout.readline() == b"ready\n"
            return self._ready

    @property
    def pid(self) -> int | None:
        """The waiting spare's pid, if any (for benchmarks and tests)."""
        with self._lock:
            return self._process.pid if self._process is not None and self._process.poll() is None else None

    def close(self) -> None:
        """End the waiting spare: it holds no job, so there is nothing to save."""
        with self._lock:
            self._closed = True
            process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
        for pipe in (process.stdin, process.stdout) if process is not None else ():
            if pipe is not None and not pipe.closed:
                pipe.close()
