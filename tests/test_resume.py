"""Resume: a stopped or failed job continues from its last checkpoint as the same job."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from sft_ui import jobdir, resume
from sft_ui.manager import JobManager, NotFoundError, StateError
from sft_ui.status import ACTIVE, ENDED
from tests.helpers import rest_client, run_until, wait_for

CHECKPOINTED = {"max_steps": 40, "save_steps": 10, "logging_steps": 1, "batch_size": 8}


def steps_of(manager: JobManager, job_id: str) -> list[int]:
    """The steps of the logged training-loss points, in file order."""
    return [p["step"] for p in manager.get_metrics(job_id) if "loss" in p]


def test_a_stopped_then_failed_job_resumes_from_its_last_checkpoints_and_completes(manager: JobManager) -> None:
    job_id = manager.create_job(CHECKPOINTED)
    run_until(manager, job_id, 12)
    stopped = manager.stop_job(job_id)
    assert stopped["status"] == "stopped", manager.get_log(job_id)
    at = stopped["progress"]["step"]
    assert 12 <= at < 40
    job_dir = Path(stopped["job_dir"])
    name, step = resume.last_checkpoint(job_dir) or ("", 0)
    assert step == at // 10 * 10
    assert name == f"checkpoint-{step}"
    assert steps_of(manager, job_id) == list(range(1, at + 1))
    lr_before = {p["step"]: p["learning_rate"] for p in manager.get_metrics(job_id) if "learning_rate" in p}

    resumed = rest_client(manager).post(f"/api/sft/jobs/{job_id}/resume")
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["job_id"] == job_id
    assert body["status"] in ACTIVE
    assert body["step"] == step
    assert body["message"] == f"Job {job_id} resumed from step {step}"
    assert steps_of(manager, job_id) == list(range(1, step + 1))  # what came after the checkpoint is redone

    # Killed mid-way (failed), it resumes again, from the newer checkpoint.
    deadline = time.monotonic() + 120
    while (resume.last_checkpoint(job_dir) or ("", 0))[1] <= step or steps_of(manager, job_id)[-1:] < [step + 12]:
        assert manager.get_job_status(job_id)["status"] in ACTIVE, manager.get_log(job_id)
        assert time.monotonic() < deadline, manager.get_log(job_id)
        time.sleep(0.05)
    os.kill(manager.get_job_status(job_id)["worker_pid"], signal.SIGKILL)
    assert wait_for(manager, job_id, ("failed",), timeout=30)["error"]
    again = manager.resume_job(job_id)
    assert again["status"] in ACTIVE
    assert again["resumed"]["from_step"] > step

    done = wait_for(manager, job_id, ENDED)
    assert done["status"] == "completed", done["error"]
    assert done["progress"]["step"] == 40
    assert done["result"]["steps"] == 40
    assert done["error"] is None
    assert done["resumed"]["times"] == 2
    assert steps_of(manager, job_id) == list(range(1, 41))  # one curve, no repeated steps
    lr_after = {p["step"]: p["learning_rate"] for p in manager.get_metrics(job_id) if "learning_rate" in p}
    assert all(lr_after[s] == pytest.approx(lr_before[s]) for s in range(1, at + 1))  # the schedule went on
    assert f"resuming from checkpoint-{step}" in manager.get_log(job_id)
    assert (job_dir / jobdir.MODEL / "adapter_config.json").is_file()
    assert [j["job_id"] for j in manager.list_jobs()] == [job_id]  # the same job, not a new one
    with pytest.raises(StateError, match="only a stopped or failed job"):
        manager.resume_job(job_id)


def test_resume_says_when_there_is_nothing_to_resume(manager: JobManager) -> None:
    never_ran = manager.create_job({"max_steps": 5})
    manager.stop_job(never_ran)  # stopped while pending: no checkpoint
    with pytest.raises(StateError, match="no checkpoint to resume from .save_steps is 0"):
        manager.resume_job(never_ran)
    with pytest.raises(NotFoundError):
        manager.resume_job("nope0000")
    client = rest_client(manager)
    answer = client.post(f"/api/sft/jobs/{never_ran}/resume")
    assert answer.status_code == 400
    assert "no checkpoint to resume from" in answer.json()["detail"]
    assert client.post("/api/sft/jobs/nope0000/resume").status_code == 404
    pending = manager.create_job({"max_steps": 5})
    answer = client.post(f"/api/sft/jobs/{pending}/resume")
    assert answer.status_code == 400
    assert "is pending" in answer.json()["detail"]


def test_a_resume_the_disk_refuses_leaves_the_job_and_its_files_as_they_were(quiet: JobManager) -> None:
    from sft_ui.store import StoreWriteError

    job_id = quiet.create_job({"max_steps": 20, "save_steps": 5})
    job_dir = Path(quiet.get_job_status(job_id)["job_dir"])
    (job_dir / jobdir.CHECKPOINTS / "checkpoint-5").mkdir(parents=True)
    (job_dir / jobdir.CHECKPOINTS / "checkpoint-5" / "trainer_state.json").write_text("{}")
    (job_dir / jobdir.METRICS).write_text("".join(f'{{"step": {s}, "loss": 1.0}}\n' for s in range(1, 9)))
    jobdir.write_json(job_dir / jobdir.RESULT, {"status": "stopped", "error": None, "result": {"steps": 8}})
    quiet.store.update_job(job_id, {"status": "stopped", "result": {"steps": 8}})
    real = quiet.store.update_job

    def full(job: str, fields: dict) -> None:
        raise StoreWriteError(28, "No space left on device")

    quiet.store.update_job = full  # type: ignore[method-assign]
    with pytest.raises(StoreWriteError):
        quiet.resume_job(job_id)
    quiet.store.update_job = real  # type: ignore[method-assign]
    assert quiet.get_job_status(job_id)["status"] == "stopped"
    assert len(jobdir.read_metrics(job_dir / jobdir.METRICS)) == 8
    assert (job_dir / jobdir.RESULT).exists()
    assert not (job_dir / jobdir.RESUME).exists()


def test_a_job_stopped_at_its_last_step_resumes_without_training_past_it(manager: JobManager) -> None:
    job_id = manager.create_job({"max_steps": 12, "save_steps": 4, "eval_max_rows": 0})
    manager.start_job(job_id)
    wait_for(manager, job_id, ("completed",))
    # A stop that arrives during the last step ends the job stopped, with its last checkpoint at max_steps.
    manager.store.update_job(job_id, {"status": "stopped"})
    manager.resume_job(job_id)
    record = wait_for(manager, job_id, ("completed",))
    assert record["progress"]["step"] == 12
    assert steps_of(manager, job_id)[-1] == 12
    assert record["result"]["steps"] == 12
    assert not (Path(record["job_dir"]) / jobdir.CHECKPOINTS / "checkpoint-13").exists()
