"""The REST API of SFT_API_REFERENCE.md: every endpoint, body shape and error code, over TestClient."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sft_ui import jobdir
from sft_ui.manager import JobManager
from sft_ui.status import ENDED, STATUSES
from tests.helpers import api_app, error


def pending_job(manager: JobManager, **config: Any) -> str:
    """A job that exists but was never started (no worker process)."""
    return manager.create_job(config)


def finish(manager: JobManager, job_id: str, status: str) -> None:
    """Pretend the job ended with `status` (these tests are about the API, not training)."""
    manager.store.update_job(job_id, {"status": status, "finished_at": "2026-11-27T00:00:00Z"})


# --- POST /train ---


BAD_BODIES = [
    (b'{"config": {"max_steps": 20}', "body: malformed JSON"),
    (b"", "body: a JSON object is required"),
    (b"[]", "body: Input should be a valid dictionary"),
    (b"{}", "config: Field required"),
    (b'{"config": {"max_steps": "abc"}}', "config.max_steps: Input should be a valid integer"),
    (b'{"config": {"max_steps": 0}}', "config.max_steps: Input should be greater than or equal to 1"),
    (b'{"config": {"use_lora": "maybe"}}', "config.use_lora: Input should be a valid boolean"),
    (b'{"config": {"learning_rat": 0.1}}', "config.learning_rat: Extra inputs are not permitted"),
    (b'{"config": {"dataset_format": "csv"}}', "config.dataset_format: Input should be"),
    (b'{"config": {"output_dir": "../../etc"}}', "config.output_dir: must be a relative folder"),
    (b'{"config": {"output_dir": "/tmp/x"}}', "config.output_dir: must be a relative folder"),
    (b'{"config": "max_steps=20"}', "config: Input should be a valid dictionary"),
    (b'{"max_steps": 20}', "max_steps: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("body", "detail"), BAD_BODIES, ids=[d for _, d in BAD_BODIES])
def test_train_rejects_invalid_input_with_400_naming_the_field(client: TestClient, body: bytes, detail: str) -> None:
    response = client.post("/api/sft/train", content=body, headers={"Content-Type": "application/json"})
    error(response, 400, detail)
    assert client.get("/api/sft/jobs").json() == {"jobs": []}


def test_train_without_a_json_content_type_is_400_saying_so(client: TestClient) -> None:
    error(client.post("/api/sft/train", content=b'{"config": {}}'), 400, "Content-Type: application/json")
    error(client.post("/api/sft/train", data={"config": "{}"}), 400, "Content-Type: application/json")
    error(client.post("/api/sft/train"), 400, "body")


def test_output_dir_leading_out_through_a_symlink_is_400(client: TestClient, manager: JobManager,
                                                         tmp_path: Path) -> None:
    (manager.store_root() / "out").symlink_to(tmp_path)
    error(client.post("/api/sft/train", json={"config": {"output_dir": "out"}}), 400, "output_dir")


# --- GET /jobs/{id}, GET /jobs ---


def test_get_job_returns_the_record(client: TestClient, manager: JobManager) -> None:
    job_id = pending_job(manager, max_steps=20, job_name="mine")
    record = client.get(f"/api/sft/jobs/{job_id}").json()
    assert {"job_id", "name", "status", "created_at", "started_at", "finished_at", "config", "progress",
            "metrics", "error", "result"} <= set(record)
    assert record["job_id"] == job_id
    assert record["status"] == "pending"
    assert record["name"] == "mine"
    assert record["created_at"].endswith("Z")
    assert record["started_at"] is None
    assert record["progress"] == {"step": 0, "total_steps": 20, "epoch": 0.0, "eta_seconds": None}
    assert record == {**manager.get_job_status(job_id), "queue_position": None}


def test_list_jobs_newest_first_with_status_limit_and_offset(client: TestClient, manager: JobManager) -> None:
    ids = [pending_job(manager, job_name=f"job{i}") for i in range(4)]
    finish(manager, ids[1], "completed")
    finish(manager, ids[2], "failed")
    listed = client.get("/api/sft/jobs").json()
    assert list(listed) == ["jobs"]
    assert [j["job_id"] for j in listed["jobs"]] == ids[::-1]
    assert [j["job_id"] for j in client.get("/api/sft/jobs?status=pending").json()["jobs"]] == [ids[3], ids[0]]
    assert [j["job_id"] for j in client.get("/api/sft/jobs?status=completed").json()["jobs"]] == [ids[1]]
    assert client.get("/api/sft/jobs?status=stopped").json() == {"jobs": []}
    page = client.get("/api/sft/jobs", params={"limit": 2, "offset": 1}).json()["jobs"]
    assert [j["job_id"] for j in page] == [ids[2], ids[1]]
    error(client.get("/api/sft/jobs?status=done"), 400, "status: Input should be 'pending'")
    error(client.get("/api/sft/jobs?limit=0"), 400, "limit: Input should be greater than or equal to 1")
    error(client.get("/api/sft/jobs?limit=ten"), 400, "limit: Input should be a valid integer")
    error(client.get("/api/sft/jobs?offset=-1"), 400, "offset:")


# --- POST /jobs/{id}/stop, DELETE /jobs/{id} ---


def test_stop_a_pending_job_then_stopping_it_again_is_400_naming_its_status(client: TestClient,
                                                                           manager: JobManager) -> None:
    job_id = pending_job(manager)
    stopped = client.post(f"/api/sft/jobs/{job_id}/stop")
    assert stopped.status_code == 200
    assert stopped.json()["message"] == f"Job {job_id} stopped"
    assert client.get(f"/api/sft/jobs/{job_id}").json()["status"] == "stopped"
    error(client.post(f"/api/sft/jobs/{job_id}/stop"), 400, job_id, "stopped")


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_stop_an_ended_job_is_400_naming_its_status(client: TestClient, manager: JobManager, status: str) -> None:
    job_id = pending_job(manager)
    finish(manager, job_id, status)
    error(client.post(f"/api/sft/jobs/{job_id}/stop"), 400, f"already {status}")
    assert client.get(f"/api/sft/jobs/{job_id}").json()["status"] == status


def test_delete_job(client: TestClient, manager: JobManager) -> None:
    job_id = pending_job(manager)
    error(client.delete(f"/api/sft/jobs/{job_id}"), 400, "pending", "stop it")
    finish(manager, job_id, "completed")
    assert client.delete(f"/api/sft/jobs/{job_id}").json() == {"message": f"Job {job_id} deleted"}
    error(client.get(f"/api/sft/jobs/{job_id}"), 404, job_id)
    error(client.delete(f"/api/sft/jobs/{job_id}"), 404, job_id)


# --- GET /jobs/{id}/metrics and /log ---


def test_metrics_with_since_and_log(client: TestClient, manager: JobManager) -> None:
    job_id = pending_job(manager)
    job_dir = Path(manager.get_job_status(job_id)["job_dir"])
    assert client.get(f"/api/sft/jobs/{job_id}/metrics").json() == {"job_id": job_id, "points": []}
    points = [{"step": s, "loss": 3.0 - s / 10, "learning_rate": 1e-3} for s in range(1, 6)]
    (job_dir / jobdir.METRICS).write_text("".join(json.dumps(p) + "\n" for p in points))
    (job_dir / jobdir.LOG).write_text("loading model\nstep 5\n")
    assert client.get(f"/api/sft/jobs/{job_id}/metrics").json()["points"] == points
    assert client.get(f"/api/sft/jobs/{job_id}/metrics?since=3").json()["points"] == points[3:]
    assert client.get(f"/api/sft/jobs/{job_id}/metrics", params={"since": 5}).json()["points"] == []
    error(client.get(f"/api/sft/jobs/{job_id}/metrics?since=abc"), 400, "since: Input should be a valid integer")
    assert client.get(f"/api/sft/jobs/{job_id}/log").json() == {"job_id": job_id, "log": "loading model\nstep 5\n"}


def test_metrics_max_points_thins_evenly_keeping_the_first_and_last(client: TestClient, manager: JobManager) -> None:
    job_id = pending_job(manager)
    job_dir = Path(manager.get_job_status(job_id)["job_dir"])
    points = [{"step": s, "loss": 3.0 - s / 1000, "learning_rate": 1e-3} for s in range(1, 2001)]
    (job_dir / jobdir.METRICS).write_text("".join(json.dumps(p) + "\n" for p in points))
    url = f"/api/sft/jobs/{job_id}/metrics"
    thin = client.get(url, params={"max_points": 100}).json()["points"]
    steps = [p["step"] for p in thin]
    assert len(thin) == 100
    assert steps[0] == 1
    assert steps[-1] == 2000
    assert thin[-1] == points[-1]
    assert steps == sorted(set(steps))
    assert max(b - a for a, b in zip(steps, steps[1:], strict=False)) <= 21
    assert client.get(url, params={"max_points": 5000}).json()["points"] == points  # fewer than the limit: all
    newer = client.get(url, params={"since": 1990, "max_points": 4}).json()["points"]
    assert [p["step"] for p in newer] == [1991, 1994, 1997, 2000]  # since first, then thinned
    assert len(client.get(url).json()["points"]) == 2000  # without max_points: the whole history, as before
    error(client.get(url, params={"max_points": 1}), 400, "max_points", "greater than or equal to 2")
    error(client.get(url, params={"max_points": "many"}), 400, "max_points", "valid integer")


def test_list_without_params_returns_every_job_and_follows_changes(client: TestClient, manager: JobManager) -> None:
    ended = [pending_job(manager, job_name=f"ended {i}") for i in range(60)]
    for i, job_id in enumerate(ended):
        finish(manager, job_id, ENDED[i % 3])
    waiting = pending_job(manager, job_name="waiting")
    jobs = client.get("/api/sft/jobs").json()["jobs"]
    assert [j["job_id"] for j in jobs] == [waiting, *reversed(ended)]
    assert jobs[1] == client.get(f"/api/sft/jobs/{ended[-1]}").json()  # the same record as GET /jobs/{id}
    manager.store.update_job(ended[0], {"name": "renamed"})  # an ended record that changes is answered anew
    manager.delete_job(ended[1])
    manager.stop_job(waiting)
    jobs = client.get("/api/sft/jobs").json()["jobs"]
    assert len(jobs) == 60
    assert jobs[-1]["name"] == "renamed"
    assert ended[1] not in {j["job_id"] for j in jobs}
    assert jobs[0]["status"] == "stopped"
    assert client.get("/api/sft/health").json()["jobs"]["stopped"] == 21


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/sft/jobs/{id}"), ("POST", "/api/sft/jobs/{id}/stop"), ("DELETE", "/api/sft/jobs/{id}"),
    ("GET", "/api/sft/jobs/{id}/metrics"), ("GET", "/api/sft/jobs/{id}/log"),
    ("GET", "/api/sft/configs/{id}"), ("DELETE", "/api/sft/configs/{id}"),
])
def test_unknown_job_or_config_is_404(client: TestClient, method: str, path: str) -> None:
    error(client.request(method, path.format(id="nosuchid")), 404, "nosuchid", "not found")


# --- configs ---


def test_save_list_get_and_delete_configs(client: TestClient) -> None:
    seed = {"base_model": "gpt2", "dataset_name": "tatsu-lab/alpaca", "use_lora": True}
    saved = client.post("/api/sft/configs", json={"name": "my_config", "config": seed})
    assert saved.status_code == 200
    assert set(saved.json()) == {"config_id", "name"}
    config_id = saved.json()["config_id"]
    assert saved.json()["name"] == "my_config"
    listed = client.get("/api/sft/configs").json()
    assert isinstance(listed, list)
    assert len(listed) == 1
    assert {"config_id", "name", "config"} <= set(listed[0])
    assert listed[0]["config_id"] == config_id
    one = client.get(f"/api/sft/configs/{config_id}").json()
    assert one["name"] == "my_config"
    assert one["config"]["base_model"] == "gpt2"
    assert one["config"]["max_steps"] == 200  # the rest are the defaults, stored in full
    again = client.post("/api/sft/configs", json={"name": "my_config", "config": {"max_steps": 5}}).json()
    assert again == {"config_id": config_id, "name": "my_config"}  # same name: replaced, same id
    assert client.get(f"/api/sft/configs/{config_id}").json()["config"]["max_steps"] == 5
    other = client.post("/api/sft/configs", json={"name": "other", "config": {}}).json()["config_id"]
    assert [c["name"] for c in client.get("/api/sft/configs").json()] == ["my_config", "other"]
    assert client.delete(f"/api/sft/configs/{config_id}").json() == {"message": f"Config {config_id} deleted"}
    assert [c["config_id"] for c in client.get("/api/sft/configs").json()] == [other]
    error(client.get(f"/api/sft/configs/{config_id}"), 404, config_id)


@pytest.mark.parametrize(("body", "detail"), [
    ({"config": {}}, "name: Field required"),
    ({"name": "x"}, "config: Field required"),
    ({"name": "   ", "config": {}}, "name: must be a non-empty string"),
    ({"name": "x" * 201, "config": {}}, "name: at most 200"),
    ({"name": 5, "config": {}}, "name: Input should be a valid string"),
    ({"name": "x", "config": {"lora_r": "big"}}, "config.lora_r: Input should be a valid integer"),
    ({"name": "x", "config": {"nope": 1}}, "config.nope: Extra inputs are not permitted"),
    ({"name": "x", "config": {}, "extra": 1}, "extra: Extra inputs are not permitted"),
])
def test_save_config_rejects_invalid_input_with_400(client: TestClient, body: dict, detail: str) -> None:
    error(client.post("/api/sft/configs", json=body), 400, detail)
    assert client.get("/api/sft/configs").json() == []


def test_save_config_malformed_json_is_400(client: TestClient) -> None:
    error(client.post("/api/sft/configs", content=b"{'name': 'x'}", headers={"Content-Type": "application/json"}),
          400, "body: malformed JSON")


# --- health, 500, auth ---


def test_health_counts_jobs_by_status(client: TestClient, manager: JobManager) -> None:
    finish(manager, pending_job(manager), "failed")
    pending_job(manager)
    manager.save_config("c", {})
    health = client.get("/api/sft/health").json()
    assert health == {"status": "ok", "jobs": {s: int(s in ("failed", "pending")) for s in STATUSES},
                      "configs": 1, "max_concurrent_jobs": manager.max_concurrent_jobs,
                      "database": {"restored": None}}


def test_a_fault_is_500_json_without_a_traceback(manager: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(manager, "list_jobs_encoded", broken)
    with TestClient(api_app(manager), raise_server_exceptions=False) as client:
        detail = error(client.get("/api/sft/jobs"), 500, "internal server error", "disk on fire")
    assert "Traceback" not in detail


GUARDED = [
    ("POST", "/api/sft/train", {"config": {"max_steps": 20}}), ("GET", "/api/sft/jobs", None),
    ("GET", "/api/sft/jobs/{job}", None), ("POST", "/api/sft/jobs/{job}/stop", None),
    ("DELETE", "/api/sft/jobs/{job}", None), ("GET", "/api/sft/jobs/{job}/metrics", None),
    ("GET", "/api/sft/jobs/{job}/log", None), ("POST", "/api/sft/configs", {"name": "n", "config": {}}),
    ("GET", "/api/sft/configs", None), ("GET", "/api/sft/configs/{config}", None),
    ("DELETE", "/api/sft/configs/{config}", None), ("POST", "/api/sft/train", {"config": {"max_steps": "abc"}}),
]


def test_api_key_guards_every_endpoint_but_health(client: TestClient, manager: JobManager,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    job, config = pending_job(manager), manager.save_config("kept", {})
    finish(manager, job, "completed")
    before = (manager.list_jobs(), manager.list_configs())
    monkeypatch.setenv("SFT_UI_API_KEY", "s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}, {"X-Api-Key": "s3cret"}):
        for method, path, body in GUARDED:
            response = client.request(method, path.format(job=job, config=config), json=body, headers=headers)
            error(response, 401, "API key")
            assert response.headers["www-authenticate"] == "Bearer"
        malformed = client.post("/api/sft/train", content=b"{", headers={**headers, "Content-Type": "application/json"})
        error(malformed, 401, "API key")
    assert (manager.list_jobs(), manager.list_configs()) == before
    assert client.get("/api/sft/health").status_code == 200
    auth = {"Authorization": "Bearer s3cret"}
    assert client.get(f"/api/sft/jobs/{job}", headers=auth).json()["status"] == "completed"
    assert client.delete(f"/api/sft/configs/{config}", headers=auth).status_code == 200
    monkeypatch.delenv("SFT_UI_API_KEY")
    assert client.get("/api/sft/jobs").status_code == 200
