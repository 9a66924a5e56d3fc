"""The two ways the tests serve the app: `live_server` (build_app over an injected JobManager, uvicorn in a
thread of the test process) and `AppServer` (README's run command, `python app.py`, as a process to kill)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sft_ui.manager import JobManager
from sft_ui.settings import free_port
from sft_ui.web.app import build_app

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def live_server(manager: JobManager, timeout: float = 60.0) -> Iterator[str]:
    """Serve the app the way app.py builds it; yields its base URL ('http://127.0.0.1:PORT/')."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(manager), host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True  # the app's lifespan stops running jobs (manager.shutdown)
        thread.join(30)


def wait_until_serving(proc: subprocess.Popen, health_url: str, log_path: Path, timeout: float = 90.0) -> None:
    """Wait for a started `python app.py` to answer `health_url`; fail with its log when it does not."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(health_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"app.py did not serve {health_url}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)


class AppServer:
    """`python app.py` on a free port and the data dir `data`, with this environment plus `env` (never an API
    key). start() returns once /api/sft/health answers; stop() is Ctrl-C (SIGINT), kill() is SIGKILL.

    url is the server's root ('http://127.0.0.1:PORT'), api its REST root, and http an httpx client on api.
    As a context manager it starts, and stops (or kills what is left) on the way out.
    """

    def __init__(self, data: Path, log_path: Path | None = None, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.url}/api/sft"
        self.log_path = log_path or data.parent / f"server-{self.port}.log"
        self.env = {**os.environ, "PORT": str(self.port), "SFT_UI_DATA_DIR": str(data), **env}
        self.env.pop("SFT_UI_API_KEY", None)
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.api, timeout=30)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def job(self, job_id: str) -> dict[str, Any]:
        """GET the job's record (asserting a 200)."""
        response = self.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def start(self, timeout: float = 90.0) -> AppServer:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        wait_until_serving(self.proc, f"{self.api}/health", self.log_path, timeout)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap it: the server has no chance to stop its jobs."""
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout: float = 60.0) -> None:
        """A normal shutdown (Ctrl-C: uvicorn shuts down, the manager stops running jobs); SIGKILL after
        `timeout` s. Closes http."""
        self.http.close()
        if self.running():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
