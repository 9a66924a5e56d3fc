"""Shared fixtures: offline hub, one built-in model cache per test session, fresh managers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A spare worker costs each manager a few seconds of CPU and ~0.5 GB; only tests/test_spare.py turns it on.
os.environ.setdefault("SFT_UI_SPARE_WORKER", "0")

from sft_ui.jobs import JobManager  # noqa: E402
from tests.helpers import wait_until_serving  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def builtin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the built-in model across the session (workers inherit the env var)."""
    if "SFT_UI_CACHE_DIR" not in os.environ:
        os.environ["SFT_UI_CACHE_DIR"] = str(tmp_path_factory.mktemp("builtin-cache"))
    return Path(os.environ["SFT_UI_CACHE_DIR"])


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[JobManager]:
    """A JobManager on a fresh data dir; its running jobs are stopped afterwards."""
    mgr = JobManager(data_dir=tmp_path / "data")
    yield mgr
    mgr.shutdown()


@pytest.fixture(scope="session")
def trained_job(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[JobManager, str]]:
    """A LoRA job of the default SFTConfig (the built-in demo) at half its steps, shared by the tests that use it."""
    from tests.helpers import wait_for

    mgr = JobManager(data_dir=tmp_path_factory.mktemp("trained") / "data")
    job_id = mgr.create_job({"job_name": "default demo", "max_steps": 100})  # 100 of 200 steps already suffice
    mgr.start_job(job_id)
    record = wait_for(mgr, job_id, ("completed", "failed", "stopped"), timeout=600)
    assert record["status"] == "completed", (record["error"], mgr.get_log(job_id)[-3000:])
    yield mgr, job_id
    mgr.shutdown()


@pytest.fixture(scope="session")
def sft_server(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[str]:
    """README's run command, `python app.py`, serving on a free port; yields its base URL."""
    import signal
    import subprocess
    import sys

    from sft_ui.launch import free_port


    port = free_port()
    root = Path(__file__).resolve().parents[1]
    data = tmp_path_factory.mktemp("server") / "data"
    env = {**os.environ, "PORT": str(port), "SFT_UI_DATA_DIR": str(data), "SFT_UI_MAX_CONCURRENT_JOBS": "1"}
    env.pop("SFT_UI_API_KEY", None)
    log = open(data.parent / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(proc, f"{base}/api/sft/health", data.parent / "server.log")
    yield base
    proc.send_signal(signal.SIGINT)  # uvicorn shuts down; the manager stops running jobs
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright launches Debian's Chromium (playwright cannot download browsers here)."""
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium",
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run"]}


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[JobManager]:
    """A manager whose jobs never start a worker (these tests are about what is let in)."""
    manager = JobManager(data_dir=tmp_path / "data")
    manager._schedule = lambda: None  # type: ignore[method-assign]
    yield manager
