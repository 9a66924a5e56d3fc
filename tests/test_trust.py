"""Issue 11's findings through the manager and REST: no poisoned store, no phantom records, no shared
namespace with the database, restores from job folders, and recovery from what a worker wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sft_ui import jobdir
from sft_ui.manager import INTERRUPTED, JobManager
from tests.helpers import fill_disk, rest_client, tiny_disk


def _paused(data: Path) -> JobManager:
    """A manager over `data` whose jobs never start a worker."""
    manager = JobManager(data_dir=data).start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    return manager


# --- 1 and 2: one bad string, or a full disk, changes nothing anyone sees ---

def test_a_lone_surrogate_config_name_leaves_the_api_working(quiet: JobManager) -> None:
    http = rest_client(quiet)
    bad = http.post("/api/sft/configs", content=b'{"name": "\\ud800", "config": {}}',
                    headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert http.post("/api/sft/configs", json={"name": "fine", "config": {}}).status_code == 200
    assert http.post("/api/sft/train", json={"config": {"max_steps": 1}}).status_code == 200
    listed = http.get("/api/sft/configs")
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()] == ["fine"]


def test_a_full_disk_answers_507_and_leaves_no_phantom_config(tmp_path: Path) -> None:
    with tiny_disk(tmp_path) as disk:
        manager = _paused(disk / "data")
        http = rest_client(manager)
        assert http.post("/api/sft/configs", json={"name": "before", "config": {}}).status_code == 200
        fill_disk(disk)
        saved, answer = ["before"], None
        for n in range(20):  # the journal's last page may still hold a line or two
            answer = http.post("/api/sft/configs", json={"name": f"c{n}", "config": {"job_name": "p" * 150}})
            if answer.status_code != 200:
                break
            saved.append(f"c{n}")
        assert answer is not None
        assert answer.status_code == 507
        assert "nothing changed" in answer.json()["detail"]
        assert [c["name"] for c in http.get("/api/sft/configs").json()] == saved


def test_a_full_disk_answers_507_and_leaves_no_phantom_job(tmp_path: Path) -> None:
    with tiny_disk(tmp_path) as disk:
        manager = _paused(disk / "data")
        http = rest_client(manager)
        fill_disk(disk)
        answer = http.post("/api/sft/train", json={"config": {"job_name": "p" * 150}})
        assert answer.status_code == 507
        assert http.get("/api/sft/jobs").json()["jobs"] == []
        assert list((disk / "data" / "outputs").glob("*")) == []


# --- 3: job folders and the server's own files do not share a namespace ---

def test_the_database_lives_in_the_private_folder(quiet: JobManager) -> None:
    assert quiet.database_path.parent == quiet.store_root() / ".sft_ui"


@pytest.mark.parametrize("output_dir", [".sft_ui", ".sft_ui/x", ".sft_ui/exports"])
def test_an_output_dir_in_the_private_folder_is_refused(quiet: JobManager, output_dir: str) -> None:
    with pytest.raises(ValueError, match="output_dir"):
        quiet.create_job({"output_dir": output_dir})


def test_an_output_dir_named_like_the_old_temp_file_leaves_writes_working(quiet: JobManager) -> None:
    quiet.create_job({"output_dir": f".sft_ui.json.{os.getpid()}.tmp"})
    quiet.save_config("after", {})
    assert [c["name"] for c in quiet.list_configs()] == ["after"]


@pytest.mark.parametrize("inside", ["", "/stop", "/model", "/a/b"])
def test_an_output_dir_inside_another_jobs_folder_is_refused(quiet: JobManager, inside: str) -> None:
    other = quiet.create_job({})
    with pytest.raises(ValueError, match=f"inside the folder of job {other}"):
        quiet.create_job({"output_dir": f"outputs/{other}{inside}"})
    assert not (quiet.store_root() / "outputs" / other / jobdir.STOP).exists()


@pytest.mark.parametrize("name", [".sft_ui/sft_ui.json", "./.sft_ui/sft_ui.json", "sft_ui.json"])
def test_a_dataset_naming_the_database_is_refused(quiet: JobManager, name: str) -> None:
    with pytest.raises(ValueError, match="dataset_name: .* the server's own files"):
        quiet.create_job({"dataset_name": name})


def test_a_database_where_older_versions_kept_it_is_moved_and_loads_whole(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "sft_ui.json").write_text(json.dumps({  # today's layout: TinyDB's JSON file at the data root
        "jobs": {"1": {"job_id": "0123456789ab", "name": "old", "status": "completed", "job_dir": str(data)}},
        "configs": {"1": {"config_id": "c1", "name": "kept", "config": {"max_steps": 5}}}}))
    manager = _paused(data)
    assert [r["name"] for r in manager.list_jobs()] == ["old"]
    assert [c["name"] for c in manager.list_configs()] == ["kept"]
    assert not (data / "sft_ui.json").exists()
    assert manager.database_status() == {"restored": None}


# --- 5: a damaged database is rebuilt from the job folders, and says so ---

def _finished_by_worker(manager: JobManager, job_id: str, status: str, step: int) -> Path:
    """Write what a worker leaves in a job folder when it ends (status.json, metrics.jsonl, result.json)."""
    job_dir = Path(manager.get_job_status(job_id)["job_dir"])
    jobdir.write_json(job_dir / jobdir.STATUS, {"phase": "saving", "step": step, "total_steps": 10, "epoch": 1.0,
                                                 "metrics": {"step": step, "loss": 1.25}})
    (job_dir / jobdir.METRICS).write_text("".join(json.dumps({"step": s, "loss": 2.0 - s / 10}) + "\n"
                                                  for s in range(1, step + 1)))
    jobdir.write_json(job_dir / jobdir.RESULT, {"status": status, "error": None,
                                                 "result": {"steps": step, "final_loss": 1.25}})
    return job_dir


def test_a_truncated_database_is_rebuilt_from_the_job_folders(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _paused(data)
    done = first.create_job({"job_name": "done", "max_steps": 10})
    _finished_by_worker(first, done, "completed", 10)
    first.store.update_job(done, {"status": "completed"})
    never = first.create_job({"job_name": "never started"})
    elsewhere = first.create_job({"job_name": "elsewhere", "output_dir": "runs/a"})
    first.save_config("saved", {"max_steps": 3})
    path = first.database_path
    first.store.close()
    path.write_bytes(path.read_bytes()[:40] if path.exists() else b'{"jobs": {')
    second = _paused(data)
    records = {r["job_id"]: r for r in second.list_jobs()}
    assert set(records) == {done, never, elsewhere}
    assert records[done]["status"] == "completed"
    assert records[done]["result"]["final_loss"] == 1.25
    assert records[done]["name"] == "done"
    assert records[never]["status"] == "pending"
    assert [c["name"] for c in second.list_configs()] == ["saved"]
    restored = second.database_status()["restored"]
    assert restored["jobs_rebuilt"] == 3
    assert restored["moved_aside"]


def test_a_restore_shows_in_health(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _paused(data)
    first.create_job({})
    first.store.close()
    first.database_path.write_text("not json")
    health = rest_client(_paused(data)).get("/api/sft/health").json()
    assert health["database"]["restored"]["jobs_rebuilt"] == 1
    assert "sft_ui.json" in health["database"]["restored"]["reason"]


# --- recovery after a crash uses what the worker wrote ---

def _left_running(data: Path, step: int, status: str | None) -> tuple[str, Path]:
    """A job recorded `running` by a server that died; its worker got to `step` and (maybe) wrote result.json."""
    first = _paused(data)
    job_id = first.create_job({"max_steps": 10})
    job_dir = _finished_by_worker(first, job_id, status or "completed", step)
    if status is None:
        (job_dir / jobdir.RESULT).unlink()
    first.store.update_job(job_id, {"status": "running", "started_at": "2026-01-01T00:00:00Z",
                                    "worker_pid": 999_999_999})
    first.store.close()
    return job_id, job_dir


@pytest.mark.parametrize("status", ["completed", "stopped"])
def test_a_job_whose_worker_finished_after_the_crash_keeps_its_result(tmp_path: Path, status: str) -> None:
    job_id, _ = _left_running(tmp_path / "data", 10, status)
    record = _paused(tmp_path / "data").get_job_status(job_id)
    assert record["status"] == status
    assert record["result"]["steps"] == 10
    assert record["progress"]["step"] == 10
    assert record["error"] is None


def test_an_interrupted_job_keeps_its_last_step_and_metrics(tmp_path: Path) -> None:
    job_id, _ = _left_running(tmp_path / "data", 7, None)
    record = _paused(tmp_path / "data").get_job_status(job_id)
    assert record["status"] == "failed"
    assert record["error"] == INTERRUPTED
    assert record["progress"]["step"] == 7
    assert record["metrics"]["loss"] == 1.25


def test_a_failed_final_write_frees_the_slot_and_is_written_later(manager: JobManager) -> None:
    from sft_ui.store import StoreWriteError
    from tests.helpers import wait_for

    store = manager.store
    real, failures = store.update_job, []

    def full_once(job_id: str, fields: dict) -> None:
        if "finished_at" in fields and not failures:  # the first job's end meets a full disk
            failures.append(job_id)
            raise StoreWriteError(28, "No space left on device")
        real(job_id, fields)

    store.update_job = full_once  # type: ignore[method-assign]
    first = manager.create_job({"max_steps": 2})
    second = manager.create_job({"max_steps": 2})
    manager.start_job(first)
    manager.start_job(second)
    assert wait_for(manager, second, ("completed", "failed"), timeout=300)["status"] == "completed"
    assert failures == [first]
    assert wait_for(manager, first, ("completed", "failed"), timeout=30)["status"] == "completed"


def test_a_full_disk_reaches_a_gradio_client_as_nothing_changed(tmp_path: Path) -> None:
    from gradio_client import Client

    from tests.servers import live_server

    with tiny_disk(tmp_path, "2m") as disk:
        manager = _paused(disk / "data")
        with live_server(manager) as url:
            client = Client(url, verbose=False)
            fill_disk(disk)
            message = ""
            for n in range(20):  # the journal's last page may still hold a line or two
                try:
                    client.predict(f"c{n}", {"job_name": "p" * 150}, api_name="/save_config")
                except Exception as exc:  # gradio_client's AppError carries the endpoint's message
                    message = str(exc)
                    break
            assert "nothing changed" in message
            assert len(manager.list_configs()) == n


def test_a_deleted_job_stays_deleted_after_a_rebuild(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _paused(data)
    gone = first.create_job({"job_name": "gone"})
    first.stop_job(gone)
    first.delete_job(gone)
    kept = first.create_job({"job_name": "kept"})
    first.store.close()
    first.database_path.write_text("{")
    assert [r["job_id"] for r in _paused(data).list_jobs()] == [kept]


def test_a_failed_worker_pid_write_still_follows_the_worker_to_its_end(manager: JobManager) -> None:
    from sft_ui.store import StoreWriteError
    from tests.helpers import wait_for

    store = manager.store
    real = store.update_job

    def no_pid(job_id: str, fields: dict) -> None:
        if "worker_pid" in fields:
            raise StoreWriteError(28, "No space left on device")
        real(job_id, fields)

    store.update_job = no_pid  # type: ignore[method-assign]
    job_id = manager.create_job({"max_steps": 2})
    manager.start_job(job_id)
    record = wait_for(manager, job_id, ("completed", "failed"), timeout=300)
    assert record["status"] == "completed"
    assert record["progress"]["total_steps"] == 2
