"""The presets made for local models, and how the Models tab shows the library's entries (no process, no torch)."""

from __future__ import annotations

from typing import Any

import pytest

from sft_ui.config import SFTConfig
from sft_ui.presets import BUILTIN_PRESETS, LOCAL_PRESET, local_presets, preset_config
from sft_ui.web.ui import models

READY = {"name": "smollm2", "path": "models/smollm2", "base_model": "models/smollm2", "status": "ready",
         "architecture": "LlamaForCausalLM", "parameters": 134_515_008, "size_bytes": 269_060_000,
         "has_chat_template": True, "source": "gguf: smollm2.gguf"}
IMPORTING = {"name": "qwen", "path": "models/qwen", "base_model": "models/qwen", "status": "importing",
             "progress": 0.42, "phase": "converting", "architecture": "qwen2", "parameters": 1_543_714_304,
             "source": "gguf: qwen.gguf"}
FAILED = {"name": "bad", "path": "models/bad", "base_model": "models/bad", "status": "failed",
          "error": "gguf: <b>x</b>.gguf is not a GGUF file", "source": "gguf: <b>x</b>.gguf"}


def test_each_ready_model_gets_one_valid_cpu_quick_lora_preset() -> None:
    presets = local_presets([READY, IMPORTING, FAILED, {**READY, "name": "tiny", "base_model": "models/tiny"}])
    assert list(presets) == ["smollm2 (local): LoRA, CPU-quick", "tiny (local): LoRA, CPU-quick"]
    config = preset_config("smollm2 (local): LoRA, CPU-quick", [READY])
    assert config == SFTConfig(**presets["smollm2 (local): LoRA, CPU-quick"]).model_dump()
    assert config["base_model"] == "models/smollm2"
    assert config["dataset_name"] == SFTConfig().dataset_name
    assert (config["use_lora"], config["lora_r"], config["batch_size"], config["max_seq_length"],
            config["max_steps"], config["learning_rate"], config["logging_steps"]) == (True, 16, 4, 256, 60, 2e-4, 1)
    assert config["save_steps"] <= config["max_steps"]
    assert set(LOCAL_PRESET) <= set(SFTConfig.model_fields)


def test_a_preset_of_a_model_that_is_gone_or_not_ready_is_unknown() -> None:
    with pytest.raises(KeyError):
        preset_config("smollm2 (local): LoRA, CPU-quick", [])
    with pytest.raises(KeyError):
        preset_config("qwen (local): LoRA, CPU-quick", [IMPORTING])
    assert preset_config(next(iter(BUILTIN_PRESETS)), [READY]) == SFTConfig().model_dump()


def test_the_models_table_shows_status_progress_sizes_and_errors_as_text() -> None:
    assert models.rows([READY, IMPORTING, FAILED]) == [
        ["smollm2", "ready", "LlamaForCausalLM", "135M", "269.1 MB", "yes", "gguf: smollm2.gguf"],
        ["qwen", "importing 42% (converting)", "qwen2", "1.54B", "", "", "gguf: qwen.gguf"],
        ["bad", "failed: gguf: <b>x</b>.gguf is not a GGUF file", "", "", "", "", "gguf: <b>x</b>.gguf"],
    ]
    assert [models.size_text(n) for n in (512, 3400, 4_200_000_000)] == ["512 B", "3.4 kB", "4.2 GB"]
    assert models.parameters_text(None) == "" and models.parameters_text(520_000) == "0.52M"


def test_the_train_picker_labels_a_model_by_architecture_size_and_chat_template() -> None:
    assert models.model_label(READY) == "smollm2 — LlamaForCausalLM, 135M, chat template"
    assert models.model_label({"name": "x", "model_type": "gpt2"}) == "x — gpt2, no chat template"


class Library:
    """The model library as tick() reads it: the running imports and the entries."""

    def __init__(self, running: list[str], entries: list[dict[str, Any]]) -> None:
        self.running_names, self.entries, self.listed = running, entries, 0

    def running(self) -> list[str]:
        return self.running_names

    def list(self) -> list[dict[str, Any]]:
        self.listed += 1
        return self.entries


class Manager:
    def __init__(self, library: Library) -> None:
        self.models = library


def test_a_tick_lists_the_models_only_while_an_import_runs_and_sends_only_changes() -> None:
    idle = Library([], [READY])
    assert models.tick(Manager(idle), None, models.signature([READY]))[2] == models.signature([READY])
    assert idle.listed == 0
    running = Library(["qwen"], [IMPORTING, READY])
    table, _, sig = models.tick(Manager(running), None, models.signature([READY]))
    assert table[0][1] == "importing 42% (converting)" and sig == models.signature([IMPORTING, READY])
    assert models.tick(Manager(running), None, sig)[2] == sig  # unchanged: nothing sent
    done = Library([], [{**IMPORTING, "status": "failed", "error": "killed"}, READY])
    table, _, after = models.tick(Manager(done), None, sig)  # the import ended since the last look: shown once
    assert table[0][1] == "failed: killed" and after != sig
    assert models.tick(Manager(done), None, after)[2] == after and done.listed == 1
