"""app.py, the Space settings and README: the app builds light, docs list every endpoint, README's examples run."""

from __future__ import annotations

import re
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
    "/api/sft/jobs/{job_id}/samples": {"get"},
    "/api/sft/jobs/{job_id}/log": {"get"}, "/api/sft/configs": {"get", "post"},
    "/api/sft/configs/{config_id}": {"get", "delete"}, "/api/sft/health": {"get"},
    "/api/sft/jobs/{job_id}/resume": {"post"}, "/api/sft/jobs/{job_id}/generate": {"post"},
    "/api/sft/jobs/{job_id}/download": {"get"}, "/api/sft/jobs/{job_id}/merge": {"post"},
    "/api/sft/jobs/{job_id}/push": {"post"},
    "/api/sft/datasets": {"get", "post"}, "/api/sft/datasets/{name}": {"delete"},
    "/api/sft/datasets/{name}/preview": {"get"},
    "/api/sft/models": {"get", "post"}, "/api/sft/models/{name}": {"get", "delete"},
    "/api/sft/resources": {"get"}, "/api/sft/playground/release": {"post"},
    "/api/sft/sweeps": {"get", "post"}, "/api/sft/sweeps/{sweep_id}": {"get"},
    "/api/sft/sweeps/{sweep_id}/stop": {"post"},
    "/api/sft/jobs/{job_id}/checkpoints": {"get"},
    "/api/sft/jobs/{job_id}/events": {"get"},
}


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
