"""The named Gradio endpoints, driven by gradio_client against a live server, as a user's script would."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from sft_ui.builtin import builtin_model_path
from sft_ui.manager import JobManager
from sft_ui.status import ACTIVE, ENDED
from sft_ui.web.gradio_api import API_NAMES
from tests.helpers import fake_trained_job
from tests.servers import live_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[Client, JobManager]]:
    """A gradio_client Client on a live app whose manager writes into a temporary data dir."""
    builtin_model_path(builtin_cache)  # made once per session; the jobs' timeouts then measure only the jobs
    manager = JobManager(data_dir=tmp_path_factory.mktemp("gradio-api") / "data", max_concurrent_jobs=2).start()
    with live_server(manager) as url:
        gradio = Client(url, verbose=False)
        yield gradio, manager
        gradio.close()  # ends its heartbeat stream, so the server shuts down at once


@pytest.fixture
def gradio(served: tuple[Client, JobManager]) -> Client:
    """The gradio_client Client of `served` (not conftest's REST `client`)."""
    return served[0]


def wait_for(gradio: Client, job_id: str, statuses: tuple[str, ...], timeout: float = 120.0,
             until: Any = None) -> dict[str, Any]:
    """Poll /get_job until the job's status is in `statuses` (and `until(record)` holds, when given)."""
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        record = gradio.predict(job_id, api_name="/get_job")
        if record["status"] in statuses and (until is None or until(record)):
            return record
        if record["status"] in ENDED and record["status"] not in statuses:
            break
        time.sleep(0.3)
    pytest.fail(f"job {job_id} did not reach {statuses}: {record}")


def test_view_api_lists_exactly_the_named_endpoints(gradio: Client) -> None:
    info = gradio.view_api(return_format="dict", print_info=False)
    assert sorted(info["named_endpoints"]) == sorted(f"/{name}" for name in API_NAMES)
    assert info["unnamed_endpoints"] == {}
    params = {name: [p["parameter_name"] for p in ep["parameters"]] for name, ep in info["named_endpoints"].items()}
    assert params["/train"] == ["config", "metadata"]  # metadata: optional (issue 17)
    assert params["/get_metrics"] == ["job_id", "since", "max_points"]
    assert params["/save_config"] == ["name", "config"]
    assert params["/list_configs"] == []
    assert params["/generate"] == ["job_id", "prompt", "max_new_tokens", "temperature", "top_p", "input",
                                   "checkpoint"]  # checkpoint: optional, last (issue 17)
    assert params["/resume_job"] == ["job_id", "checkpoint"]
    assert params["/list_checkpoints"] == ["job_id"]
    assert {"/generate", "/resume_job"} <= set(info["named_endpoints"])


def test_train_the_default_to_completed_then_read_metrics_and_list(gradio: Client) -> None:
    started = gradio.predict({"max_steps": 30, "job_name": "gradio-client"}, api_name="/train")
    assert set(started) == {"job_id", "status"}
    assert started["status"] in ACTIVE
    job_id = started["job_id"]
    record = wait_for(gradio, job_id, ("completed",))
    assert record["name"] == "gradio-client"
    assert record["config"]["max_steps"] == 30
    assert record["progress"]["step"] == 30
    assert record["result"]["final_loss"] > 0

    metrics = gradio.predict(job_id, api_name="/get_metrics")
    assert metrics["job_id"] == job_id
    losses = [p for p in metrics["points"] if "loss" in p]
    assert [p["step"] for p in losses] == list(range(1, 31))
    newer = gradio.predict(job_id, 25, api_name="/get_metrics")["points"]
    assert [p["step"] for p in newer if "loss" in p] == [26, 27, 28, 29, 30]

    jobs = gradio.predict(api_name="/list_jobs")["jobs"]
    assert job_id in [j["job_id"] for j in jobs]
    completed = gradio.predict("completed", api_name="/list_jobs")["jobs"]
    assert all(j["status"] == "completed" for j in completed)
    assert job_id in [j["job_id"] for j in completed]


def test_save_list_and_get_a_config(gradio: Client) -> None:
    config = {"base_model": "gpt2", "dataset_name": "tatsu-lab/alpaca", "dataset_format": "alpaca", "max_steps": 100,
              "use_lora": True, "lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4, "batch_size": 4}
    saved = gradio.predict("gpt2-alpaca", config, api_name="/save_config")
    assert saved["name"] == "gpt2-alpaca"
    assert saved["config_id"]
    listed = gradio.predict(api_name="/list_configs")
    assert [c["config_id"] for c in listed if c["name"] == "gpt2-alpaca"] == [saved["config_id"]]
    got = gradio.predict(saved["config_id"], api_name="/get_config")
    assert got["name"] == "gpt2-alpaca"
    assert got["config_id"] == saved["config_id"]
    assert {k: got["config"][k] for k in config} == config
    again = gradio.predict("gpt2-alpaca", {**config, "max_steps": 7}, api_name="/save_config")
    assert again["config_id"] == saved["config_id"]  # the same name replaces, keeping the id
    assert gradio.predict(saved["config_id"], api_name="/get_config")["config"]["max_steps"] == 7


def test_generate_answers_with_base_and_tuned_model(served: tuple[Client, JobManager], builtin_cache: Path) -> None:
    gradio, manager = served
    job_id = fake_trained_job(manager, {"use_lora": False}, builtin_model_path(builtin_cache))
    out = gradio.predict(job_id, "Upper-case the word.", 6, 0.0, 1.0, "fox", api_name="/generate")
    assert out["prompt_formatted"] == "### Instruction:\nUpper-case the word.\n\n### Input:\nfox\n\n### Response:\n"
    assert out["base"] == out["tuned"]
    assert out["prompt_style"] == "alpaca"  # this "fine-tune" is the base itself
    with pytest.raises(AppError, match="max_new_tokens"):
        gradio.predict(job_id, "hi", 0, api_name="/generate")
    with pytest.raises(AppError, match="only a stopped or failed job can be resumed"):
        gradio.predict(job_id, api_name="/resume_job")


def test_stop_a_long_job(gradio: Client) -> None:
    job_id = gradio.predict({"max_steps": 100_000}, api_name="/train")["job_id"]
    wait_for(gradio, job_id, ("running",), until=lambda r: r["progress"]["step"] >= 1)
    answer = gradio.predict(job_id, api_name="/stop_job")
    assert answer["message"] == f"Job {job_id} stopped"
    record = wait_for(gradio, job_id, ("stopped",), timeout=60)
    assert 1 <= record["progress"]["step"] < 100_000
    assert record["finished_at"]
    with pytest.raises(AppError, match="already stopped"):
        gradio.predict(job_id, api_name="/stop_job")


def test_get_metrics_max_points_thins_a_long_history(served: tuple[Client, JobManager]) -> None:
    gradio, manager = served
    job_id = manager.create_job({"job_name": "long history"})
    job_dir = Path(manager.get_job_status(job_id)["job_dir"])
    (job_dir / "metrics.jsonl").write_text("".join(f'{{"step": {s}, "loss": {1 / s}}}\n' for s in range(1, 1501)))
    manager.stop_job(job_id)
    thin = gradio.predict(job_id, None, 50, api_name="/get_metrics")["points"]
    assert len(thin) == 50
    assert thin[0]["step"] == 1
    assert thin[-1]["step"] == 1500
    assert [p["step"] for p in gradio.predict(job_id, 1400, 3, api_name="/get_metrics")["points"]] == [1401, 1451, 1500]
    assert len(gradio.predict(job_id, api_name="/get_metrics")["points"]) == 1500
    with pytest.raises(AppError, match="max_points"):
        gradio.predict(job_id, None, 1, api_name="/get_metrics")


@pytest.mark.parametrize(("api_name", "args", "words"), [
    ("/get_job", ("nope0000",), ("job nope0000 not found",)),
    ("/stop_job", ("nope0000",), ("job nope0000 not found",)),
    ("/get_metrics", ("nope0000",), ("job nope0000 not found",)),
    ("/get_config", ("nope0000",), ("config nope0000 not found",)),
    ("/generate", ("nope0000", "hi"), ("job nope0000 not found",)),
    ("/resume_job", ("nope0000",), ("job nope0000 not found",)),
    ("/train", ({"max_steps": 0},), ("max_steps", "greater than or equal to 1")),
    ("/train", ({"learning_rate": "fast"},), ("learning_rate", "valid number")),
    ("/train", ({"epochs": 3},), ("epochs", "Extra inputs are not permitted")),
    ("/save_config", ("", {}), ("name",)),
    ("/save_config", ("x", {"lora_r": -1}), ("lora_r",)),
    ("/list_jobs", ("finished",), ("status", "pending")),
])
def test_errors_raise_in_the_client_naming_the_problem(served: tuple[Client, JobManager], api_name: str,
                                                       args: tuple[Any, ...], words: tuple[str, ...]) -> None:
    gradio, manager = served
    jobs_before = len(manager.list_jobs())
    with pytest.raises(AppError) as caught:
        gradio.predict(*args, api_name=api_name)
    for word in words:
        assert word in str(caught.value)
    assert len(manager.list_jobs()) == jobs_before  # an invalid request starts nothing


def test_the_model_library_through_gradio_client(served: tuple[Client, JobManager], tmp_path: Path) -> None:
    import shutil

    from gradio_client import handle_file

    from tests.helpers import write_gguf

    gradio, manager = served
    shutil.copytree(builtin_model_path(manager.cache_dir), manager.store_root() / "models" / "by-hand")
    listed = {entry["name"]: entry for entry in gradio.predict(api_name="/list_models")["models"]}
    assert listed["by-hand"]["base_model"] == "models/by-hand"
    assert "path" not in listed["by-hand"]  # gradio_client would try to download a dict with a "path"
    assert gradio.predict("by-hand", api_name="/get_model")["architecture"] == "GPT2LMHeadModel"
    gguf = write_gguf(tmp_path / "odd.gguf", "rwkv6", {"token_embd.weight": (8, 8)})
    with pytest.raises(AppError, match="holds a 'rwkv6' model, which transformers cannot read"):
        gradio.predict(name="odd", file=handle_file(str(gguf)), api_name="/import_model")
    assert not list((manager.store_root() / "models" / ".uploads").iterdir())
    with pytest.raises(AppError, match="gguf: give the path of a .gguf file under the data root, or upload one"):
        gradio.predict("", "", "auto", "", api_name="/import_model")  # every parameter sent, the file empty
    assert gradio.predict("by-hand", api_name="/delete_model") == {"message": "Model by-hand deleted"}
    assert "by-hand" not in {entry["name"] for entry in gradio.predict(api_name="/list_models")["models"]}


def test_get_samples_returns_the_answers_the_worker_wrote(served: tuple[Client, JobManager]) -> None:
    gradio, manager = served
    config = {"max_steps": 4, "sample_prompts": ["Say the last word."], "sample_steps": 2, "eval_max_rows": 0}
    job_id = gradio.predict(config, api_name="/train")["job_id"]
    wait_for(gradio, job_id, ("completed",))
    samples = gradio.predict(job_id, None, api_name="/get_samples")["samples"]
    assert [s["step"] for s in samples] == [0, 2, 4]
    assert samples == manager.get_samples(job_id)
    assert gradio.predict(job_id, 2, api_name="/get_samples")["samples"] == samples[2:]
