"""Checkpoints you can pick, with real training on the built-in model: listed with their losses, kept as
keep_checkpoints says (the best always), and used by resume, the playground, download and merge."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sft_ui import jobdir
from sft_ui.manager import JobManager
from sft_ui.status import ACTIVE, ENDED
from tests.helpers import error, rest_client, wait_for

JOBS: dict[str, dict[str, Any]] = {
    "kept2": {"max_steps": 12, "save_steps": 3, "logging_steps": 1, "keep_checkpoints": 2, "learning_rate": 0.01},
    # Seeded on the CPU, both peak before their last step: the best is not the newest checkpoint.
    "best1": {"max_steps": 12, "learning_rate": 0.3, "eval_split": 0.2, "eval_steps": 3, "keep_best_model": True,
              "eval_max_rows": 0, "keep_checkpoints": 1, "metric_for_best": "eval_mean_token_accuracy"},
    "best2": {"max_steps": 12, "learning_rate": 1.0, "eval_split": 0.2, "eval_steps": 2, "keep_best_model": True,
              "eval_max_rows": 0, "keep_checkpoints": 2},
}
Finished = tuple[JobManager, dict[str, dict[str, Any]]]
PROMPT = "Upper-case the word.\ngoat"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    """Each job of JOBS trained to its end, two at a time, on one manager."""
    manager = JobManager(data_dir=tmp_path_factory.mktemp("checkpoints") / "data", max_concurrent_jobs=2).start()
    ids = {name: manager.create_job(config) for name, config in JOBS.items()}
    for job_id in ids.values():
        manager.start_job(job_id)
    records = {name: wait_for(manager, job_id, ENDED, timeout=600) for name, job_id in ids.items()}
    for name, record in records.items():
        assert record["status"] == "completed", (name, record["error"], manager.get_log(record["job_id"])[-3000:])
    yield manager, records
    manager.shutdown()


def listed(manager: JobManager, job_id: str) -> list[dict[str, Any]]:
    """GET /jobs/{id}/checkpoints's list."""
    response = rest_client(manager).get(f"/api/sft/jobs/{job_id}/checkpoints")
    assert response.status_code == 200, response.text
    assert response.json()["job_id"] == job_id
    return response.json()["checkpoints"]


def test_checkpoints_are_listed_with_the_losses_logged_at_their_steps(finished: Finished) -> None:
    manager, records = finished
    job_id = records["kept2"]["job_id"]
    found = listed(manager, job_id)
    assert [c["name"] for c in found] == ["checkpoint-9", "checkpoint-12"]  # keep_checkpoints=2 of 4
    loss = {p["step"]: p["loss"] for p in manager.get_metrics(job_id) if "loss" in p}
    job_dir = Path(records["kept2"]["job_dir"])
    for checkpoint in found:
        assert checkpoint["train_loss"] == loss[checkpoint["step"]]
        assert checkpoint["eval_loss"] is None and checkpoint["best"] is False
        folder = job_dir / jobdir.CHECKPOINTS / checkpoint["name"]
        assert checkpoint["size_bytes"] == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert (manager.store_root() / checkpoint["path"]).resolve() == folder.resolve()


@pytest.mark.parametrize(("name", "metric"), [("best1", "eval_mean_token_accuracy"), ("best2", "eval_loss")])
def test_the_best_checkpoint_is_never_deleted_and_is_marked(finished: Finished, name: str, metric: str) -> None:
    manager, records = finished
    record = records[name]
    found = listed(manager, record["job_id"])
    best_step = record["result"]["best"]["step"]
    evals = {p["step"]: p for p in manager.get_metrics(record["job_id"]) if "eval_loss" in p}
    assert best_step < 12, evals  # the case under test: newer checkpoints came after the best
    assert [c["step"] for c in found if c["best"]] == [best_step]
    # keep_checkpoints counts the best: transformers keeps it beside the newest, and keep_checkpoints=1 ends with it
    expected = [best_step] if JOBS[name]["keep_checkpoints"] == 1 else [best_step, 12]
    assert [c["step"] for c in found] == expected
    for checkpoint in found:
        assert checkpoint["eval_loss"] == evals[checkpoint["step"]]["eval_loss"]
    scores = {step: point[metric] for step, point in evals.items()}
    assert scores[best_step] == (max if metric != "eval_loss" else min)(scores.values())


def test_bad_checkpoint_names_are_refused_naming_checkpoint(finished: Finished) -> None:
    manager, records = finished
    job_id = records["kept2"]["job_id"]
    client = rest_client(manager)
    error(client.get(f"/api/sft/jobs/{job_id}/download", params={"checkpoint": "../x"}), 400, "checkpoint")
    error(client.get(f"/api/sft/jobs/{job_id}/download", params={"checkpoint": "checkpoint-999"}), 404,
          "checkpoint", "checkpoint-9, checkpoint-12")
    error(client.post(f"/api/sft/jobs/{job_id}/merge", json={"checkpoint": "../model"}), 400, "checkpoint")
    error(client.post(f"/api/sft/jobs/{job_id}/generate", json={"prompt": "hi", "checkpoint": "checkpoint-3"}), 404,
          "checkpoint")
    error(client.get("/api/sft/jobs/nope/checkpoints"), 404)


def test_a_checkpoint_download_holds_its_adapter_without_optimizer_state(finished: Finished) -> None:
    manager, records = finished
    job_id = records["kept2"]["job_id"]
    folder = Path(records["kept2"]["job_dir"]) / jobdir.CHECKPOINTS / "checkpoint-9"
    response = rest_client(manager).get(f"/api/sft/jobs/{job_id}/download", params={"checkpoint": "checkpoint-9"})
    assert response.status_code == 200, response.text
    assert f"sft-ui-{job_id}-checkpoint-9.zip" in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.read("model/adapter_model.safetensors") == (folder / "adapter_model.safetensors").read_bytes()
    assert "model/adapter_config.json" in archive.namelist()
    assert not any(name.endswith(("optimizer.pt", "scheduler.pt")) for name in archive.namelist())
    final = zipfile.ZipFile(io.BytesIO(rest_client(manager).get(f"/api/sft/jobs/{job_id}/download").content))
    assert final.read("model/adapter_model.safetensors") != archive.read("model/adapter_model.safetensors")


def test_playground_answers_from_a_checkpoint_as_that_folder_loaded_with_peft(finished: Finished) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from sft_ui import data
    from sft_ui.data.templates import format_prompt

    manager, records = finished
    record = records["kept2"]
    client = rest_client(manager)
    body = {"prompt": PROMPT, "max_new_tokens": 12}
    picked = client.post(f"/api/sft/jobs/{record['job_id']}/generate", json={**body, "checkpoint": "checkpoint-9"})
    assert picked.status_code == 200, picked.text
    assert picked.json()["checkpoint"] == "checkpoint-9"
    folder = str(Path(record["job_dir"]) / jobdir.CHECKPOINTS / "checkpoint-9")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    cuda = torch.cuda.is_available()  # the playground's device and dtype
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    base = data.load_model(record["config"]["base_model"], manager.store_root(), manager.cache_dir, dtype=dtype)
    model = PeftModel.from_pretrained(base, folder).to("cuda" if cuda else "cpu").eval()
    _, ids = format_prompt(picked.json()["prompt_style"], tokenizer, PROMPT, "")
    with torch.inference_mode():
        out = model.generate(input_ids=torch.tensor([ids], device=model.device), max_new_tokens=12, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    assert picked.json()["tuned"] == tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
    final = client.post(f"/api/sft/jobs/{record['job_id']}/generate", json=body).json()
    assert final["checkpoint"] is None and final["base"] == picked.json()["base"]


def test_merge_of_a_checkpoint_goes_beside_the_final_merge(finished: Finished) -> None:
    manager, records = finished
    record = records["kept2"]
    response = rest_client(manager).post(f"/api/sft/jobs/{record['job_id']}/merge", json={"checkpoint": "checkpoint-9"})
    assert response.status_code == 200, response.text
    assert response.json()["merged_dir"] == str(Path(record["job_dir"]) / "merged-checkpoint-9")
    assert (Path(response.json()["merged_dir"]) / "config.json").is_file()
    assert not (Path(record["job_dir"]) / "merged").exists()


def test_resume_from_an_older_checkpoint_continues_from_its_step(manager: JobManager) -> None:
    job_id = manager.create_job({"max_steps": 60, "save_steps": 5, "logging_steps": 1, "keep_checkpoints": 20})
    manager.start_job(job_id)
    deadline = time.monotonic() + 180
    while manager.get_job_status(job_id)["progress"]["step"] < 16:
        assert manager.get_job_status(job_id)["status"] in ACTIVE, manager.get_log(job_id)
        assert time.monotonic() < deadline, manager.get_log(job_id)
        time.sleep(0.05)
    stopped = manager.stop_job(job_id)
    assert stopped["status"] == "stopped", manager.get_log(job_id)
    assert len(listed(manager, job_id)) == stopped["progress"]["step"] // 5  # each kept (keep_checkpoints=20)
    names = [c["name"] for c in listed(manager, job_id)]
    assert names[:3] == ["checkpoint-5", "checkpoint-10", "checkpoint-15"]
    client = rest_client(manager)
    error(client.post(f"/api/sft/jobs/{job_id}/resume", json={"checkpoint": "checkpoint-7"}), 404, "checkpoint")
    assert manager.get_job_status(job_id)["status"] == "stopped"  # a refused resume changed nothing
    response = client.post(f"/api/sft/jobs/{job_id}/resume", json={"checkpoint": "checkpoint-5"})
    assert response.status_code == 200, response.text
    assert response.json()["step"] == 5
    record = manager.get_job_status(job_id)
    assert record["resumed"]["from_step"] == 5 and record["resumed"]["checkpoint"] == "checkpoint-5"
    done = wait_for(manager, job_id, ENDED, timeout=300)
    assert done["status"] == "completed", done["error"]
    assert [p["step"] for p in manager.get_metrics(job_id) if "loss" in p] == list(range(1, 61))  # no repeats
    assert "resuming from checkpoint-5" in manager.get_log(job_id)
    assert [c["step"] for c in listed(manager, job_id)] == list(range(5, 61, 5))  # saved again after step 5


def test_gradio_lists_checkpoints_and_answers_from_one(finished: Finished) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from tests.servers import live_server

    manager, records = finished
    job_id = records["kept2"]["job_id"]
    rest = rest_client(manager)
    with live_server(manager) as url:
        gradio = Client(url, verbose=False)
        try:
            answer = gradio.predict(job_id, api_name="/list_checkpoints")
            expected = [{k: v for k, v in c.items() if k != "path"} for c in listed(manager, job_id)]
            assert answer == {"job_id": job_id, "checkpoints": expected}  # no "path": gradio_client would fetch it
            tuned = gradio.predict(job_id, PROMPT, 12, 0.0, 1.0, "", "checkpoint-9", api_name="/generate")["tuned"]
            body = {"prompt": PROMPT, "max_new_tokens": 12, "checkpoint": "checkpoint-9"}
            assert tuned == rest.post(f"/api/sft/jobs/{job_id}/generate", json=body).json()["tuned"]
            with pytest.raises(AppError, match="checkpoint: this job has no checkpoint-3"):
                gradio.predict(job_id, "hi", api_name="/generate", checkpoint="checkpoint-3")
            with pytest.raises(AppError, match="only a stopped or failed job can be resumed"):  # (job_id, checkpoint)
                gradio.predict(job_id, "checkpoint-9", api_name="/resume_job")
        finally:
            gradio.close()


def test_push_of_a_checkpoint_uploads_its_adapter_without_optimizer_state(
        finished: Finished, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    manager, records = finished
    record = records["kept2"]
    commits: list[dict[str, Any]] = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **_: f"https://hf.co/{repo_id}")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", lambda self, repo_id, operations, **_: commits.append(
        {op.path_in_repo: op.path_or_fileobj for op in operations}))
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    client = rest_client(manager)
    url = f"/api/sft/jobs/{record['job_id']}/push"
    answer = client.post(url, json={"repo_id": "me/step-9", "checkpoint": "checkpoint-9"})
    assert answer.status_code == 200, answer.text
    folder = Path(record["job_dir"]) / jobdir.CHECKPOINTS / "checkpoint-9"
    assert commits[0]["adapter_model.safetensors"] == str(folder / "adapter_model.safetensors")
    assert not {"optimizer.pt", "scheduler.pt", "training_args.bin"} & set(commits[0])
    assert (folder / "optimizer.pt").is_file()  # there, but not pushed
    merged = client.post(f"/api/sft/jobs/{record['job_id']}/merge", json={"checkpoint": "checkpoint-9"})
    assert merged.status_code == 200, merged.text
    answer = client.post(url, json={"repo_id": "me/step-9", "checkpoint": "checkpoint-9", "merged": True})
    assert answer.status_code == 200, answer.text
    assert commits[1]["config.json"] == str(Path(record["job_dir"]) / "merged-checkpoint-9" / "config.json")
    error(client.post(url, json={"repo_id": "me/x", "checkpoint": "checkpoint-999"}), 404, "checkpoint")
