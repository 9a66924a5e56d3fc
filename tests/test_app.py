"""app.py as a process: importing it stays light, and README's and the seed's calls run against
`python app.py` (conftest's sft_server); and POST /train over TestClient with real workers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sft_ui.manager import JobManager
from sft_ui.status import ACTIVE
from tests.helpers import api_app, error

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
LONG = {"max_steps": 100_000}


def readme_block(language: str) -> str:
    """The first ```language block of README's API section."""
    section = README.split("\n## API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def test_importing_app_and_building_it_loads_no_training_library(tmp_path: Path) -> None:
    heavy = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")
    code = f"import sys, app; app.build_app(); print([m for m in {heavy!r} if m in sys.modules])"
    env = {"SFT_UI_DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert list(tmp_path.iterdir()) == []  # building the app opens nothing and starts nothing


# --- POST /train starts real workers ---


@pytest.mark.slow  # its POST /train starts workers, which conftest's rule cannot see in the code
def test_train_starts_a_job_running_and_queues_the_next_pending(tmp_path: Path) -> None:
    manager = JobManager(data_dir=tmp_path, max_concurrent_jobs=1).start()
    try:
        with TestClient(api_app(manager)) as client:
            first = client.post("/api/sft/train", json={"config": LONG})
            second = client.post("/api/sft/train", json={"config": {**LONG, "job_name": "second"}})
            assert first.status_code == second.status_code == 200
            assert set(first.json()) == {"job_id", "status"}
            assert first.json()["status"] == "running"
            assert second.json()["status"] == "pending"
            queued = client.get(f"/api/sft/jobs/{second.json()['job_id']}").json()
            assert queued["queue_position"] == 1
            assert queued["name"] == "second"
            assert queued["config"]["max_steps"] == 100_000
            assert queued["config"]["use_lora"] is True
            for job in (second.json(), first.json()):
                stopped = client.post(f"/api/sft/jobs/{job['job_id']}/stop")
                assert stopped.json() == {"message": f"Job {job['job_id']} stopped", "job_id": job["job_id"],
                                          "status": "stopped"}
    finally:
        manager.shutdown()


# --- the seed's calls against a live `python app.py` ---


def poll(http: httpx.Client, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    """GET the job until it has ended."""
    deadline = time.monotonic() + timeout
    while (record := http.get(f"/jobs/{job_id}").json())["status"] in ACTIVE:
        assert time.monotonic() < deadline, record
        time.sleep(0.3)
    return record


def test_seed_endpoints_against_a_live_server(sft_server: str) -> None:
    with httpx.Client(base_url=f"{sft_server}/api/sft", timeout=30) as http:
        started = http.post("/train", json={"config": {"max_steps": 20}})
        assert started.status_code == 200
        assert started.json()["status"] in ACTIVE
        job_id = started.json()["job_id"]
        record = poll(http, job_id)
        assert record["status"] == "completed", http.get(f"/jobs/{job_id}/log").json()["log"]
        assert record["progress"]["step"] == 20
        assert record["result"]["steps"] == 20
        assert record["error"] is None
        assert job_id in [job["job_id"] for job in http.get("/jobs").json()["jobs"]]
        points = [p for p in http.get(f"/jobs/{job_id}/metrics").json()["points"] if "loss" in p]
        assert [p["step"] for p in points] == list(range(1, 21))
        assert [p["step"] for p in http.get(f"/jobs/{job_id}/metrics", params={"since": 17}).json()["points"]
                if "loss" in p] == [18, 19, 20]
        error(http.post(f"/jobs/{job_id}/stop"), 400, "completed")

        long_id = http.post("/train", json={"config": LONG}).json()["job_id"]
        assert http.post(f"/jobs/{long_id}/stop").json()["message"] == f"Job {long_id} stopped"
        assert poll(http, long_id, timeout=30)["status"] == "stopped"

        saved = http.post("/configs", json={"name": "seed", "config": {"max_steps": 20, "lora_r": 8}}).json()
        assert saved["name"] == "seed"
        assert saved["config_id"] in [c["config_id"] for c in http.get("/configs").json()]
        assert http.get(f"/configs/{saved['config_id']}").json()["config"]["lora_r"] == 8
        error(http.post("/train", content=b"{", headers={"Content-Type": "application/json"}), 400, "malformed")


# --- README's examples against a live `python app.py` ---


def decode_all(text: str) -> list:
    """Every JSON value printed back to back (curl -s adds no newline)."""
    decoder, values, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)
    return values


def test_readme_curl_example_runs_against_a_live_server(sft_server: str) -> None:
    script = readme_block("bash").replace("http://localhost:7860", sft_server)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    started, record, metrics, log, listed, stopped, saved, configs, config = decode_all(out.stdout)
    assert set(started) == {"job_id", "status"}
    assert started["status"] in ACTIVE
    assert record["job_id"] == metrics["job_id"] == log["job_id"] == started["job_id"]
    assert "points" in metrics
    assert isinstance(log["log"], str)
    assert "jobs" in listed
    assert stopped.get("message") == f"Job {started['job_id']} stopped" or "already" in stopped["detail"]
    assert saved["name"] == "quick"
    assert saved["config_id"] in [c["config_id"] for c in configs]
    assert config["config"]["max_steps"] == 20
    assert config["config"]["lora_r"] == 8


def test_readme_gradio_client_example_runs_against_a_live_server(sft_server: str) -> None:
    script = readme_block("python").replace("http://localhost:7860", sft_server)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    status_line, last_point = out.stdout.splitlines()[-2:]
    assert status_line.startswith("completed {"), out.stdout
    assert "'loss'" in last_point
    assert "'step': 20" in last_point
