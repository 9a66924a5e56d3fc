"""Every shape real data sets come in (ShareGPT with tools, OpenAI chat, alpaca with history, .txt, column maps),
converted with no row lost unseen; the built-in tokenizer's tool template and the plain-text fallback."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sft_ui import builtin, data
from sft_ui.config import SFTConfig
from sft_ui.data import DataError
from sft_ui.data.formats import TOOLS_AS_TEXT
from tests.helpers import small_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function",
           "function": {"name": "get_weather", "description": "The weather in a city.", "parameters": CITY}}


def sharegpt_tool_rows(n: int = 6) -> list[dict[str, Any]]:
    """ShareGPT rows as trainers publish them: human/function_call/observation/gpt turns, system and tools."""
    return [{"conversations": [
        {"from": "human", "value": f"Weather in city{i}?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": f"city{i}"}})},
        {"from": "observation", "value": json.dumps({"temp": 20 + i, "sky": "OBSERVED"})},
        {"from": "gpt", "value": f"It is {20 + i} degrees in city{i}."}],
        "system": "You help with weather.", "tools": json.dumps([WEATHER])} for i in range(n)]


def openai_rows(n: int = 6) -> list[dict[str, Any]]:
    """OpenAI/HF chat rows: content as part lists, tool_calls with null content, tool turns, a tools column."""
    return [{"messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": f"Weather in town{i}"}, {"type": "text", "value": "?"}]},
        {"role": "assistant", "content": None, "reasoning_content": "I should call the tool.",
         "tool_calls": [{"id": f"c{i}", "type": "function",
                         "function": {"name": "get_weather", "arguments": json.dumps({"city": f"town{i}"})}}]},
        {"role": "tool", "tool_call_id": f"c{i}", "content": "RESULT sunny"},
        {"role": "assistant", "content": [{"type": "text", "text": f"Sunny in town{i}."}]}],
        "tools": [WEATHER]} for i in range(n)]


def alpaca_history_rows(n: int = 6) -> list[dict[str, Any]]:
    """Alpaca rows with a system prompt and a history of earlier [prompt, response] pairs."""
    return [{"instruction": f"And {i} plus 2?", "input": "", "output": f"{i + 2}", "system": "You add numbers.",
             "history": [[f"What is {i} plus 1?", f"{i + 1}"]]} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows as JSON lines."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cfg(name: str, **changes: Any) -> SFTConfig:
    """A config that reads `name`, with room for the tool listings (the test tokenizer writes them long)."""
    return SFTConfig(dataset_name=name, **{"max_seq_length": 1024, **changes})


@pytest.fixture(scope="module", autouse=True)
def fast_builtin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """builtin:tiny-gpt2 as a tokenizer-only folder with the built-in template: its model takes seconds to make."""
    folder = tmp_path_factory.mktemp("fast-builtin")
    small_tokenizer(builtin.CHAT_TEMPLATE).save_pretrained(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtin, "builtin_model_path", lambda cache_dir: folder)
        yield folder


@pytest.fixture(scope="module")
def tokenizer(fast_builtin: Path) -> Any:
    """The built-in tokenizer: ChatML with tool support and {% generation %} markers."""
    return small_tokenizer(builtin.CHAT_TEMPLATE)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data root with one file per shape."""
    write_jsonl(tmp_path / "tools.jsonl", sharegpt_tool_rows())
    write_jsonl(tmp_path / "openai.jsonl", openai_rows())
    write_jsonl(tmp_path / "history.jsonl", alpaca_history_rows())
    (tmp_path / "docs.txt").write_text("First document,\nits second line.\n\n\nSecond document.\n  \nThird one.\n")
    (tmp_path / "qa.csv").write_text("question,answer\n" + "".join(f"Add {i} and 1,{i + 1}\n" for i in range(6)))
    dialogs = [{"dialog": [{"speaker": "user", "text": f"Hi {i}"}, {"speaker": "assistant", "text": f"Hello {i}"}]}
               for i in range(6)]
    write_jsonl(tmp_path / "dialog.jsonl", dialogs)
    return tmp_path


def prepared(config: SFTConfig, root: Path, tokenizer: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(train rows, trl kwargs, info) of data.prepare."""
    info: dict[str, Any] = {}
    train, _, kwargs = data.prepare(config, root, tokenizer, info)
    return train, kwargs, info


def test_sharegpt_tool_calls_are_kept(root: Path, tokenizer: Any) -> None:
    train, kwargs, info = prepared(cfg("tools.jsonl"), root, tokenizer)
    assert info["rows"] == {"read": 6, "used": 6, "dropped": {}, "truncated": 0}
    assert len(train) == 6
    assert info["dataset_format"] == "sharegpt"
    assert kwargs["assistant_only_loss"] is True
    turns = train[0]["messages"]
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "tool", "assistant"]
    assert turns[2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(turns[2]["tool_calls"][0]["function"]["arguments"]) == {"city": "city0"}
    assert json.loads(train[0]["tools"]) == [WEATHER]
    assert info["data_notes"] == []


def test_sharegpt_tools_as_a_list_column(root: Path, tokenizer: Any) -> None:
    rows = [{**row, "tools": [WEATHER]} for row in sharegpt_tool_rows()]
    write_jsonl(root / "tools_list.jsonl", rows)
    train, _, info = prepared(cfg("tools_list.jsonl"), root, tokenizer)
    assert info["rows"]["used"] == 6
    assert json.loads(train[5]["tools"]) == [WEATHER]


def test_sharegpt_tool_preview_shows_where_the_loss_goes(root: Path, builtin_cache: Path) -> None:
    info: dict[str, Any] = {}
    row = data.preview(cfg("tools.jsonl"), 1, root, builtin_cache, info)[0]
    spans = "".join(row["loss_spans"])
    assert row["loss_on"] == "assistant turns"
    assert "You can call these tools" in row["text"]
    assert '<tool_call>{"name": "get_weather"' in spans
    assert "It is 20 degrees in city0." in spans
    assert "OBSERVED" in row["text"]
    assert "OBSERVED" not in spans
    assert "Weather in city0?" not in spans
    assert info["rows"]["dropped"] == {}
    assert info["column_map"] == {"conversations": "conversations", "system": "system", "tools": "tools"}


def test_tool_calls_fall_back_to_text_without_template_support(root: Path, tokenizer: Any) -> None:
    plain = small_tokenizer(builtin.CHATML_TEMPLATE)  # ChatML without tools
    train, _, info = prepared(cfg("tools.jsonl"), root, plain)
    turns = train[0]["messages"]
    assert info["rows"]["used"] == 6
    assert info["data_notes"] == [f"{TOOLS_AS_TEXT}: 6"]
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user", "assistant"]
    assert "get_weather" in turns[0]["content"]
    assert turns[2]["content"].startswith("Tool call:\n")
    assert turns[3]["content"].startswith("Tool result:\n")
    assert "tools" not in train.column_names
    view = data.accounting.preview_row(train[0], "assistant turns", plain, 512)
    spans = "".join(view["loss_spans"])
    assert "get_weather" in spans
    assert "OBSERVED" not in spans


def test_openai_rows_with_tool_calls_and_parts(root: Path, tokenizer: Any) -> None:
    train, _, info = prepared(cfg("openai.jsonl"), root, tokenizer)
    turns = train[1]["messages"]
    assert info["rows"] == {"read": 6, "used": 6, "dropped": {}, "truncated": 0}
    assert info["dataset_format"] == "messages"
    assert turns[0]["content"] == "Be brief."
    assert turns[1]["content"] == "Weather in town1?"
    assert turns[2]["content"] == ""
    assert turns[2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert turns[3]["role"] == "tool"
    assert turns[3]["content"] == "RESULT sunny"
    assert turns[4]["content"] == "Sunny in town1."
    assert info["data_notes"] == ["reasoning dropped (the chat template does not render it): 6"]


def test_openai_legacy_function_call(root: Path, tokenizer: Any) -> None:
    call = {"name": "get_weather", "arguments": json.dumps({"city": "Rome"})}
    rows = [{"messages": [{"role": "user", "content": "Rome?"}, {"role": "assistant", "content": None,
                                                                 "function_call": call},
                          {"role": "function", "name": "get_weather", "content": "hot"},
                          {"role": "assistant", "content": "Hot."}]}]
    write_jsonl(root / "legacy.jsonl", rows)
    train, _, info = prepared(cfg("legacy.jsonl"), root, tokenizer)
    assert info["rows"]["dropped"] == {}
    assert train[0]["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert train[0]["messages"][2]["role"] == "tool"


def test_reasoning_is_kept_for_templates_that_render_it(root: Path) -> None:
    template = builtin.CHAT_TEMPLATE.replace("{{ message['content'] or '' }}",
                                             "{{ message['reasoning_content'] or '' }}{{ message['content'] or '' }}")
    thinking = small_tokenizer(template)
    train, _, info = prepared(cfg("openai.jsonl"), root, thinking)
    assert train[0]["messages"][2]["reasoning_content"] == "I should call the tool."
    assert info["data_notes"] == []


def test_openai_preview_loss(root: Path, builtin_cache: Path) -> None:
    row = data.preview(cfg("openai.jsonl"), 1, root, builtin_cache)[0]
    spans = "".join(row["loss_spans"])
    assert '"arguments": {"city": "town0"}' in spans
    assert "Sunny in town0." in spans
    assert "RESULT sunny" not in spans


def test_alpaca_with_system_and_history(root: Path, tokenizer: Any) -> None:
    train, kwargs, info = prepared(cfg("history.jsonl"), root, tokenizer)
    prompt = train[3]["prompt"]
    assert info["rows"]["used"] == 6
    assert info["prompt_style"] == "alpaca"
    assert prompt.startswith("You add numbers.\n\n### Instruction:\nWhat is 3 plus 1?\n\n### Response:\n4\n\n")
    assert prompt.endswith("### Instruction:\nAnd 3 plus 2?\n\n### Response:\n")
    assert train[3]["completion"] == "5" + tokenizer.eos_token
    assert kwargs["completion_only_loss"] is True


def test_alpaca_history_through_the_chat_template(root: Path, tokenizer: Any) -> None:
    train, kwargs, info = prepared(cfg("history.jsonl", prompt_template="chat"), root, tokenizer)
    turns = train[0]["messages"]
    assert info["prompt_style"] == "chat"
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user", "assistant"]
    assert turns[1]["content"] == "What is 0 plus 1?"
    assert turns[4]["content"] == "2"
    assert kwargs["assistant_only_loss"] is True


def test_plain_prompt_template(root: Path, tokenizer: Any) -> None:
    train, _, info = prepared(cfg("history.jsonl", prompt_template="plain"), root, tokenizer)
    assert info["prompt_style"] == "plain"
    assert train[0]["prompt"].endswith("And 0 plus 2?")
    assert train[0]["completion"] == "\n2" + tokenizer.eos_token


def test_prompt_template_auto_keeps_alpaca_for_sft_ui_templates(root: Path, tokenizer: Any) -> None:
    assert data.formats.instruction_style(cfg("x.json"), tokenizer) == "alpaca"
    assert data.formats.instruction_style(cfg("x.json"), small_tokenizer(data.PLAIN_CHAT_TEMPLATE)) == "alpaca"
    assert data.formats.instruction_style(cfg("x.json"), small_tokenizer(builtin.CHATML_TEMPLATE)) == "alpaca"
    shipped = small_tokenizer(builtin.CHATML_TEMPLATE + "{# shipped with the model #}")
    assert data.formats.instruction_style(cfg("x.json"), shipped) == "chat"
    train, _, info = prepared(cfg("history.jsonl"), root, shipped)
    assert info["prompt_style"] == "chat"
    assert train[0]["messages"][-2] == {"role": "user", "content": "And 0 plus 2?"}


def test_prompt_completion_rows_on_a_chat_model(root: Path) -> None:
    write_jsonl(root / "pc.jsonl", [{"prompt": f"Count to {i}:", "completion": f"{i}"} for i in range(1, 5)])
    shipped = small_tokenizer(builtin.CHAT_TEMPLATE + "{# shipped #}")
    train, _, info = prepared(cfg("pc.jsonl"), root, shipped)
    assert info["prompt_style"] == "chat"
    assert train[0]["messages"] == [{"role": "user", "content": "Count to 1:"}, {"role": "assistant", "content": "1"}]


def test_txt_file_is_one_document_per_block(root: Path, tokenizer: Any) -> None:
    source = data.load_source(cfg("docs.txt"), root)
    assert source["text"] == ["First document,\nits second line.", "Second document.", "Third one."]
    train, kwargs, info = prepared(cfg("docs.txt"), root, tokenizer)
    assert info["dataset_format"] == "text"
    assert info["rows"] == {"read": 3, "used": 3, "dropped": {}, "truncated": 0}
    assert kwargs == {"completion_only_loss": False, "assistant_only_loss": False}


def test_txt_file_paths_are_local(root: Path) -> None:
    data.check_paths(cfg("docs.txt"), root)
    with pytest.raises(DataError, match=r"^dataset_name: file not found under the data root: gone\.txt$"):
        data.load_source(cfg("gone.txt"), root)
    with pytest.raises(ValueError, match="^dataset_name: "):
        data.check_paths(cfg("../docs.txt"), root)


def test_column_map_renames_columns(root: Path, tokenizer: Any) -> None:
    with pytest.raises(DataError, match="rename yours with column_map"):
        prepared(cfg("qa.csv"), root, tokenizer)
    mapping = {"question": "instruction", "answer": "output"}
    train, _, info = prepared(cfg("qa.csv", column_map=mapping), root, tokenizer)
    assert info["rows"]["used"] == 6
    assert info["dataset_format"] == "alpaca"
    assert info["columns"] == ["question", "answer"]
    assert info["column_map"] == {"instruction": "question", "output": "answer"}
    assert train[2]["prompt"] == builtin.alpaca_prompt("Add 2 and 1")
    assert train[2]["completion"] == "3" + tokenizer.eos_token


def test_column_map_renames_turn_keys(root: Path, tokenizer: Any) -> None:
    mapping = {"dialog": "messages", "speaker": "role", "text": "content"}
    train, _, info = prepared(cfg("dialog.jsonl", column_map=mapping), root, tokenizer)
    assert info["rows"]["dropped"] == {}
    assert info["turn_keys"] == {"speaker": "role", "text": "content"}
    assert train[4]["messages"] == [{"role": "user", "content": "Hi 4"}, {"role": "assistant", "content": "Hello 4"}]


def test_column_map_that_clashes(root: Path, tokenizer: Any) -> None:
    write_jsonl(root / "both.jsonl", [{"instruction": "a", "question": "b", "output": "c"}])
    with pytest.raises(DataError, match="^column_map: the data set already has a column 'instruction'"):
        prepared(cfg("both.jsonl", column_map={"question": "instruction"}), root, tokenizer)


def test_dropped_rows_are_counted_by_reason(root: Path, tokenizer: Any) -> None:
    rows = [*sharegpt_tool_rows(4), {"conversations": [{"from": "human", "value": "alone"}], "system": "", "tools": ""},
            {"conversations": [{"from": "alien", "value": "?"}, {"from": "gpt", "value": "!"}], "system": "",
             "tools": ""}]
    write_jsonl(root / "holes.jsonl", rows)
    train, _, info = prepared(cfg("holes.jsonl"), root, tokenizer)
    assert info["rows"]["dropped"] == {"no assistant reply": 1, "unknown role 'alien'": 1}
    assert info["rows"]["used"] == 4
    assert len(train) == 4
    assert info["warnings"][0].startswith("2 of 6 rows (33%) were dropped or truncated")


def test_truncation_cut_counts_and_drop_removes(root: Path, tokenizer: Any) -> None:
    long = [{"text": "word " * (40 if i % 2 else 2)} for i in range(10)]
    write_jsonl(root / "long.jsonl", long)
    train, _, info = prepared(cfg("long.jsonl", max_seq_length=32), root, tokenizer)
    assert len(train) == 10
    assert info["rows"] == {"read": 10, "used": 10, "dropped": {}, "truncated": 5}
    assert info["tokens"]["max"] == 32
    assert info["tokens"]["loss_share"] == 1.0
    assert "truncated at max_seq_length: 5" in info["warnings"][0]
    train, _, info = prepared(cfg("long.jsonl", max_seq_length=32, truncation="drop"), root, tokenizer)
    assert len(train) == 5
    assert info["rows"] == {"read": 10, "used": 5, "dropped": {"too long": 5}, "truncated": 0}
    assert info["tokens"]["max"] < 32
    write_jsonl(root / "all_long.jsonl", long[1::2])
    with pytest.raises(DataError, match="^max_seq_length: every one of the 5 rows"):
        prepared(cfg("all_long.jsonl", max_seq_length=32, truncation="drop"), root, tokenizer)


def test_token_stats_and_no_warning_for_clean_data(root: Path, tokenizer: Any) -> None:
    _, _, info = prepared(cfg("history.jsonl"), root, tokenizer)
    tokens = info["tokens"]
    assert 0 < tokens["p50"] <= tokens["p95"] <= tokens["max"]
    assert 0 < tokens["loss_share"] < 0.5
    assert info["warnings"] == []
    assert data.describe(info)[1] == "rows: read 6, used 6, dropped 0, truncated 0"


def test_preview_counts_rows(root: Path, builtin_cache: Path) -> None:
    info: dict[str, Any] = {}
    rows = data.preview(cfg("docs.txt", max_seq_length=16), 2, root, builtin_cache, info)
    assert len(rows) == 2
    assert info["rows"]["read"] == 3
    assert info["tokens"]["max"] <= 16


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="../shared/data is absent")
def test_real_files_lose_no_row(tmp_path: Path, tokenizer: Any) -> None:
    for name in ("alpaca_en_demo.json", "c4_demo.jsonl"):
        shutil.copy(REAL_DATA / name, tmp_path / name)
    _, _, info = prepared(cfg("alpaca_en_demo.json", max_seq_length=4096), tmp_path, tokenizer)
    assert info["rows"]["used"] == info["rows"]["read"]
    assert info["rows"]["dropped"] == {}
    assert info["rows"]["truncated"] == 0
    _, _, info = prepared(cfg("c4_demo.jsonl", max_samples=50, max_seq_length=32768), tmp_path, tokenizer)
    assert info["rows"] == {"read": 50, "used": 50, "dropped": {}, "truncated": 0}


def test_new_fields_are_in_the_form() -> None:
    from sft_ui.web.ui import form

    specs = {spec.name: spec for group in form.form_specs().values() for spec in group}
    assert specs["column_map"].kind == "json"
    assert specs["column_map"].default == "{}"
    assert specs["prompt_template"].choices == ("auto", "chat", "alpaca", "plain")
    assert specs["truncation"].choices == ("cut", "drop")
    names = list(specs)
    values = form.config_to_form(list(specs.values()), {"column_map": {"q": "instruction"}})
    assert values[names.index("column_map")] == '{"q": "instruction"}'
    config = form.form_to_config(list(specs.values()), values)
    assert SFTConfig(**config).column_map == {"q": "instruction"}


@pytest.mark.parametrize(("value", "message"), [
    ("{not json", "must be a JSON object"), ('["a"]', "must be an object"), ({"a": ""}, "non-empty strings"),
    ({"a": "x", "b": "x"}, "two columns map to the same name"), ({"a\x07": "x"}, "control character"),
    ({f"c{i}": f"d{i}" for i in range(40)}, "at most 32 items"),
])
def test_column_map_is_validated(value: Any, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        SFTConfig(column_map=value)


def test_csv_cells_reach_training_as_written(tmp_path: Path) -> None:
    (tmp_path / "cells.csv").write_text("instruction,output\nPad it.,0042\nSay NA.,NA\nSay null.,null\n")
    rows = data.load_source(SFTConfig(dataset_name="cells.csv"), tmp_path).to_list()
    assert [row["output"] for row in rows] == ["0042", "NA", "null"]
