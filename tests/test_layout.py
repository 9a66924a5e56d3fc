"""The architecture holds: the server process never loads worker code or a training library, and the manager's
life cycle is explicit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sft_ui.manager import JobManager

ROOT = Path(__file__).resolve().parents[1]

SERVE = """
import sys
from fastapi.testclient import TestClient
import app
with TestClient(app.build_app()) as client:  # the lifespan runs: the manager starts, recovers, answers
    assert client.get("/api/sft/health").status_code == 200
    assert client.get("/api/sft/jobs").status_code == 200
    assert client.get("/").status_code == 200
loaded = [m for m in sys.modules if m.split(".")[0] in {"torch", "transformers", "trl", "peft", "datasets",
          "accelerate"} or m.startswith("sft_ui.worker.") or m == "sft_ui.worker.__main__"]
print(sorted(loaded))
"""


def test_a_started_server_loads_no_worker_module_and_no_training_library(tmp_path: Path) -> None:
    env = {"SFT_UI_DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
           "SFT_UI_SPARE_WORKER": "0"}
    out = subprocess.run([sys.executable, "-c", SERVE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_manager_that_was_not_started_says_so(tmp_path: Path) -> None:
    manager = JobManager(data_dir=tmp_path / "data")
    with pytest.raises(RuntimeError, match=r"start\(\)"):
        manager.list_jobs()
    assert not (tmp_path / "data").exists()


def test_start_opens_the_database_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sft_ui import manager as module

    opened = []
    real = module.Store
    monkeypatch.setattr(module, "Store", lambda path: opened.append(path) or real(path))
    manager = JobManager(data_dir=tmp_path / "data")
    assert manager.start() is manager
    assert manager.start() is manager
    assert manager.list_jobs() == []
    assert opened == [manager.database_path]


def test_a_start_that_fails_can_be_tried_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager = JobManager(data_dir=tmp_path / "data")
    monkeypatch.setattr(manager, "_recover", lambda: (_ for _ in ()).throw(OSError("disk went away")))
    with pytest.raises(OSError):
        manager.start()
    monkeypatch.undo()
    assert manager.start().list_jobs() == []


def test_the_seeds_manager_starts_at_its_first_use(tmp_path: Path) -> None:
    code = ("from sft_ui import SFTConfig, sft_job_manager; "
            "job = sft_job_manager.create_job(SFTConfig(max_steps=1)); "
            "print(sft_job_manager.get_job_status(job)['status'])")
    env = {"SFT_UI_DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
           "SFT_UI_SPARE_WORKER": "0"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "pending"
