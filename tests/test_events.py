"""Job events with real training of the built-in model: a completed, a stopped, a failed and a resumed job, in
order; paging by cursor over REST; two writers; no secret (HF_TOKEN) in any events file."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sft_ui import events, jobdir
from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from tests.helpers import error, rest_client, run_until, wait_for

SECRET = "hf_secret_xyz"
DONE = {"max_steps": 6, "batch_size": 8, "logging_steps": 1, "save_steps": 3, "eval_split": 0.2, "eval_steps": 3,
        "eval_max_rows": 0}
LONG = {"max_steps": 100_000, "batch_size": 8, "logging_steps": 1, "save_steps": 3}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[JobManager, TestClient]]:
    """One manager (HF_TOKEN set in its environment, so its workers have it) and a REST client over it."""
    before = os.environ.get("HF_TOKEN")
    os.environ["HF_TOKEN"] = SECRET
    manager = JobManager(data_dir=tmp_path_factory.mktemp("events") / "data", max_concurrent_jobs=1).start()
    with rest_client(manager) as client:
        yield manager, client
    manager.shutdown()
    if before is None:
        os.environ.pop("HF_TOKEN", None)
    else:
        os.environ["HF_TOKEN"] = before


def types(found: list[dict]) -> list[str]:
    """Each event's type, a phase as phase:<name>."""
    return [f"phase:{e['data']['phase']}" if e["type"] == "phase" else e["type"] for e in found]


def all_events(client: TestClient, job_id: str) -> list[dict]:
    """The whole list through REST, in one page; the file holds no secret of the server's environment."""
    body = client.get(f"/api/sft/jobs/{job_id}/events", params={"limit": 1000}).json()
    assert body["job_id"] == job_id and body["has_more"] is False
    job_dir = Path(client.get(f"/api/sft/jobs/{job_id}").json()["job_dir"])
    assert SECRET not in (job_dir / jobdir.EVENTS).read_text(encoding="utf-8")
    return body["events"]


def test_a_completed_job_tells_every_step_in_order_and_pages_by_cursor(served: tuple[JobManager, TestClient]) -> None:
    manager, client = served
    job_id = manager.create_job({**DONE, "job_name": "events <b>demo</b>"})
    manager.start_job(job_id)
    record = wait_for(manager, job_id, ENDED, timeout=300)
    assert record["status"] == "completed", manager.get_log(job_id)
    found = all_events(client, job_id)
    assert [e["id"] for e in found] == [f"evt_{n}" for n in range(1, len(found) + 1)]
    kinds = types(found)
    main = [k for k in kinds if k not in ("warning", "checkpoint", "evaluation")]
    assert main == ["created", "queued", "started", "phase:loading_model", "phase:loading_data", "data",
                    "phase:training", "phase:saving", "completed"], kinds
    assert found[0]["message"] == "Job created: events <b>demo</b>"  # as written: the page escapes it
    assert found[1]["data"] == {"position": 1}
    assert found[2]["data"]["pid"] == record["worker_pid"] and isinstance(found[2]["data"]["spare"], bool)
    training, saving = kinds.index("phase:training"), kinds.index("phase:saving")
    checkpoints = [e for e in found if e["type"] == "checkpoint"]
    assert [e["data"]["step"] for e in checkpoints] == [3, 6]
    assert checkpoints[0]["data"]["folder"] == "checkpoints/checkpoint-3"
    evaluations = [e for e in found if e["type"] == "evaluation"]
    eval_points = [p for p in manager.get_metrics(job_id) if "eval_loss" in p]
    assert [(e["data"]["step"], e["data"]["eval_loss"]) for e in evaluations] == \
        [(p["step"], p["eval_loss"]) for p in eval_points]
    assert all(training < found.index(e) < saving for e in checkpoints + evaluations)
    assert found[-1]["data"]["step"] == record["progress"]["step"] == 6
    assert all(e["level"] == "info" for e in found if e["type"] != "warning")
    assert all(e["created_at"].endswith("Z") for e in found)

    for limit in (1, 4, len(found)):  # after+limit pages concatenate to the whole list
        pages, after, more = [], None, True
        while more:
            body = client.get(f"/api/sft/jobs/{job_id}/events",
                              params={"limit": limit, **({"after": after} if after else {})}).json()
            assert len(body["events"]) <= limit
            pages += body["events"]
            more = body["has_more"]
            after = body["events"][-1]["id"]
        assert pages == found
    assert client.get(f"/api/sft/jobs/{job_id}/events", params={"after": found[-1]["id"]}).json() == \
        {"job_id": job_id, "events": [], "has_more": False}
    assert client.get(f"/api/sft/jobs/{job_id}/events").json()["events"] == found  # limit 100 by default
    error(client.get(f"/api/sft/jobs/{job_id}/events", params={"after": "12"}), 400, "after")
    error(client.get(f"/api/sft/jobs/{job_id}/events", params={"limit": 0}), 400, "limit")
    error(client.get(f"/api/sft/jobs/{job_id}/events", params={"limit": 1001}), 400, "limit")
    error(client.get("/api/sft/jobs/nope/events"), 404, "nope")


def test_warnings_are_events_of_their_own(served: tuple[JobManager, TestClient]) -> None:
    manager, client = served
    job_id = manager.create_job({"max_steps": 2, "batch_size": 4, "max_seq_length": 32,
                                 "use_liger_kernel": True})
    manager.start_job(job_id)
    record = wait_for(manager, job_id, ENDED, timeout=180)
    assert record["status"] == "completed", manager.get_log(job_id)
    found = all_events(client, job_id)
    warnings = [e["message"] for e in found if e["level"] == "warning"]
    assert all(e["type"] == "warning" for e in found if e["level"] == "warning")
    assert any(m.startswith("use_liger_kernel: ") for m in warnings), warnings
    assert any(m.startswith("Data: ") and "dropped or truncated" in m for m in warnings), warnings
    rows = record["result"]["rows"]
    [data] = [e for e in found if e["type"] == "data"]
    dropped = sum(rows["dropped"].values())
    assert rows["truncated"] > 0 and data["data"]["rows"] == rows
    assert data["message"] == (f"Data: {rows['used']} rows used of {rows['read']} read, {dropped} dropped, "
                               f"{rows['truncated']} truncated")


def test_a_failed_job_ends_with_an_error_event_naming_the_cause(served: tuple[JobManager, TestClient]) -> None:
    manager, client = served
    job_id = manager.create_job({**DONE, "dataset_name": "missing.jsonl"})
    manager.start_job(job_id)
    record = wait_for(manager, job_id, ENDED, timeout=180)
    assert record["status"] == "failed"
    found = all_events(client, job_id)
    assert types(found)[:3] == ["created", "queued", "started"]
    assert "phase:training" not in types(found)
    last = found[-1]
    assert (last["type"], last["level"]) == ("failed", "error")
    assert last["data"]["error"] == record["error"] and last["message"] == f"Failed: {record['error']}"
    assert "not found" in last["message"]


def test_a_stopped_then_resumed_job_appends_and_never_rewrites(served: tuple[JobManager, TestClient]) -> None:
    manager, client = served
    job_id = manager.create_job({**LONG, "max_steps": 60})  # enough steps that the stop lands before the end
    run_until(manager, job_id, 4, timeout=180)
    stopped = manager.stop_job(job_id)
    assert stopped["status"] == "stopped", manager.get_log(job_id)
    first = all_events(client, job_id)
    kinds = types(first)
    assert kinds.index("phase:training") < kinds.index("stop_requested") < len(kinds) - 1
    assert kinds[-1] == "stopped" and first[-1]["data"]["step"] == stopped["progress"]["step"]
    assert first[-1]["message"] == f"Stopped at step {stopped['progress']['step']}"

    step = manager.resume_job(job_id)["resumed"]["from_step"]
    record = wait_for(manager, job_id, ENDED, timeout=300)
    assert record["status"] == "completed", manager.get_log(job_id)
    found = all_events(client, job_id)
    assert found[:len(first)] == first  # the first run's events are kept as they were
    after = found[len(first):]
    assert types(after)[:3] == ["resumed", "queued", "started"]
    assert after[0]["data"] == {"checkpoint": f"checkpoint-{step}", "step": step}
    assert [e["data"]["step"] for e in after if e["type"] == "checkpoint"] == list(range(step + 3, 61, 3))
    assert types(after)[-1] == "completed"


def test_a_pending_job_stopped_in_the_queue(served: tuple[JobManager, TestClient]) -> None:
    manager, client = served
    running = manager.create_job(LONG)
    waiting = manager.create_job(LONG)
    manager.start_job(running)
    manager.start_job(waiting)
    manager.stop_job(waiting)
    manager.stop_job(running)
    found = all_events(client, waiting)
    assert types(found) == ["created", "queued", "stop_requested", "stopped"]
    assert found[1]["data"] == {"position": 1} and found[-1]["message"] == "Stopped before training"


def _write(job_dir: Path, writer: str, count: int) -> None:
    for i in range(count):
        events.append(job_dir, "tick", f"{writer} {i}", writer=writer, i=i)


def test_two_processes_append_whole_lines_and_ids_follow_the_lines(tmp_path: Path) -> None:
    procs = [multiprocessing.get_context("fork").Process(target=_write, args=(tmp_path, w, 300)) for w in "ab"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    found = events.read_all(tmp_path)
    assert [e["id"] for e in found] == [f"evt_{n}" for n in range(1, 601)]
    for writer in "ab":  # each writer's own events keep their order
        assert [e["data"]["i"] for e in found if e["data"]["writer"] == writer] == list(range(300))


def test_a_job_the_dead_server_left_running_ends_with_an_event_at_restart(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from sft_ui.manager import INTERRUPTED

    monkeypatch.setenv("SFT_UI_SPARE_WORKER", "0")
    first = JobManager(data_dir=tmp_path / "data").start()
    job_id = first.create_job(DONE)
    first.store.update_job(job_id, {"status": "running", "started_at": "2026-01-01T00:00:00Z",
                                    "worker_pid": 999_999_999})
    second = JobManager(data_dir=tmp_path / "data").start()  # a server started on the same data dir after a crash
    try:
        found, more = second.get_events(job_id)
        assert not more and types(found) == ["created", "failed"]
        assert found[-1]["level"] == "error" and found[-1]["data"]["error"] == INTERRUPTED
    finally:
        second.shutdown()
        first.shutdown()
