"""The spare worker: a process with the training libraries imported that takes the next job at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from tests.helpers import alive, wait_for


@pytest.fixture
def spared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobManager]:
    """A manager with SFT_UI_SPARE_WORKER on and its spare done importing."""
    monkeypatch.setenv("SFT_UI_SPARE_WORKER", "1")
    manager = JobManager(data_dir=tmp_path / "data").start()
    manager.store_root()  # opening the database starts the spare
    assert manager.spare is not None
    assert manager.spare.pid is not None
    yield manager
    manager.shutdown()


def test_the_spare_runs_the_next_job_and_a_new_one_waits_after(spared: JobManager) -> None:
    first = spared.spare.pid  # type: ignore[union-attr]
    job_id = spared.create_job({"max_steps": 20})
    spared.start_job(job_id)
    record = wait_for(spared, job_id, ENDED, timeout=300)
    assert record["status"] == "completed", (record["error"], spared.get_log(job_id))
    assert record["worker_pid"] == first, "the waiting spare took the job"
    log = spared.get_log(job_id)
    assert "[sft-ui] training" in log, "the spare wrote into the job's log"
    assert "finished: completed" in log, "the spare wrote into the job's log"
    assert [p["step"] for p in spared.get_metrics(job_id)] == list(range(1, 21))
    deadline = time.monotonic() + 60
    while (spared.spare.pid in (None, first)) and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.2)
    second = spared.spare.pid  # type: ignore[union-attr]
    assert second not in (None, first), "a new spare waits for the next job"
    assert not alive(first)


def test_a_job_on_the_spare_stops_and_shutdown_ends_the_spare(spared: JobManager) -> None:
    pid = spared.spare.pid  # type: ignore[union-attr]
    deadline = time.monotonic() + 120
    while not spared.spare.ready() and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.2)
    job_id = spared.create_job({"max_steps": 5000})
    started = time.monotonic()
    spared.start_job(job_id)
    while not spared.get_metrics(job_id) and time.monotonic() - started < 120:
        time.sleep(0.05)
    first_point = time.monotonic() - started
    assert spared.get_metrics(job_id), spared.get_log(job_id)
    record = spared.stop_job(job_id, wait=30)
    assert record["status"] == "stopped", (record["error"], spared.get_log(job_id))
    assert not alive(pid)
    # The imports were paid before Start: on an idle machine the first point comes in about a second.
    print(f"first loss point {first_point:.2f} s after start")
    deadline = time.monotonic() + 60
    while spared.spare.pid is None and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.2)
    waiting = spared.spare.pid  # type: ignore[union-attr]
    assert waiting is not None
    spared.shutdown()
    assert not alive(waiting), "shutdown ends the waiting spare"


def test_the_spare_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from sft_ui import settings

    monkeypatch.delenv("SFT_UI_SPARE_WORKER", raising=False)
    assert settings.spare_worker() is True
    for off in ("0", "false", "off"):
        monkeypatch.setenv("SFT_UI_SPARE_WORKER", off)
        assert settings.spare_worker() is False


def test_a_spare_and_its_job_use_the_shipped_builtin_model_and_write_nothing_into_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sft_ui.builtin import SHIPPED

    def files() -> dict[str, tuple[int, int]]:
        return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in SHIPPED.iterdir()}

    shipped = files()
    monkeypatch.setenv("SFT_UI_SPARE_WORKER", "1")
    monkeypatch.setenv("SFT_UI_CACHE_DIR", str(tmp_path / "fresh-cache"))
    manager = JobManager(data_dir=tmp_path / "data").start()
    try:
        manager.store_root()
        deadline = time.monotonic() + 120
        while not manager.spare.ready() and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.2)
        job_id = manager.create_job({"max_steps": 2})
        manager.start_job(job_id)
        record = wait_for(manager, job_id, ENDED, timeout=300)
        assert record["status"] == "completed", (record["error"], manager.get_log(job_id))
        assert not (tmp_path / "fresh-cache" / "tiny-gpt2").exists(), "the spare and the job made no model"
        assert files() == shipped, "nothing wrote into the shipped model"
    finally:
        manager.shutdown()
