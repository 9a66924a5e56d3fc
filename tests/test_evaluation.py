"""Evaluation during and after training, on the built-in model: eval series, early stopping with the best
checkpoint kept, sample answers, and the final score against the base model."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from sft_ui.builtin import builtin_rows
from sft_ui.manager import JobManager
from tests.helpers import rest_client, wait_for

JOBS: dict[str, dict[str, Any]] = {
    "eval": {"max_steps": 12, "eval_split": 0.2, "eval_steps": 4, "sample_prompts": ["Upper-case the word.\ngoat",
             "Say hello."], "sample_steps": 6, "eval_max_rows": 20},
    "stall": {"max_steps": 60, "learning_rate": 1e-9, "eval_split": 0.2, "eval_steps": 2,
              "early_stopping_patience": 2, "early_stopping_threshold": 0.001, "eval_max_rows": 0},
    "best": {"max_steps": 12, "learning_rate": 0.3, "eval_split": 0.2, "eval_steps": 3, "keep_best_model": True,
             "eval_max_rows": 0},
    "eval_file": {"max_steps": 8, "eval_dataset": "held/eval.jsonl", "eval_steps": 4, "eval_max_rows": 10,
                  "sample_prompts": "auto", "sample_steps": 4},
    "default": {},
}
Finished = tuple[JobManager, dict[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    """Each job of JOBS trained to its end, two at a time, on one manager."""
    root = tmp_path_factory.mktemp("evaluation") / "data"
    manager = JobManager(data_dir=root, max_concurrent_jobs=2).start()
    (root / "held").mkdir()
    rows = builtin_rows("test")[:30]
    (root / "held" / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ids = {name: manager.create_job(config) for name, config in JOBS.items()}
    for job_id in ids.values():
        manager.start_job(job_id)
    records = {name: wait_for(manager, job_id, ("completed", "failed"), timeout=300) for name, job_id in ids.items()}
    yield manager, records
    manager.shutdown()


def eval_points(manager: JobManager, record: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in manager.get_metrics(record["job_id"]) if "eval_loss" in p]


def test_every_job_completed(finished: Finished) -> None:
    manager, records = finished
    for name, record in records.items():
        assert record["status"] == "completed", (name, record["error"], manager.get_log(record["job_id"])[-2000:])


def test_the_eval_loss_is_its_own_series_at_the_eval_steps(finished: Finished) -> None:
    manager, records = finished
    points = eval_points(manager, records["eval"])
    assert [p["step"] for p in points] == [4, 8, 12]
    assert all("loss" not in p for p in points)


def test_a_default_job_logs_no_eval_points(finished: Finished) -> None:
    manager, records = finished
    assert eval_points(manager, records["default"]) == []


def test_the_result_gives_the_final_eval_loss_and_its_perplexity(finished: Finished) -> None:
    manager, records = finished
    result = records["eval"]["result"]
    assert result["eval_loss"] == eval_points(manager, records["eval"])[-1]["eval_loss"]
    assert result["perplexity"] == pytest.approx(math.exp(result["eval_loss"]), rel=1e-3)
    assert result["evaluations"] == 3


def test_the_record_keeps_the_last_loss_beside_the_last_eval_loss(finished: Finished) -> None:
    _, records = finished
    metrics = records["eval"]["metrics"]
    assert "loss" in metrics
    assert "eval_loss" in metrics


def test_a_stalled_eval_loss_stops_the_run_early_and_says_why(finished: Finished) -> None:
    _, records = finished
    result = records["stall"]["result"]
    assert result["steps"] < 60
    assert result["early_stop"]["stopped"] is True
    assert result["early_stop"]["reason"].startswith("eval_loss did not improve by more than 0.001 for 2 evaluation")
    assert f"stopped at step {result['steps']} of 60" in result["early_stop"]["reason"]


def test_the_best_checkpoint_is_the_step_with_the_lowest_eval_loss(finished: Finished) -> None:
    manager, records = finished
    for name in ("stall", "best"):
        losses = {p["step"]: p["eval_loss"] for p in eval_points(manager, records[name])}
        best = records[name]["result"]["best"]
        assert best["value"] == min(losses.values()), name  # the log keeps 6 decimals: ties go to the later step
        assert losses[best["step"]] == best["value"], name
        assert best["kept"] is True, name


def test_the_saved_model_is_the_best_checkpoint(finished: Finished) -> None:
    _, records = finished
    record = records["best"]
    folder = Path(record["job_dir"])
    saved = load_file(folder / "model" / "adapter_model.safetensors")
    best = load_file(folder / "checkpoints" / f"checkpoint-{record['result']['best']['step']}" /
                     "adapter_model.safetensors")
    assert saved.keys() == best.keys()
    assert all(saved[k].equal(best[k]) for k in saved)


def test_typed_sample_prompts_are_answered_at_step_0_and_every_sample_steps(finished: Finished) -> None:
    manager, records = finished
    samples = manager.get_samples(records["eval"]["job_id"])
    assert [(s["step"], s["index"]) for s in samples] == [(0, 0), (0, 1), (6, 0), (6, 1), (12, 0), (12, 1)]
    assert samples[0]["prompt"] == "### Instruction:\nUpper-case the word.\ngoat\n\n### Response:\n"
    assert samples[0]["reference"] is None
    assert records["eval"]["result"]["samples"]["rounds"] == 3


def test_sample_answers_change_as_the_model_learns(finished: Finished) -> None:
    manager, records = finished
    samples = manager.get_samples(records["eval"]["job_id"])
    assert samples[0]["answer"] != samples[-2]["answer"]


def test_auto_samples_are_held_out_rows_with_their_reference(finished: Finished) -> None:
    manager, records = finished
    samples = manager.get_samples(records["eval_file"]["job_id"])
    first = builtin_rows("test")[0]
    assert [s["step"] for s in samples] == [0, 0, 0, 4, 4, 4, 8, 8, 8]
    assert samples[0]["reference"] == first["output"]
    assert first["input"] in samples[0]["prompt"]


def test_rest_samples_match_and_since_filters(finished: Finished) -> None:
    manager, records = finished
    job_id = records["eval"]["job_id"]
    client = rest_client(manager)
    assert client.get(f"/api/sft/jobs/{job_id}/samples").json()["samples"] == manager.get_samples(job_id)
    later = client.get(f"/api/sft/jobs/{job_id}/samples", params={"since": 6}).json()["samples"]
    assert [s["step"] for s in later] == [12, 12]


def test_an_eval_dataset_is_counted_and_scored(finished: Finished) -> None:
    _, records = finished
    result = records["eval_file"]["result"]
    assert result["eval_rows"]["read"] == 30
    assert result["eval_rows"]["used"] == 30
    assert result["score"]["rows"] == 10


def test_a_default_job_scores_better_than_its_base_model(finished: Finished) -> None:
    _, records = finished
    score = records["default"]["result"]["score"]
    print(score["summary"])
    assert score["rows"] == 100
    assert score["exact_match"] >= score["base_exact_match"] + 0.2
    assert score["f1"] > score["base_f1"]
    assert re.fullmatch(r"exact match 0\.\d\d \(base 0\.\d\d\) on 100 rows; F1 0\.\d\d \(base 0\.\d\d\)",
                        score["summary"])


def test_a_missing_eval_dataset_fails_naming_the_field(manager: JobManager) -> None:
    job_id = manager.create_job({"max_steps": 2, "eval_dataset": "nowhere/eval.jsonl"})
    manager.start_job(job_id)
    record = wait_for(manager, job_id, ("failed",))
    assert record["error"].startswith("eval_dataset: file not found under the data root")
