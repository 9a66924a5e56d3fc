"""Confinement to the data root, no remote code, the API key on and off, and no stored secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sft_ui.manager import JobManager
from sft_ui.web.app import build_app
from tests.helpers import error

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def api_manager(quiet: JobManager) -> JobManager:
    """`client` serves a manager whose jobs never start."""
    return quiet


@pytest.fixture
def outside(tmp_path: Path, quiet: JobManager) -> Path:
    """A folder outside the data root holding a data file and a model folder, and links to it from inside."""
    out = tmp_path / "outside"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
    (out / "data.jsonl").write_text('{"text": "secret"}\n')
    root = quiet.store_root()
    (root / "link").symlink_to(out, target_is_directory=True)
    (root / "model-link").symlink_to(out / "model", target_is_directory=True)
    (root / "data-link.jsonl").symlink_to(out / "data.jsonl")
    return out


ESCAPES = [
    ("output_dir", "/tmp/x"), ("output_dir", "../x"), ("output_dir", "a/../../x"), ("output_dir", "link"),
    ("output_dir", "link/deeper"), ("output_dir", "C:\\x"), ("output_dir", "a\x00b"),
    ("output_dir", "sft_ui.json"), ("output_dir", "sft_ui.json/x"), ("output_dir", "é" * 150),
    ("dataset_name", "/etc/passwd.json"), ("dataset_name", "../x.jsonl"), ("dataset_name", "link/data.jsonl"),
    ("dataset_name", "data-link.jsonl"), ("dataset_name", "/etc"), ("dataset_name", "../../secrets"),
    ("dataset_name", "a\x00.json"), ("base_model", "/etc"), ("base_model", "../models/x"), ("base_model", "link/model"),
    ("base_model", "model-link"), ("base_model", "a b c"), ("base_model", "x\nimport os"),
]


@pytest.mark.parametrize(("field", "value"), ESCAPES, ids=[f"{f}={v[:20]!r}" for f, v in ESCAPES])
def test_paths_leading_out_of_the_data_root_are_400_at_create(client: TestClient, quiet: JobManager,
                                                             outside: Path, field: str, value: str) -> None:
    error(client.post("/api/sft/train", json={"config": {field: value}}), 400, field)
    assert quiet.list_jobs() == []
    assert sorted(p.name for p in outside.iterdir()) == ["data.jsonl", "model"]  # nothing written out there


def test_paths_inside_the_data_root_are_accepted(client: TestClient, quiet: JobManager, outside: Path) -> None:
    root = quiet.store_root()
    (root / "files").mkdir()
    (root / "files" / "mine.jsonl").write_text('{"text": "a"}\n')
    (root / "models" / "mine").mkdir(parents=True)
    for config in ({"output_dir": "runs/a"}, {"output_dir": "."}, {"dataset_name": "files/mine.jsonl"},
                   {"dataset_name": "not-yet-there.jsonl"}, {"base_model": "models/mine"},
                   {"base_model": "org/model"}, {"dataset_name": "tatsu-lab/alpaca"}, {"base_model": "builtin:x"}):
        response = client.post("/api/sft/train", json={"config": config})
        assert response.status_code == 200, (config, response.text)
        job_dir = Path(quiet.get_job_status(response.json()["job_id"])["job_dir"])
        assert job_dir.resolve().is_relative_to(root), job_dir


@pytest.mark.parametrize("key", ["trust_remote_code", "hf_token", "token", "use_auth_token"])
def test_remote_code_and_tokens_are_unknown_keys(client: TestClient, quiet: JobManager, key: str) -> None:
    error(client.post("/api/sft/train", json={"config": {key: True}}), 400, key, "Extra inputs")
    error(client.post("/api/sft/configs", json={"name": "n", "config": {key: "x"}}), 400, key)
    assert quiet.list_jobs() == []
    assert quiet.list_configs() == []


def test_no_code_path_turns_remote_code_on() -> None:
    """Every trust_remote_code in the package is the literal False (transformers' default is off too)."""
    seen = 0
    for source in (ROOT / "sft_ui").rglob("*.py"):
        for value in re.findall(r"trust_remote_code\s*=\s*([\w.\[\]\"']+)", source.read_text()):
            assert value == "False", f"{source.name}: trust_remote_code={value}"
            seen += 1
    assert seen >= 2  # the model and tokenizer loads (training, data, playground, artifacts)


# --- the API key ---


def rest_operations(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every REST endpoint, with ids filled in later."""
    return [(method.upper(), path) for path, ops in app.openapi()["paths"].items() if path.startswith("/api/sft")
            for method in ops]


def test_api_key_on_every_rest_and_gradio_endpoint_is_401_and_changes_nothing(
        quiet: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = quiet.create_job({"max_steps": 5})
    config_id = quiet.save_config("kept", {"max_steps": 5})
    before = (quiet.list_jobs(), quiet.list_configs())
    monkeypatch.setenv("SFT_UI_API_KEY", "k3y")
    app = build_app(quiet)
    bodies = {"/api/sft/train": {"config": {"max_steps": 3}}, "/api/sft/configs": {"name": "n", "config": {}}}
    with TestClient(app) as client:
        ops = rest_operations(app)
        assert len(ops) >= 12
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic azN5"}):
            for method, path in ops:
                url = path.replace("{job_id}", job_id).replace("{config_id}", config_id)
                response = client.request(method, url, json=bodies.get(path, {}), headers=headers)
                if path == "/api/sft/health":
                    assert response.status_code == 200
                    continue
                assert response.status_code == 401, (method, path, response.text)
                assert response.json()["detail"].startswith("missing or wrong API key")
            for name in ("train", "list_jobs", "get_job", "stop_job", "save_config", "get_config"):
                response = client.post(f"/gradio_api/call/{name}", json={"data": [{}]}, headers=headers)
                assert response.status_code == 401, (name, response.text)
            assert client.post("/gradio_api/queue/join", json={"data": [{}], "fn_index": 0,
                                                                "session_hash": "s"}).status_code == 401
        assert (quiet.list_jobs(), quiet.list_configs()) == before  # nothing changed

        ok = client.get("/api/sft/jobs", headers={"Authorization": "Bearer k3y"})
        assert ok.status_code == 200
        assert [j["job_id"] for j in ok.json()["jobs"]] == [job_id]
        assert client.post("/login", data={"username": "anyone", "password": "k3y"}).status_code == 200
        assert client.post("/gradio_api/call/list_configs", json={"data": []}).status_code == 200


def test_without_a_key_everything_is_open(quiet: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SFT_UI_API_KEY", raising=False)
    with TestClient(build_app(quiet)) as client:
        assert client.get("/api/sft/jobs").status_code == 200
        assert client.post("/api/sft/train", json={"config": {"max_steps": 3}}).status_code == 200
        assert client.get("/gradio_api/info").status_code == 200
    assert "open to anyone who can reach" in (ROOT / "README.md").read_text()


def test_workers_do_not_get_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from sft_ui import supervisor

    monkeypatch.setenv("SFT_UI_API_KEY", "k-secret")
    assert "SFT_UI_API_KEY" not in supervisor.worker_env()
