"""The Jobs tab's checkpoints table and picker (checkpoints_view), and the keep_checkpoints field's bounds."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pytest
from pydantic import ValidationError

from sft_ui.config import SFTConfig
from sft_ui.web.ui import checkpoints_view

FOUND: list[dict[str, Any]] = [
    {"name": "checkpoint-3", "step": 3, "path": "o/j/checkpoints/checkpoint-3", "size_bytes": 849_000,
     "train_loss": 2.5, "eval_loss": 2.61234, "best": True},
    {"name": "checkpoint-6", "step": 6, "path": "o/j/checkpoints/checkpoint-6", "size_bytes": 12_500_000,
     "train_loss": 2.0, "eval_loss": None, "best": False},
]


def test_the_table_writes_losses_sizes_and_the_best_mark() -> None:
    html = checkpoints_view.table_html(FOUND)
    assert html.count("<tr data-name=") == 2
    assert "<td>2.6123</td>" in html and "<td>–</td>" in html
    assert "<td>849 kB</td>" in html and "<td>12.5 MB</td>" in html
    assert html.count("★ best") == 1
    assert "No checkpoint saved" in checkpoints_view.table_html([])


def test_the_picker_offers_the_final_model_then_checkpoints_newest_first() -> None:
    assert checkpoints_view.choices(FOUND) == [("final model", ""), ("checkpoint-6 (step 6)", "checkpoint-6"),
                                               ("checkpoint-3 (step 3, best)", "checkpoint-3")]


def test_refresh_sends_nothing_while_nothing_changed_and_keeps_a_choice_that_still_exists(
        monkeypatch: pytest.MonkeyPatch) -> None:
    found = list(FOUND)
    monkeypatch.setattr(checkpoints_view, "listing", lambda manager, job_id: found)
    table, picker, sig = checkpoints_view.refresh(None, "j1", None, None, picked=True)  # type: ignore[arg-type]
    assert isinstance(picker, gr.Dropdown) and picker.value == ""
    again = checkpoints_view.refresh(None, "j1", "checkpoint-3", sig, picked=False)  # type: ignore[arg-type]
    assert again[2] == sig and all(isinstance(part, dict) and part.get("__type__") == "update" and len(part) == 1
                                   for part in again[:2])  # gr.skip()
    found.pop(0)  # checkpoint-3 was deleted (a resume from an older one, or keep_checkpoints)
    _, picker, _ = checkpoints_view.refresh(None, "j1", "checkpoint-3", sig, picked=False)  # type: ignore[arg-type]
    assert picker.value == ""
    found.append({**FOUND[0], "name": "checkpoint-9", "step": 9})
    _, picker, _ = checkpoints_view.refresh(None, "j1", "checkpoint-6", sig, picked=False)  # type: ignore[arg-type]
    assert picker.value == "checkpoint-6"


@pytest.mark.parametrize("value", [0, 101, 2.5, "x"])
def test_keep_checkpoints_is_a_whole_number_from_1_to_100(value: object) -> None:
    with pytest.raises(ValidationError, match="keep_checkpoints"):
        SFTConfig(keep_checkpoints=value)
    assert SFTConfig().keep_checkpoints == 3
    assert SFTConfig.model_fields["keep_checkpoints"].json_schema_extra == {"group": "Training"}
