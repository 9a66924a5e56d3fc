"""The playground: base and tuned answers side by side; the tuned model answers held-out built-in tasks better."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sft_ui.builtin import alpaca_prompt, builtin_model_path, builtin_rows
from sft_ui.manager import JobManager, StateError
from sft_ui.playground import Playground
from tests.helpers import fake_trained_job, rest_client

HELD_OUT = 30
Trained = tuple[JobManager, str]  # the conftest fixture: a manager and its trained job


def test_the_tuned_model_answers_held_out_builtin_tasks_better_than_the_base(trained_job: Trained) -> None:
    manager, job_id = trained_job
    rows = builtin_rows("test")[:HELD_OUT]
    base_hits = tuned_hits = differ = 0
    playground = Playground(manager)
    for row in rows:
        out = playground.generate(job_id, row["instruction"], max_new_tokens=16, input=row["input"])
        assert out["prompt_formatted"] == alpaca_prompt(row["instruction"], row["input"])  # as in training
        assert out["prompt_style"] == "alpaca"
        base_hits += out["base"].strip() == row["output"]
        tuned_hits += out["tuned"].strip() == row["output"]
        differ += out["base"] != out["tuned"]
    print(f"exact match on {HELD_OUT} held-out built-in tasks: base {base_hits}, tuned {tuned_hits}")
    assert differ >= HELD_OUT // 2
    assert tuned_hits >= base_hits + HELD_OUT // 5, (base_hits, tuned_hits)
    assert playground.loaded_job() == job_id  # kept loaded for the next prompt


def test_rest_generate_and_its_errors(trained_job: Trained) -> None:
    manager, job_id = trained_job
    client = rest_client(manager)
    row = builtin_rows("test")[0]
    body = {"prompt": row["instruction"], "input": row["input"], "max_new_tokens": 8, "temperature": 0.0,
            "top_p": 1.0}
    answer = client.post(f"/api/sft/jobs/{job_id}/generate", json=body)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert {"base", "tuned", "prompt_formatted"} <= set(out)
    assert out["prompt_formatted"].endswith("### Response:\n")
    again = client.post(f"/api/sft/jobs/{job_id}/generate", json=body).json()
    assert (again["base"], again["tuned"]) == (out["base"], out["tuned"])  # temperature 0 is greedy
    sampled = client.post(f"/api/sft/jobs/{job_id}/generate", json={**body, "temperature": 1.0, "top_p": 0.9})
    assert sampled.status_code == 200
    assert isinstance(sampled.json()["tuned"], str)

    for bad, field in (({"max_new_tokens": 0}, "max_new_tokens"), ({"prompt": ""}, "prompt"),
                       ({"top_p": 0}, "top_p"), ({"temperature": 3}, "temperature"), ({"seed": 1}, "seed")):
        answer = client.post(f"/api/sft/jobs/{job_id}/generate", json={**body, **bad})
        assert answer.status_code == 400, (bad, answer.text)
        assert field in answer.json()["detail"], (bad, answer.text)
    assert client.post("/api/sft/jobs/nope0000/generate", json=body).status_code == 404

    never_ran = manager.create_job({"max_steps": 5})
    answer = client.post(f"/api/sft/jobs/{never_ran}/generate", json=body)
    assert answer.status_code == 400
    assert "is pending" in answer.json()["detail"]
    manager.stop_job(never_ran)
    answer = client.post(f"/api/sft/jobs/{never_ran}/generate", json=body)
    assert answer.status_code == 400
    assert f"job {never_ran} has no saved model" in answer.json()["detail"]


def test_one_job_is_loaded_at_a_time_and_released_when_idle(trained_job: Trained, builtin_cache: Path) -> None:
    manager, job_id = trained_job
    playground = Playground(manager, idle=1.0)
    # A "fine-tune" whose model is the base itself, on chat data: both answers agree; the chat template is used.
    chat_job = fake_trained_job(manager, {"use_lora": False, "dataset_format": "messages"},
                                builtin_model_path(builtin_cache))
    try:
        playground.generate(job_id, "Say the last word.", max_new_tokens=4, input="red blue green")
        assert playground.loaded_job() == job_id
        out = playground.generate(chat_job, "Say the last word.", max_new_tokens=6)
        assert playground.loaded_job() == chat_job  # picking another job released the first
        assert out["prompt_style"] == "chat"
        assert out["base"] == out["tuned"]
        assert out["prompt_formatted"] == "<|im_start|>user\nSay the last word.<|im_end|>\n<|im_start|>assistant\n"
        deadline = time.monotonic() + 20
        while playground.loaded_job() is not None:
            assert time.monotonic() < deadline, "the idle models were not released"
            time.sleep(0.1)
        with pytest.raises(ValueError, match=r"prompt: \d+ tokens; this model reads at most 512"):
            playground.generate(chat_job, "1" * 600)  # one token per digit
    finally:
        playground.release()


def test_a_running_job_cannot_be_tried_yet(manager: JobManager) -> None:
    job_id = manager.create_job({"max_steps": 5})
    with pytest.raises(StateError, match="is pending"):
        Playground(manager).generate(job_id, "hello")
