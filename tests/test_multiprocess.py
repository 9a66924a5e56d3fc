"""num_processes > 1: data-parallel training launched with accelerate, here 2 CPU processes over gloo."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sft_ui import jobdir
from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from tests.helpers import alive, wait_for


def _job_pids(job_dir: Path) -> list[int]:
    """The pids the job's processes recorded (the launching worker and each rank)."""
    return [int(p.name) for p in (job_dir / jobdir.PIDS).iterdir()]


def _alive(pids: list[int]) -> list[int]:
    """Those of `pids` that still run (zombies count as gone)."""
    return [pid for pid in pids if alive(pid)]


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(pids)


def test_two_processes_train_together_and_only_the_first_reports(manager: JobManager) -> None:
    job_id = manager.create_job({"max_steps": 30, "num_processes": 2, "batch_size": 4})
    manager.start_job(job_id)
    record = wait_for(manager, job_id, ENDED, timeout=300)
    assert record["status"] == "completed", (record["error"], manager.get_log(job_id)[-3000:])
    assert record["result"]["num_processes"] == 2
    assert record["result"]["steps"] == 30
    # Each step saw 2 x 4 rows: the epoch counter moved twice as fast as one process would move it.
    rows = record["result"]["train_rows"]
    assert abs(record["metrics"]["epoch"] - 30 * 2 * 4 / rows) < 0.02
    steps = [p["step"] for p in manager.get_metrics(job_id)]
    assert steps == list(range(1, 31)), "one metrics line per step, from the first process only"
    assert (Path(record["job_dir"]) / jobdir.MODEL / "adapter_model.safetensors").is_file()
    pids = _job_pids(Path(record["job_dir"]))
    assert len(pids) == 3, "the launching worker and two training processes"
    assert _wait_gone(pids) == []


def test_stop_reaches_every_process_and_none_is_left(manager: JobManager) -> None:
    job_id = manager.create_job({"max_steps": 5000, "num_processes": 2, "batch_size": 4, "save_steps": 5000})
    manager.start_job(job_id)
    deadline = time.monotonic() + 300
    while manager.get_job_status(job_id)["progress"]["step"] < 5 and time.monotonic() < deadline:
        assert manager.get_job_status(job_id)["status"] == "running", manager.get_log(job_id)[-3000:]
        time.sleep(0.2)
    job_dir = Path(manager.get_job_status(job_id)["job_dir"])
    pids = _job_pids(job_dir)
    assert len(_alive(pids)) == 3
    manager.stop_job(job_id, wait=60)
    record = wait_for(manager, job_id, ENDED, timeout=60)
    assert record["status"] == "stopped", (record["error"], manager.get_log(job_id)[-3000:])
    assert 5 <= record["result"]["steps"] < 5000
    assert (job_dir / jobdir.MODEL / "adapter_model.safetensors").is_file(), "what it trained was saved"
    assert _wait_gone(pids) == [], "every process of the job ended"


def test_more_processes_than_gpus_fails_at_once_naming_num_processes(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import torch

    from sft_ui.worker import launch

    # This machine has no GPU: pretend it has one, as a one-GPU Space would, to reach the check.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("SFT_UI_ACCELERATE_CONFIG", raising=False)
    (tmp_path / jobdir.CONFIG).write_text('{"num_processes": 4}')
    assert launch.launch(tmp_path, tmp_path, tmp_path, threading.Event()) == 0
    result = jobdir.read_json(tmp_path / jobdir.RESULT)
    assert result == {"status": "failed", "result": None,
                      "error": "num_processes: 4 processes need 4 GPUs; this machine has 1"}
