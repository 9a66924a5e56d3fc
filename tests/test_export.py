"""Keep what was trained: the zip download, the merged model, and the push to the Hub (up to the upload)."""

from __future__ import annotations

import io
import os
import stat
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from sft_ui import artifacts
from sft_ui.builtin import alpaca_prompt, builtin_model_path, builtin_rows
from sft_ui.manager import JobManager
from sft_ui.playground import Playground
from tests.helpers import fake_trained_job, rest_client

Trained = tuple[JobManager, str]  # the conftest fixture: a manager and its trained job
TOKEN = "hf_test_token_never_stored_0123456789"


def greedy(model: Any, tokenizer: Any, prompts: list[str], tokens: int = 12) -> list[list[int]]:
    """Greedy continuations' token ids."""
    import torch

    outs = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        outs.append(out[0, ids["input_ids"].shape[1]:].tolist())
    return outs


def prompts(n: int = 6) -> list[str]:
    """Held-out built-in tasks in the training template."""
    return [alpaca_prompt(r["instruction"], r["input"]) for r in builtin_rows("test")[:n]]


def test_download_zips_the_adapter_tokenizer_config_and_metrics(trained_job: Trained, tmp_path: Path) -> None:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    manager, job_id = trained_job
    client = rest_client(manager)
    answer = client.get(f"/api/sft/jobs/{job_id}/download")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert f'filename="sft-ui-{job_id}.zip"' in answer.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    names = set(archive.namelist())
    assert {"config.json", "metrics.jsonl", "README.md", "model/adapter_config.json", "model/adapter_model.safetensors",
            "model/tokenizer.json", "model/tokenizer_config.json"} <= names
    job_dir = Path(manager.get_job_status(job_id)["job_dir"])
    assert archive.read("metrics.jsonl") == (job_dir / "metrics.jsonl").read_bytes()
    assert archive.read("config.json") == (job_dir / "config.json").read_bytes()

    archive.extractall(tmp_path)
    model = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    row = builtin_rows("test")[0]
    [ids] = greedy(model, tokenizer, [alpaca_prompt(row["instruction"], row["input"])], tokens=8)
    played = Playground(manager).generate(job_id, row["instruction"], max_new_tokens=8, input=row["input"])
    assert tokenizer.decode(ids, skip_special_tokens=True) == played["tuned"]  # the same model as the playground's

    assert client.get("/api/sft/jobs/nope0000/download").status_code == 404
    never_ran = manager.create_job({"max_steps": 5})
    manager.stop_job(never_ran)
    answer = client.get(f"/api/sft/jobs/{never_ran}/download")
    assert answer.status_code == 400
    assert "has no saved model" in answer.json()["detail"]


def test_merge_saves_a_whole_model_that_generates_like_adapter_plus_base(trained_job: Trained,
                                                                         builtin_cache: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manager, job_id = trained_job
    client = rest_client(manager)
    answer = client.post(f"/api/sft/jobs/{job_id}/merge")
    assert answer.status_code == 200, answer.text
    merged_dir = Path(answer.json()["merged_dir"])
    assert merged_dir == Path(manager.get_job_status(job_id)["job_dir"]) / "merged"
    assert not (merged_dir / "adapter_config.json").exists()
    assert (merged_dir / "tokenizer.json").exists()

    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    base = AutoModelForCausalLM.from_pretrained(builtin_model_path(builtin_cache))
    adapted = PeftModel.from_pretrained(base, str(merged_dir.parent / "model"))
    assert greedy(merged, tokenizer, prompts()) == greedy(adapted, tokenizer, prompts())

    full = fake_trained_job(manager, {"use_lora": False}, builtin_model_path(builtin_cache))
    answer = client.post(f"/api/sft/jobs/{full}/merge")
    assert answer.status_code == 400
    assert "nothing to merge" in answer.json()["detail"]


def test_push_needs_hf_token_and_uploads_the_model_without_storing_the_token(
        trained_job: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    manager, job_id = trained_job
    client = rest_client(manager)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    answer = client.post(f"/api/sft/jobs/{job_id}/push", json={"repo_id": "me/tiny-sft"})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("HF_TOKEN is not set")

    calls: list[tuple[str, Any, dict]] = []

    def create_repo(self: Any, repo_id: str, **kwargs: Any) -> str:
        calls.append(("create_repo", repo_id, {**kwargs, "token": self.token}))
        return f"https://huggingface.co/{repo_id}"

    def create_commit(self: Any, repo_id: str, operations: list, **kwargs: Any) -> None:
        files = {op.path_in_repo: op.path_or_fileobj for op in operations}
        calls.append(("create_commit", repo_id, {**kwargs, "files": files, "token": self.token}))

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", create_commit)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    answer = client.post(f"/api/sft/jobs/{job_id}/push", json={"repo_id": "me/tiny-sft"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["url"] == "https://huggingface.co/me/tiny-sft"
    assert answer.json()["private"] is True
    (name, repo, repo_kwargs), (name2, repo2, commit) = calls
    assert (name, repo, name2, repo2) == ("create_repo", "me/tiny-sft", "create_commit", "me/tiny-sft")
    assert repo_kwargs["private"] is True
    assert repo_kwargs["token"] == TOKEN == commit["token"]
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md",
            "sft_ui_config.json"} <= set(commit["files"])
    assert b"AutoPeftModelForCausalLM" in commit["files"]["README.md"]

    calls.clear()
    answer = client.post(f"/api/sft/jobs/{job_id}/push", json={"repo_id": "me/public", "private": False})
    assert answer.status_code == 200
    assert calls[0][2]["private"] is False

    bad = client.post(f"/api/sft/jobs/{job_id}/push", json={"repo_id": "not a repo"})
    assert bad.status_code == 400
    assert "repo_id" in bad.json()["detail"]

    def offline(self: Any, repo_id: str, **kwargs: Any) -> str:
        raise ConnectionError("could not reach huggingface.co")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", offline)
    failed = client.post(f"/api/sft/jobs/{job_id}/push", json={"repo_id": "me/tiny-sft"})
    assert failed.status_code == 400
    assert failed.json()["detail"] == "push to the Hub failed: could not reach huggingface.co"

    # The token went to the Hub client only: no file of the server's holds it.
    for path in manager.store_root().rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert TOKEN.encode() not in path.read_bytes(), path


# --- where download zips are kept, and for how long ---


@pytest.fixture
def exported(quiet: JobManager, tmp_path: Path) -> Path:
    """A download zip of a fake completed job (no training)."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    job_id = fake_trained_job(quiet, {}, tmp_path / "model")
    return artifacts.zip_job(quiet, job_id)


def old_zip(manager: JobManager, age: float) -> Path:
    """A zip in the exports folder last written `age` seconds ago."""
    folder = manager.store_root() / ".sft_ui" / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sft-ui-aged{int(age)}.zip"
    path.write_bytes(b"PK")
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_a_download_zip_is_built_in_the_data_dirs_private_exports_folder(exported: Path, quiet: JobManager) -> None:
    assert exported.parent == quiet.store_root() / ".sft_ui" / "exports"


def test_the_exports_folder_is_its_owners_only(exported: Path) -> None:
    assert stat.S_IMODE(exported.parent.stat().st_mode) == 0o700


def test_a_download_zip_is_its_owners_only(exported: Path) -> None:
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600


def test_a_new_export_removes_zips_older_than_an_hour(quiet: JobManager, tmp_path: Path) -> None:
    stale, recent = old_zip(quiet, 2 * 3600), old_zip(quiet, 600)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    artifacts.zip_job(quiet, fake_trained_job(quiet, {}, tmp_path / "model"))
    assert not stale.exists()
    assert recent.exists()


def test_the_server_removes_zips_older_than_an_hour_at_start(quiet: JobManager) -> None:
    stale = old_zip(quiet, 2 * 3600)
    with rest_client(quiet):  # entering runs the app's start-up
        pass
    assert not stale.exists()
