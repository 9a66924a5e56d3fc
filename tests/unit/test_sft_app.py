"""app.py, the Space settings and README: the app builds light, docs list every endpoint, README's examples run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from sft_ui.manager import JobManager
from sft_ui.web.app import build_app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENDPOINTS = {
    "/api/sft/train": {"post"}, "/api/sft/jobs": {"get"}, "/api/sft/jobs/{job_id}": {"get", "delete"},
    "/api/sft/jobs/{job_id}/stop": {"post"}, "/api/sft/jobs/{job_id}/metrics": {"get"},
    "/api/sft/jobs/{job_id}/log": {"get"}, "/api/sft/configs": {"get", "post"},
    "/api/sft/configs/{config_id}": {"get", "delete"}, "/api/sft/health": {"get"},
    "/api/sft/jobs/{job_id}/resume": {"post"}, "/api/sft/jobs/{job_id}/generate": {"post"},
    "/api/sft/jobs/{job_id}/download": {"get"}, "/api/sft/jobs/{job_id}/merge": {"post"},
    "/api/sft/jobs/{job_id}/push": {"post"},
}


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


def test_space_yaml_equals_readme_front_matter_and_pins_gradio() -> None:
    space = (ROOT / "Space.yaml").read_text(encoding="utf-8")
    assert README.startswith("---\n")
    front = README.split("---\n", 2)[1]
    assert front == space
    settings = yaml.safe_load(space)
    pin = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert settings["sdk"] == "gradio"
    assert settings["sdk_version"] == pin
    assert settings["app_file"] == "app.py"
    assert (ROOT / settings["app_file"]).exists()
    assert {"title", "emoji", "colorFrom", "colorTo", "python_version", "suggested_hardware"} <= set(settings)


def test_readme_quick_start_has_the_two_commands() -> None:
    section = README.split("## Quick start\n", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python app.py",
        "scripts/test",
    ]


def test_app_serves_docs_for_every_endpoint_the_ui_and_the_api(manager: JobManager) -> None:
    with TestClient(build_app(manager)) as client:
        spec = client.get("/openapi.json").json()
        assert {path: set(ops) for path, ops in spec["paths"].items()} == ENDPOINTS
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                assert "200" in op["responses"], (method, path)
                assert op["summary"], (method, path)
                if path != "/api/sft/health":
                    assert {"400", "401", "404", "500"} <= set(op["responses"]), (method, path)
        schemas = spec["components"]["schemas"]
        assert {"TrainRequest", "TrainResponse", "JobRecord", "SFTConfig", "SaveConfigRequest"} <= set(schemas)
        assert {"base_model", "max_steps", "lora_r"} <= set(schemas["SFTConfig"]["properties"])
        assert client.get("/docs").status_code == 200
        page = client.get("/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        saved = client.post("/api/sft/configs", json={"name": "via app", "config": {}}).json()
        assert manager.get_config(saved["config_id"])["name"] == "via app"  # the injected manager serves it
        assert client.get("/api/sft/nowhere").status_code == 404


def test_api_key_also_guards_the_gradio_ui_and_api(manager: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_UI_API_KEY", "k3y")
    with TestClient(build_app(manager)) as client:
        assert client.get("/gradio_api/info").status_code == 401
        assert client.get("/api/sft/jobs").status_code == 401
        assert client.get("/api/sft/health").status_code == 200
        assert client.post("/login", data={"username": "anyone", "password": "nope"}).status_code != 200
        assert client.post("/login", data={"username": "anyone", "password": "k3y"}).status_code == 200
        assert client.get("/gradio_api/info").status_code == 200


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
    assert started["status"] in ("running", "pending")
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
