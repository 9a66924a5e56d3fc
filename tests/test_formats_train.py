"""Every data shape trains on the built-in model with every row used, and each job's result counts its rows."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sft_ui import builtin
from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from tests.helpers import wait_for
from tests.test_formats import alpaca_history_rows, openai_rows, sharegpt_tool_rows, write_jsonl

STEPS = {"max_steps": 3, "batch_size": 2, "max_seq_length": 512, "logging_steps": 1}
JOBS: dict[str, dict[str, Any]] = {
    "sharegpt_tools": {"dataset_name": "tools.jsonl"},
    "sharegpt_tools_as_text": {"dataset_name": "tools.jsonl", "base_model": "models/chatml"},
    "openai": {"dataset_name": "openai.jsonl"},
    "alpaca_history": {"dataset_name": "history.jsonl"},
    "alpaca_history_chat": {"dataset_name": "history.jsonl", "prompt_template": "chat"},
    "txt": {"dataset_name": "docs.txt"},
    "csv_column_map": {"dataset_name": "qa.csv", "column_map": {"question": "instruction", "answer": "output"}},
    "txt_cut_short": {"dataset_name": "docs.txt", "max_seq_length": 16},
    # max_seq_length beyond the built-in model's 512 positions: a row of ~700 tokens is too long all the same
    "txt_past_the_model": {"dataset_name": "long.txt", "max_seq_length": 1024, "truncation": "drop"},
}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[JobManager, dict]]:
    """One manager whose data dir holds a file per shape, and one ended job per entry of JOBS."""
    root = tmp_path_factory.mktemp("formats") / "data"
    root.mkdir()
    write_jsonl(root / "tools.jsonl", sharegpt_tool_rows())
    write_jsonl(root / "openai.jsonl", openai_rows())
    write_jsonl(root / "history.jsonl", alpaca_history_rows())
    (root / "docs.txt").write_text("".join(f"Document {i}: the fox and the dog.\n\n" for i in range(6)))
    (root / "long.txt").write_text("A short one.\n\n" * 3 + " ".join(f"word{i}" for i in range(200)) + "\n")
    (root / "qa.csv").write_text("question,answer\n" + "".join(f"Add {i} and 1,{i + 1}\n" for i in range(6)))
    chatml = root / "models" / "chatml"  # the built-in model with a chat template that has no tool support
    shutil.copytree(builtin.builtin_model_path(builtin_cache), chatml)
    settings = json.loads((chatml / "tokenizer_config.json").read_text())
    settings["chat_template"] = builtin.CHATML_TEMPLATE
    (chatml / "tokenizer_config.json").write_text(json.dumps(settings))
    (chatml / "chat_template.jinja").unlink(missing_ok=True)
    (chatml / "chat_template.jinja").write_text(builtin.CHATML_TEMPLATE)
    manager = JobManager(data_dir=root).start()
    ids = {}
    for name, config in JOBS.items():
        ids[name] = manager.create_job({**STEPS, "job_name": name, **config})
        manager.start_job(ids[name])
    records = {name: wait_for(manager, job_id, ENDED, timeout=600) for name, job_id in ids.items()}
    yield manager, records
    manager.shutdown()


@pytest.mark.parametrize("name", [n for n in JOBS if n not in ("txt_cut_short", "txt_past_the_model")])
def test_every_shape_trains_with_every_row_used(jobs: tuple[JobManager, dict], name: str) -> None:
    manager, records = jobs
    record = records[name]
    assert record["status"] == "completed", (record["error"], manager.get_log(record["job_id"])[-3000:])
    result = record["result"]
    assert result["rows"]["used"] == result["rows"]["read"]
    assert result["rows"]["dropped"] == {}
    assert result["rows"]["truncated"] == 0
    assert result["train_rows"] == result["rows"]["used"]
    assert 0 < result["tokens"]["p50"] <= result["tokens"]["p95"] <= result["tokens"]["max"] <= 512
    assert 0 < result["tokens"]["loss_share"] <= 1
    assert result["warnings"] == []
    assert "rows: read" in manager.get_log(record["job_id"])


def test_tool_rows_train_as_tool_calls(jobs: tuple[JobManager, dict]) -> None:
    _, records = jobs
    assert records["sharegpt_tools"]["result"]["data_notes"] == []
    assert records["sharegpt_tools"]["result"]["rows"]["read"] == 6
    assert records["sharegpt_tools_as_text"]["result"]["data_notes"][0].startswith("tool calls rendered as plain")


def test_prompt_styles_are_recorded_for_the_playground(jobs: tuple[JobManager, dict]) -> None:
    _, records = jobs
    assert records["alpaca_history"]["result"]["prompt_style"] == "alpaca"
    assert records["alpaca_history_chat"]["result"]["prompt_style"] == "chat"
    assert records["txt"]["result"]["prompt_style"] == "plain"
    assert records["csv_column_map"]["result"]["column_map"] == {"instruction": "question", "output": "answer"}


def test_a_job_that_cuts_most_rows_warns(jobs: tuple[JobManager, dict]) -> None:
    manager, records = jobs
    record = records["txt_cut_short"]
    assert record["status"] == "completed"
    assert record["result"]["rows"]["truncated"] == 6
    assert record["result"]["warnings"][0].startswith("6 of 6 rows (100%) were dropped or truncated")
    assert "warning: 6 of 6 rows" in manager.get_log(record["job_id"])


def test_rows_longer_than_the_model_are_counted_against_its_positions(jobs: tuple[JobManager, dict]) -> None:
    result = jobs[1]["txt_past_the_model"]["result"]
    assert result["rows"]["read"] == 4
    assert result["rows"]["used"] == 3
    assert result["rows"]["dropped"] == {"too long": 1}
    assert any("512 positions" in note for note in result["notes"])
