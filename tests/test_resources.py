"""GET /resources: the machine's CPU and memory, and which of sft-ui's processes hold memory."""

from __future__ import annotations

import os
import time

from fastapi.testclient import TestClient

from sft_ui.manager import JobManager
from tests.helpers import LONG, rest_client, wait_for


def test_resources_show_cpu_memory_and_the_server(client: TestClient) -> None:
    body = client.get("/api/sft/resources").json()
    assert 0.0 <= body["cpu_percent"] <= 100.0
    assert 0 < body["memory"]["available_bytes"] <= body["memory"]["total_bytes"]
    assert body["cpu_count"] == os.cpu_count()
    server = body["processes"][0]
    assert server["holder"] == "server"
    assert server["pid"] == os.getpid()
    assert server["rss_bytes"] > 50 * 2**20


def test_no_gpu_no_gpu_rows(client: TestClient, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi to find
    assert client.get("/api/sft/resources").json()["gpus"] == []


def test_a_running_job_shows_as_a_memory_holder(manager: JobManager) -> None:
    job_id = manager.create_job({**LONG, "job_name": "holder"})
    manager.start_job(job_id)
    wait_for(manager, job_id, ("running",), timeout=60)
    deadline = time.monotonic() + 30
    while not manager.get_job_status(job_id).get("worker_pid"):  # recorded just after the job turns running
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with rest_client(manager) as client:
        holders = {row["holder"]: row for row in client.get("/api/sft/resources").json()["processes"]}
    row = holders[f"job {job_id} (holder)"]
    assert row["pid"] == manager.get_job_status(job_id)["worker_pid"]
    assert row["rss_bytes"] > 0


def test_releasing_the_playground_says_what_it_freed(client: TestClient) -> None:
    answer = client.post("/api/sft/playground/release")
    assert answer.json() == {"message": "No models were loaded"}
