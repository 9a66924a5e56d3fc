"""SFTConfig: defaults, bounds, unknown keys, JSON round trip, errors that name the field."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from sft_ui.config import BUILTIN_DATASET, BUILTIN_MODEL, SFTConfig, describe_errors, field_groups


def test_defaults_train_the_builtin_demo() -> None:
    cfg = SFTConfig()
    assert (cfg.base_model, cfg.dataset_name) == (BUILTIN_MODEL, BUILTIN_DATASET)
    assert cfg.max_steps == 200
    assert cfg.use_lora


def test_seed_example_validates_and_round_trips_through_json() -> None:
    seed = {"base_model": "gpt2", "dataset_name": "tatsu-lab/alpaca", "dataset_format": "alpaca", "max_steps": 100,
            "output_dir": "./outputs/sft", "use_lora": True, "lora_r": 16, "lora_alpha": 32,
            "learning_rate": 2e-4, "batch_size": 4}
    cfg = SFTConfig(**seed)
    again = SFTConfig(**json.loads(json.dumps(cfg.model_dump())))
    assert again == cfg
    assert again.model_dump() == cfg.model_dump()


def test_every_field_has_help_and_a_group() -> None:
    grouped = [name for names in field_groups().values() for name in names]
    assert sorted(grouped) == sorted(SFTConfig.model_fields)
    for name, field in SFTConfig.model_fields.items():
        assert field.description, name


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_steps", 0), ("max_steps", 10**9), ("batch_size", 0), ("learning_rate", -1.0), ("lora_r", 0),
     ("eval_split", 0.9), ("max_seq_length", 4), ("dataset_format", "csv"), ("lora_dropout", 1.5),
     ("output_dir", "/etc"), ("output_dir", "../outside"), ("lora_target_modules", ["bad name"]),
     ("max_steps", "abc"), ("use_lora", "perhaps"), ("job_name", "x" * 5000)],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        SFTConfig(**{field: value})
    assert describe_errors(err.value).startswith(f"{field}")


def test_unknown_keys_are_an_error() -> None:
    with pytest.raises(ValidationError) as err:
        SFTConfig(max_step=10)
    assert "max_step" in describe_errors(err.value)


def test_epochs_used_when_max_steps_is_empty() -> None:
    cfg = SFTConfig(max_steps=None, num_train_epochs=2)
    assert cfg.max_steps is None
    assert cfg.num_train_epochs == 2


def test_save_steps_cannot_exceed_max_steps() -> None:
    with pytest.raises(ValidationError, match="save_steps"):
        SFTConfig(max_steps=10, save_steps=20)
