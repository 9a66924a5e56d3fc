"""Why a config was refused, in plain words at its field (sft_ui/web/ui/plain_errors.py), and the Train form's
values as the form, the config and the browser's copy hold them (form.py, form_memory.py, marks.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sft_ui.config import SFTConfig
from sft_ui.web.ui import form, form_memory, marks
from sft_ui.web.ui.machine import Machine, needs_gpu
from sft_ui.web.ui.plain_errors import FieldError, field_errors, number, shown

SPECS = [spec for group in form.form_specs(Machine(gpus=0)).values() for spec in group]
LABELS = form.labels(SPECS)


def refused(**config: Any) -> list[FieldError]:
    """The FieldErrors of SFTConfig(**config)."""
    with pytest.raises(ValidationError) as info:
        SFTConfig(**config)
    return field_errors(info.value, LABELS)


def lines(**config: Any) -> list[str]:
    return [error.line(LABELS) for error in refused(**config)]


@pytest.mark.parametrize(("config", "field", "line"), [
    ({"learning_rate": -1}, "learning_rate", "Learning rate must be greater than 0 (got -1)"),
    ({"learning_rate": 2.5}, "learning_rate", "Learning rate must be at most 1 (got 2.5)"),
    ({"max_steps": 0}, "max_steps", "Max steps must be at least 1 (got 0)"),
    ({"max_steps": 10**9}, "max_steps", "Max steps must be at most 100,000 (got 1,000,000,000)"),
    ({"lora_r": 0}, "lora_r", "LoRA rank must be at least 1 (got 0)"),
    ({"batch_size": 2.5}, "batch_size", "Batch size must be a whole number (got 2.5)"),
    ({"batch_size": "many"}, "batch_size", "Batch size must be a whole number (got “many”)"),
    ({"max_steps": ""}, "max_steps", "Max steps must be filled in"),
    ({"base_model": ""}, "base_model", "Base model must not be empty"),
    ({"dataset_format": "xml"}, "dataset_format", "Dataset format must be one of 'auto', 'alpaca', 'sharegpt', "
                                                   "'messages', 'prompt_completion' or 'text' (got “xml”)"),
    ({"base_model": "my model"}, "base_model", "Base model must not contain spaces: a Hub id (owner/name), a folder "
                                               "under the data root or builtin:tiny-gpt2"),
])
def test_each_refusal_names_its_field_by_label_in_plain_words(config: dict, field: str, line: str) -> None:
    (error,) = refused(**config)
    assert error.field == field
    assert error.line(LABELS) == line
    assert "Input should" not in line and field not in line


def test_a_rule_across_fields_goes_to_the_first_it_names_with_labels_instead_of_code_names() -> None:
    (error,) = refused(max_steps=3, save_steps=5)
    assert error.field == "save_steps"
    assert error.line(LABELS) == "Save steps (5) is larger than max steps (3)"


def test_a_list_entry_and_a_json_field_say_which_entry_and_what_was_wrong() -> None:
    (error,) = refused(lora_target_modules=["q_proj", "../x"])
    assert error.field == "lora_target_modules"
    assert error.line(LABELS) == "LoRA target modules: not a module name: '../x'"
    (error,) = refused(column_map="{not json")
    assert (error.field, error.line(LABELS)) == (
        "column_map", 'Column map must be a JSON object of column names, e.g. {"question": "instruction"}')


def test_several_refusals_are_each_kept() -> None:
    assert lines(learning_rate=0, lora_r=0) == ["Learning rate must be greater than 0 (got 0)",
                                                "LoRA rank must be at least 1 (got 0)"]


def test_value_errors_of_the_data_checks_name_their_field() -> None:
    (error,) = field_errors(ValueError("dataset_name: file not found under the data root: my_data.jsonl"), LABELS)
    assert (error.field, error.line(LABELS)) == ("dataset_name",
                                                 "Data set: file not found under the data root: my_data.jsonl")
    (error,) = field_errors(ValueError("too many pending jobs: 5 wait to run"), LABELS)
    assert (error.field, error.line(LABELS)) == (None, "Too many pending jobs: 5 wait to run")
    (error,) = field_errors(ValueError("an option not in the form"), {})
    assert error.field is None


def test_numbers_and_values_read_as_people_write_them() -> None:
    assert [number(v) for v in (100000, 1.0, 0.5, 1e-05, -1.0)] == ["100,000", "1", "0.5", "1e-05", "-1"]
    assert [shown(v) for v in (True, -1.0, "x" * 100)] == ["on", "-1", f"“{'x' * 80}…”"]


def test_steps_or_epochs_is_one_choice_in_the_config() -> None:
    values = form.config_to_form(SPECS, {"max_steps": 37, "num_train_epochs": 4})
    by_name = dict(zip([s.name for s in SPECS], values, strict=True))
    assert (by_name[form.TRAIN_FOR], by_name["max_steps"]) == (form.STEPS, 37)
    config = form.form_to_config(SPECS, values)
    assert (config["max_steps"], config["num_train_epochs"]) == (37, 1.0)  # the epochs field is not sent
    values[[s.name for s in SPECS].index(form.TRAIN_FOR)] = form.EPOCHS
    config = form.form_to_config(SPECS, values)
    assert (config["max_steps"], config["num_train_epochs"]) == (None, 4)
    assert SFTConfig(**config).max_steps is None
    back = dict(zip([s.name for s in SPECS], form.config_to_form(SPECS, config), strict=True))
    assert (back[form.TRAIN_FOR], back["num_train_epochs"], back["max_steps"]) == (form.EPOCHS, 4, 200)


def test_what_a_cpu_cannot_use_is_blocked_with_the_reason_and_loaded_at_its_default() -> None:
    specs = {s.name: s for s in SPECS}
    assert specs["precision"].choices == ("auto", "fp32") and "need a GPU" in specs["precision"].info
    assert specs["use_liger_kernel"].blocked and specs["tf32"].blocked and specs["num_processes"].blocked
    gpu = {s.name: s for group in form.form_specs(Machine(gpus=2)).values() for s in group}
    assert "bf16" in gpu["precision"].choices and not gpu["use_liger_kernel"].blocked
    assert not gpu["num_processes"].blocked
    config = {"precision": "bf16", "use_liger_kernel": True}
    values = dict(zip(specs, form.config_to_form(SPECS, config), strict=True))
    assert (values["precision"], values["use_liger_kernel"]) == ("auto", False)
    assert form.not_offered(SPECS, config) == ["Precision “bf16” cannot be used on this machine: the form uses “auto”.",
                                               "Liger kernels on cannot be used on this machine: the form uses off."]
    assert needs_gpu(config) and not needs_gpu({"precision": "auto"})


def test_the_browser_copy_comes_back_field_by_field_and_bad_entries_are_dropped() -> None:
    values = form.config_to_form(SPECS, {"job_name": "mine", "learning_rate": 0.004})
    kept = form_memory.stored(SPECS, values, "builtin:CPU demo (offline)")
    back, preset = form_memory.restored(SPECS, kept)
    assert back == [None if s.blocked else v for s, v in zip(SPECS, values, strict=True)]
    assert preset == "builtin:CPU demo (offline)"
    tampered = {**kept, "values": {**kept["values"], "learning_rate": "lots", "dataset_format": "xml",
                                   "use_lora": "yes", "gone_field": 1, "lora_r": float("nan")}}
    back = dict(zip([s.name for s in SPECS], form_memory.restored(SPECS, tampered)[0], strict=True))
    assert [back[name] for name in ("learning_rate", "dataset_format", "use_lora", "lora_r")] == [None] * 4
    assert back["job_name"] == "mine"
    for junk in (None, "text", [], {"version": 99, "values": {}}, {"version": 1, "values": []}):
        assert form_memory.restored(SPECS, junk) == ([None] * len(SPECS), None)


def test_marks_follow_the_errors_and_clear_when_their_field_changes() -> None:
    names = [s.name for s in SPECS]
    values = form.config_to_form(SPECS, {"learning_rate": -1})
    updates, held = marks.marked(SPECS, [FieldError("learning_rate", "must be greater than 0 (got -1)")], values, {})
    lr = names.index("learning_rate")
    assert held == {"learning_rate": -1}
    assert updates[lr]["info"] == "⚠ must be greater than 0 (got -1)"
    assert updates[lr]["elem_classes"] == [marks.ERROR_CLASS]
    assert sum("info" in update for update in updates) == 1  # the others are gr.skip(): left alone
    same, still = marks.clear_changed(SPECS, values, held)
    assert still == held and not any("info" in update for update in same)
    values[lr] = 0.002
    cleared, left = marks.clear_changed(SPECS, values, held)
    assert left == {} and cleared[lr]["elem_classes"] == [] and cleared[lr]["info"] == SPECS[lr].info
    updates, held = marks.marked(SPECS, [], values, {"learning_rate": -1})  # a later success clears them all
    assert held == {} and updates[lr]["elem_classes"] == []
