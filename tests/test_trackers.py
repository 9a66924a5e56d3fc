"""report_to with real training: TensorBoard's and trackio's own readers see the losses metrics.jsonl holds; tokens
are counted; a tracker that is not installed fails the job early; no credential reaches a record, log or event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from sft_ui import artifacts, tracking
from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from tests.helpers import wait_for
from tests.servers import live_server

SECRET = "wandb-secret-0f9e8d7c"  # set in the server's env: must be written nowhere


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[JobManager, str]]:
    """A completed job that reported to TensorBoard and trackio, made by a manager whose env holds secrets."""
    saved = {key: os.environ.get(key) for key in ("WANDB_API_KEY", "MLFLOW_TRACKING_PASSWORD", "TRACKIO_DIR")}
    os.environ.update(WANDB_API_KEY=SECRET, MLFLOW_TRACKING_PASSWORD=SECRET)
    os.environ.pop("TRACKIO_DIR", None)
    manager = JobManager(data_dir=tmp_path_factory.mktemp("trackers") / "data").start()
    try:
        job_id = manager.create_job({"job_name": "tracked", "max_steps": 12, "logging_steps": 2,
                                     "report_to": ["tensorboard", "trackio"]}, metadata={"purpose": "trackers"})
        manager.start_job(job_id)
        record = wait_for(manager, job_id, ENDED, timeout=300)
        assert record["status"] == "completed", (record["error"], manager.get_log(job_id)[-3000:])
        yield manager, job_id
    finally:
        manager.shutdown()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def losses(manager: JobManager, job_id: str) -> dict[int, float]:
    return {p["step"]: p["loss"] for p in manager.get_metrics(job_id) if "loss" in p}


def test_tensorboard_event_files_hold_the_logged_losses_and_go_into_the_zip(tracked: tuple[JobManager, str]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    manager, job_id = tracked
    job_dir = Path(manager.get_job_status(job_id)["job_dir"])
    board = job_dir / tracking.TENSORBOARD_DIR
    reader = EventAccumulator(str(board))
    reader.Reload()
    read = {event.step: event.value for event in reader.Scalars("train/loss")}
    expected = losses(manager, job_id)
    assert sorted(read) == sorted(expected) == [2, 4, 6, 8, 10, 12]
    for step, value in expected.items():
        assert read[step] == pytest.approx(value, rel=1e-5)
    with zipfile.ZipFile(artifacts.zip_job(manager, job_id)) as archive:
        names = archive.namelist()
    events = [p.relative_to(job_dir).as_posix() for p in board.rglob("events.out.tfevents.*")]
    assert events and set(events) <= set(names)


def test_trackio_run_holds_the_same_losses(tracked: tuple[JobManager, str]) -> None:
    manager, job_id = tracked
    script = ("import json, trackio\nfrom trackio.sqlite_storage import SQLiteStorage\n"
              "runs = [r.name for r in trackio.Api().runs('sft-ui')]\n"
              "logs = SQLiteStorage.get_logs('sft-ui', runs[0])\n"
              "print(json.dumps({'runs': runs, 'loss': {l['step']: l['loss'] for l in logs if 'loss' in l}}))")
    env = {**os.environ, "TRACKIO_DIR": str(manager.data_dir / "trackio"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    read = json.loads(out.stdout.strip().splitlines()[-1])
    assert read["runs"] == [f"tracked ({job_id})"]
    expected = losses(manager, job_id)
    assert {int(step): value for step, value in read["loss"].items()} == pytest.approx(expected, rel=1e-5)


def test_trained_tokens_metadata_and_no_secret_anywhere(tracked: tuple[JobManager, str]) -> None:
    manager, job_id = tracked
    record = manager.get_job_status(job_id)
    points = manager.get_metrics(job_id)
    assert record["trained_tokens"] > 0
    assert record["trained_tokens"] == max(p["num_tokens"] for p in points if "num_tokens" in p)
    assert record["estimated_finish"] is None  # only while running
    assert record["metadata"] == {"purpose": "trackers"}
    assert [j["job_id"] for j in manager.list_jobs() if j["metadata"].get("purpose") == "trackers"] == [job_id]
    checked = 0
    for path in manager.data_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert SECRET.encode() not in path.read_bytes(), path
            checked += 1
    assert checked > 10  # the record's database, log, metrics, events, TensorBoard and trackio files


def test_a_tracker_that_is_not_installed_fails_the_job_early_naming_report_to(tmp_path: Path) -> None:
    if any(tracking.find_spec(name) is not None for name in ("wandb", "mlflow")):
        pytest.skip("wandb or mlflow is installed here")
    manager = JobManager(data_dir=tmp_path / "data").start()
    try:
        job_id = manager.create_job({"max_steps": 5, "report_to": ["wandb"]})
        manager.start_job(job_id)
        record = wait_for(manager, job_id, ENDED, timeout=180)
        assert record["status"] == "failed"
        assert "report_to: wandb is not installed" in record["error"] and "pip install wandb" in record["error"]
        assert record["progress"]["step"] == 0
    finally:
        manager.shutdown()


def test_gradio_train_takes_metadata_and_list_jobs_filters_on_it(quiet: JobManager) -> None:
    with live_server(quiet) as url:
        gradio = Client(url, verbose=False)
        try:
            first = gradio.predict({"max_steps": 5}, {"team": "nlp"}, api_name="/train")["job_id"]
            gradio.predict({"max_steps": 5}, None, api_name="/train")
            assert gradio.predict(first, api_name="/get_job")["metadata"] == {"team": "nlp"}
            listed = gradio.predict(None, {"team": "nlp"}, api_name="/list_jobs")["jobs"]
            assert [job["job_id"] for job in listed] == [first]
            assert len(gradio.predict(None, None, api_name="/list_jobs")["jobs"]) == 2
            with pytest.raises(Exception, match=r"metadata\.team: must be a string"):
                gradio.predict({}, {"team": 1}, api_name="/train")
        finally:
            gradio.close()
