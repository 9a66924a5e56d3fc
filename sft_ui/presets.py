"""Built-in presets offered in the UI beside the saved configs: overrides of SFTConfig's defaults."""

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


def preset_config(name: str) -> dict[str, Any]:
    """The full config of a built-in preset (defaults plus its overrides); KeyError when unknown."""
    return SFTConfig(**BUILTIN_PRESETS[name]).model_dump()
