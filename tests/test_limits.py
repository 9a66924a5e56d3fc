"""The limits that protect the machine: documented settings, enforced with 400 naming the field or setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sft_ui import config as cfg
from sft_ui.manager import JobManager, LimitError
from tests.helpers import error

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["SFT_UI_MAX_STEPS", "SFT_UI_MAX_BATCH_SIZE", "SFT_UI_MAX_SEQ_LENGTH", "SFT_UI_MAX_LORA_R",
            "SFT_UI_MAX_NAME_LENGTH", "SFT_UI_MAX_CONFIGS", "SFT_UI_MAX_QUEUED_JOBS", "SFT_UI_MAX_SWEEP_JOBS"]


@pytest.fixture
def api_manager(quiet: JobManager) -> JobManager:
    """`client` serves a manager whose jobs never start."""
    return quiet


BOUNDS = [("max_steps", cfg.MAX_STEPS), ("batch_size", cfg.MAX_BATCH_SIZE), ("max_seq_length", cfg.MAX_SEQ_LENGTH),
          ("lora_r", cfg.MAX_LORA_R), ("save_steps", cfg.MAX_STEPS)]


@pytest.mark.parametrize(("field", "limit"), BOUNDS, ids=[f for f, _ in BOUNDS])
def test_config_bounds_are_400_one_past_the_limit(client: TestClient, quiet: JobManager, field: str,
                                                  limit: int) -> None:
    extra = {"max_steps": cfg.MAX_STEPS} if field == "save_steps" else {}
    error(client.post("/api/sft/train", json={"config": {**extra, field: limit + 1}}), 400, field,
          "less than or equal")
    error(client.post("/api/sft/train", json={"config": {**extra, field: 10**30}}), 400, field)
    assert quiet.list_jobs() == []
    assert client.post("/api/sft/train", json={"config": {**extra, field: limit}}).status_code == 200


def test_names_are_length_limited(client: TestClient, quiet: JobManager) -> None:
    long = "n" * (cfg.MAX_NAME_LENGTH + 1)
    for field in ("job_name", "base_model", "dataset_name", "output_dir"):
        error(client.post("/api/sft/train", json={"config": {field: long}}), 400, field, "at most")
    error(client.post("/api/sft/configs", json={"name": long, "config": {}}), 400, "name", "at most")
    assert quiet.list_jobs() == []
    assert quiet.list_configs() == []
    assert client.post("/api/sft/configs", json={"name": long[:-1], "config": {}}).status_code == 200


def test_pending_jobs_are_limited(client: TestClient, quiet: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_UI_MAX_QUEUED_JOBS", "3")
    ids = [client.post("/api/sft/train", json={"config": {"max_steps": 5}}).json()["job_id"] for _ in range(3)]
    error(client.post("/api/sft/train", json={"config": {"max_steps": 5}}), 400, "too many pending jobs",
          "SFT_UI_MAX_QUEUED_JOBS=3")
    with pytest.raises(LimitError):
        quiet.create_job({})  # the Python API and Gradio endpoints share the rule
    assert len(quiet.list_jobs()) == 3
    assert client.post(f"/api/sft/jobs/{ids[0]}/stop").status_code == 200  # a slot frees
    assert client.post("/api/sft/train", json={"config": {"max_steps": 5}}).status_code == 200


def test_saved_configs_are_limited_but_replacing_one_always_works(client: TestClient, quiet: JobManager,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_UI_MAX_CONFIGS", "2")
    first = client.post("/api/sft/configs", json={"name": "a", "config": {}}).json()["config_id"]
    assert client.post("/api/sft/configs", json={"name": "b", "config": {}}).status_code == 200
    error(client.post("/api/sft/configs", json={"name": "c", "config": {}}), 400, "too many saved configs",
          "SFT_UI_MAX_CONFIGS=2")
    replaced = client.post("/api/sft/configs", json={"name": "a", "config": {"max_steps": 9}})
    assert replaced.status_code == 200
    assert replaced.json()["config_id"] == first
    assert client.delete(f"/api/sft/configs/{first}").status_code == 200
    assert client.post("/api/sft/configs", json={"name": "c", "config": {}}).status_code == 200
    assert sorted(c["name"] for c in quiet.list_configs()) == ["b", "c"]


def test_config_limits_are_settings_read_from_the_environment() -> None:
    script = ("from sft_ui.config import SFTConfig\n"
              "SFTConfig(max_steps=50, batch_size=4, lora_r=8)\n"
              "for field, value in (('max_steps', 51), ('batch_size', 5), ('lora_r', 9), ('job_name', 'x' * 11)):\n"
              "    try:\n"
              "        SFTConfig(**{field: value})\n"
              "    except ValueError:\n"
              "        continue\n"
              "    raise SystemExit(field)\n")
    env = {"SFT_UI_MAX_STEPS": "50", "SFT_UI_MAX_BATCH_SIZE": "4", "SFT_UI_MAX_LORA_R": "8",
           "SFT_UI_MAX_NAME_LENGTH": "10", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_limit_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in SETTINGS:
        assert f"`{name}`" in readme, name
