"""The model library over REST: folders copied in are listed, GGUF imports are checked before a worker starts,
failures are recorded, and a model a job uses is not deleted."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sft_ui.builtin import resolve_builtin_model
from sft_ui.config import BUILTIN_MODEL
from sft_ui.manager import JobManager
from tests.helpers import write_gguf

LLAMA = {"token_embd.weight": (64, 100), "output_norm.weight": (64,)}


@pytest.fixture
def models(manager: JobManager) -> Path:
    """`<data dir>/models`, made."""
    folder = manager.store_root() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def copied(models: Path, manager: JobManager) -> Path:
    """The built-in model's folder copied by hand into the library as `tiny`."""
    return Path(shutil.copytree(resolve_builtin_model(BUILTIN_MODEL, manager.cache_dir), models / "tiny"))


def listed(client: TestClient) -> dict[str, dict]:
    """GET /models by name."""
    return {entry["name"]: entry for entry in client.get("/api/sft/models").json()["models"]}


def test_a_folder_copied_in_by_hand_is_listed_as_a_base_model(client: TestClient, copied: Path) -> None:
    entry = listed(client)["tiny"]
    assert entry["path"] == "models/tiny"
    assert entry["status"] == "ready"
    assert entry["source"] == "folder"


def test_a_listed_folder_shows_its_architecture_parameters_size_and_chat_template(client: TestClient,
                                                                                 copied: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(copied / "model.safetensors"), "np") as weights:
        expected = sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())  # noqa: SIM118
    entry = listed(client)["tiny"]
    assert entry["architecture"] == "GPT2LMHeadModel"
    assert entry["parameters"] == expected
    assert entry["size_bytes"] == sum(p.stat().st_size for p in copied.iterdir())
    assert entry["has_chat_template"] is True


def test_a_folder_without_config_is_not_a_model(client: TestClient, models: Path) -> None:
    (models / "notes").mkdir()
    (models / "notes" / "readme.txt").write_text("not a model")
    assert "notes" not in listed(client)


def test_a_listed_model_trains_by_its_path(client: TestClient, copied: Path) -> None:
    answer = client.post("/api/sft/configs", json={"name": "on tiny", "config": {"base_model": "models/tiny"}})
    assert answer.status_code == 200, answer.text


def test_a_missing_gguf_is_400_saying_where_the_data_root_is(client: TestClient, manager: JobManager) -> None:
    answer = client.post("/api/sft/models", json={"gguf": "nowhere.gguf"})
    assert answer.status_code == 400
    assert answer.json()["detail"] == f"gguf: file not found under the data root ({manager.store_root()}): nowhere.gguf"


def test_a_gguf_outside_the_data_root_is_400(client: TestClient) -> None:
    answer = client.post("/api/sft/models", json={"gguf": "../../etc/model.gguf"})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("gguf: must be a path relative to the data root")


def test_an_architecture_transformers_cannot_read_is_400_naming_it(client: TestClient, manager: JobManager) -> None:
    write_gguf(manager.store_root() / "rwkv.gguf", "rwkv6", LLAMA)
    answer = client.post("/api/sft/models", json={"gguf": "rwkv.gguf"})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("gguf: rwkv.gguf holds a 'rwkv6' model, which transformers cannot")
    assert "llama" in answer.json()["detail"]
    assert "rwkv" not in listed(client)


def test_a_bad_model_name_is_400_naming_the_field(client: TestClient, manager: JobManager) -> None:
    write_gguf(manager.store_root() / "m.gguf", "llama", LLAMA)
    answer = client.post("/api/sft/models", json={"gguf": "m.gguf", "name": "../escape"})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("name: '../escape' is not a model name")


def test_a_name_already_taken_is_400(client: TestClient, manager: JobManager, copied: Path) -> None:
    write_gguf(manager.store_root() / "m.gguf", "llama", LLAMA)
    answer = client.post("/api/sft/models", json={"gguf": "m.gguf", "name": "tiny"})
    assert answer.status_code == 400
    assert "a model named tiny already exists" in answer.json()["detail"]


def test_an_uploaded_file_that_is_not_gguf_is_400_and_leaves_nothing(client: TestClient, models: Path) -> None:
    answer = client.post("/api/sft/models", files={"file": ("weights.gguf", b"not a gguf at all", "application/x")})
    assert answer.status_code == 400
    assert "is not a GGUF file" in answer.json()["detail"]
    assert list((models / ".uploads").iterdir()) == []


def test_an_upload_of_another_kind_of_file_is_400(client: TestClient) -> None:
    answer = client.post("/api/sft/models", files={"file": ("weights.bin", b"\0" * 10, "application/x")})
    assert answer.status_code == 400
    assert answer.json()["detail"] == "file: 'weights.bin' is not a .gguf file"


def test_a_model_a_pending_job_uses_is_not_deleted(client: TestClient, manager: JobManager, copied: Path) -> None:
    job_id = manager.create_job({"base_model": "models/tiny"})
    answer = client.delete("/api/sft/models/tiny")
    assert answer.status_code == 400
    assert answer.json()["detail"] == (f"name: model tiny is used by job {job_id}, which is pending or running; "
                                       "stop it first")
    assert copied.is_dir()


def test_a_model_no_job_uses_is_deleted(client: TestClient, copied: Path) -> None:
    assert client.delete("/api/sft/models/tiny").status_code == 200
    assert not copied.exists()
    assert "tiny" not in listed(client)


def test_an_unknown_model_is_404(client: TestClient) -> None:
    assert client.get("/api/sft/models/nothing").status_code == 404
    assert client.delete("/api/sft/models/nothing").status_code == 404


def test_the_architectures_accepted_are_those_transformers_reads_from_gguf() -> None:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    from sft_ui.gguf_file import ARCHITECTURES

    readable = set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer", "t5", "umt5"}  # t5: encoder-decoder
    assert set(ARCHITECTURES.values()) == readable


@pytest.mark.slow
def test_an_import_the_worker_cannot_convert_fails_with_its_reason_and_leaves_no_folder(
        client: TestClient, manager: JobManager, models: Path) -> None:
    write_gguf(manager.store_root() / "hollow.gguf", "llama", LLAMA)  # a header with no tensor data
    started = client.post("/api/sft/models", json={"gguf": "hollow.gguf"})
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "importing"
    deadline = time.monotonic() + 120
    while (entry := client.get("/api/sft/models/hollow").json())["status"] == "importing":
        assert time.monotonic() < deadline, entry
        time.sleep(0.5)
    assert entry["status"] == "failed"
    assert entry["error"].startswith(f"while {entry['phase']}: ")
    assert not (models / "hollow").exists()
    assert [p.name for p in models.iterdir() if p.name.startswith(".hollow")] == []
    assert client.delete("/api/sft/models/hollow").status_code == 200
    assert "hollow" not in listed(client)


def test_a_record_left_importing_by_a_stopped_server_is_failed_at_start(tmp_path: Path) -> None:
    imports = tmp_path / "data" / "models" / ".imports"
    imports.mkdir(parents=True)
    (imports / "half.json").write_text(json.dumps({"name": "half", "status": "running", "gguf": "half.gguf"}))
    (tmp_path / "data" / "models" / ".half.importing-123").mkdir()
    manager = JobManager(data_dir=tmp_path / "data").start()
    try:
        entry = manager.models.get("half")
    finally:
        manager.shutdown()
    assert entry["status"] == "failed"
    assert entry["error"] == "the server stopped during the import; start it again"
    assert not (tmp_path / "data" / "models" / ".half.importing-123").exists()


def test_one_import_at_a_time_and_a_refused_upload_is_not_kept(manager: JobManager, models: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    write_gguf(models / "sent.gguf", "llama", LLAMA)
    uploaded = models / ".uploads" / "upload-1.gguf"
    uploaded.parent.mkdir()
    uploaded.write_bytes((models / "sent.gguf").read_bytes())
    monkeypatch.setattr(manager.models, "running", lambda: ["other"])
    with pytest.raises(ValueError, match="model other is being imported; one import runs at a time"):
        manager.models.start("models/.uploads/upload-1.gguf", "mine", uploaded=(uploaded, "sent.gguf"))
    assert not uploaded.exists()
    assert "mine" not in {entry["name"] for entry in manager.models.list()}
