"""Built-in presets, and one generated per local model, offered in the UI beside the saved configs: overrides of
SFTConfig's defaults."""

from collections.abc import Iterable
from typing import Any

from sft_ui.config import SFTConfig

# Name -> the fields that differ from SFTConfig(); every preset is a valid SFTConfig (a test checks).
BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    "CPU demo (offline)": {},
    "GPT-2 + Alpaca (LoRA)": {
        "base_model": "gpt2",
        "dataset_name": "tatsu-lab/alpaca",
        "dataset_format": "alpaca",
        "learning_rate": 2e-4,
        "batch_size": 4,
        "max_steps": 500,
        "max_seq_length": 512,
    },
    # A small instruct model on a small conversational set (15.8k rows, `messages` column, train/test splits).
    "SmolLM2-135M chat": {
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "dataset_name": "trl-lib/Capybara",
        "dataset_format": "messages",
        "dataset_split": "train",
        "max_seq_length": 1024,
        "learning_rate": 2e-4,
        "batch_size": 4,
        "gradient_accumulation_steps": 2,
        "warmup_ratio": 0.03,
        "lr_scheduler_type": "cosine",
        "max_steps": 300,
        "logging_steps": 5,
    },
}


# A LoRA run on a local model that ends in minutes on a CPU: short sequences, few steps, the built-in data set.
LOCAL_PRESET = {
    "use_lora": True,
    "lora_r": 16,
    "batch_size": 4,
    "max_seq_length": 256,
    "max_steps": 60,
    "learning_rate": 2e-4,
    "logging_steps": 1,
    "eval_max_rows": 20,  # the score answers twice (tuned, base): 100 rows would add minutes on a CPU
}
LOCAL_SUFFIX = " (local): LoRA, CPU-quick"


def local_presets(models: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One CPU-quick LoRA preset per ready local model (model library entries): name -> overrides of SFTConfig."""
    return {f"{model['name']}{LOCAL_SUFFIX}": {**LOCAL_PRESET, "base_model": model["base_model"]}
            for model in models if model.get("status") == "ready"}


def preset_config(name: str, models: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """The full config of a built-in preset or of a local model's (`models`: the model library's entries), its
    defaults plus its overrides; KeyError when unknown."""
    found = BUILTIN_PRESETS.get(name)
    return SFTConfig(**(found if found is not None else local_presets(models)[name])).model_dump()
