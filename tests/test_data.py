"""sft_ui.data: loading every source and format, validation, eval split, preview."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sft_ui import builtin, data
from sft_ui.config import SFTConfig
from sft_ui.data import DataError
from tests.helpers import small_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

ALPACA = [{"instruction": f"Add {i} and 1.", "input": "" if i % 2 else f"{i}", "output": f"{i + 1}"} for i in range(20)]
CHAT = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Hi {i}"},
     {"role": "assistant", "content": f"Hello {i}"}, {"role": "user", "content": "Bye"},
     {"role": "assistant", "content": "Bye then"}]
    for i in range(20)
]
SHAREGPT = [[{"from": {"system": "system", "user": "human", "assistant": "gpt"}[t["role"]], "value": t["content"]}
             for t in chat] for chat in CHAT]
ROWS = {
    "alpaca": ALPACA,
    "messages": [{"messages": chat} for chat in CHAT],
    "sharegpt": [{"conversations": conv} for conv in SHAREGPT],
    "prompt_completion": [{"prompt": f"Count to {i}:", "completion": " ".join(map(str, range(i + 1)))}
                          for i in range(20)],
    "text": [{"text": f"Line {i} of plain text for language modelling."} for i in range(20)],
}


def write(path: Path, rows: list[dict]) -> Path:
    """Write rows in the file type that path's suffix names."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    elif path.suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path)
    return path


def cfg(name: str, **changes) -> SFTConfig:
    """A config that reads `name` and otherwise keeps the defaults."""
    return SFTConfig(dataset_name=name, **changes)


@pytest.fixture(scope="module", autouse=True)
def fast_builtin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """builtin:tiny-gpt2 as a tokenizer-only folder like the built-in one: its model takes minutes to make."""
    folder = tmp_path_factory.mktemp("fast-builtin")
    small_tokenizer(builtin.CHAT_TEMPLATE, "user assistant system Hello Bye").save_pretrained(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtin, "builtin_model_path", lambda cache_dir: folder)
        yield folder


@pytest.fixture(scope="module")
def tokenizer(fast_builtin: Path, builtin_cache: Path):
    """The built-in tokenizer (ChatML with {% generation %} markers)."""
    return data.load_tokenizer("builtin:tiny-gpt2", builtin_cache, builtin_cache)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data root holding one file per format and file type."""
    for fmt, rows in ROWS.items():
        write(tmp_path / f"{fmt}.jsonl", rows)
        write(tmp_path / f"{fmt}.json", rows)
        write(tmp_path / f"{fmt}.parquet", rows)
    for fmt in ("alpaca", "prompt_completion", "text"):
        write(tmp_path / f"{fmt}.csv", ROWS[fmt])
    return tmp_path


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
@pytest.mark.parametrize("fmt", list(ROWS))
def test_every_file_type_loads_and_detects(root: Path, tokenizer, fmt: str, suffix: str) -> None:
    if suffix == ".csv" and fmt in ("messages", "sharegpt"):
        rows = [{k: json.dumps(v) for k, v in r.items()} for r in ROWS[fmt]]  # conversations as JSON text in CSV
        write(root / f"{fmt}.csv", rows)
    ds = data.load_source(cfg(f"{fmt}{suffix}"), root)
    assert len(ds) == 20
    assert data.detect_format(ds.column_names) == fmt
    train, evals, _ = data.prepare(cfg(f"{fmt}{suffix}", dataset_format=fmt), root, tokenizer)
    assert len(train) == 20
    assert evals is None  # CSV's numbers and JSON-text cells survive


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_prepare_gives_trl_shapes(root: Path, tokenizer, suffix: str) -> None:
    train, _, kw = data.prepare(cfg(f"alpaca{suffix}"), root, tokenizer)
    assert train.column_names == ["prompt", "completion"]
    assert kw["completion_only_loss"] is True
    row = train[1]  # odd rows have an empty input
    assert row["prompt"].startswith("### Instruction:\n")
    assert row["prompt"].endswith("### Response:\n")
    assert "### Input:" not in row["prompt"]
    assert "### Input:\n0" in train[0]["prompt"]
    assert row["completion"] == "2" + tokenizer.eos_token

    train, _, kw = data.prepare(cfg(f"prompt_completion{suffix}"), root, tokenizer)
    assert train[2] == {"prompt": "Count to 2:", "completion": "0 1 2"}
    assert kw["completion_only_loss"] is True

    train, _, kw = data.prepare(cfg(f"text{suffix}"), root, tokenizer)
    assert train.column_names == ["text"]
    assert kw == {"completion_only_loss": False, "assistant_only_loss": False}


@pytest.mark.parametrize("fmt", ["messages", "sharegpt"])
def test_conversations_become_role_content_messages(root: Path, tokenizer, fmt: str) -> None:
    train, _, kw = data.prepare(cfg(f"{fmt}.json"), root, tokenizer)
    assert train.column_names == ["messages"]
    assert train[3]["messages"] == CHAT[3]
    assert kw == {"completion_only_loss": False, "assistant_only_loss": True}
    _, _, kw = data.prepare(cfg(f"{fmt}.json", completion_only_loss=False), root, tokenizer)
    assert kw["assistant_only_loss"] is False


def test_template_without_generation_splits_at_last_reply(root: Path, tokenizer) -> None:
    plain = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = plain.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    train, _, kw = data.prepare(cfg("sharegpt.jsonl"), root, plain)
    assert kw == {"completion_only_loss": True, "assistant_only_loss": False}
    assert train[0]["prompt"] == CHAT[0][:4]
    assert train[0]["completion"] == [CHAT[0][4]]


def test_tokenizer_without_template_gets_one(root: Path, tokenizer) -> None:
    bare = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    bare.chat_template = None
    train, _, kw = data.prepare(cfg("messages.json"), root, bare)
    assert bare.chat_template == data.PLAIN_CHAT_TEMPLATE
    assert kw["assistant_only_loss"] is True
    rendered = bare.apply_chat_template(CHAT[0][:3], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith("### System:\nBe brief.\n\n### User:\nHi 0")
    assert rendered.endswith("### Assistant:\n")
    out = bare.apply_chat_template(CHAT[0], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert 0 < sum(out["assistant_masks"]) < len(out["input_ids"])


def test_conversational_prompt_completion_passes_through(root: Path, tokenizer) -> None:
    rows = [{"prompt": chat[:2], "completion": [chat[2]]} for chat in CHAT]
    write(root / "pc_chat.jsonl", rows)
    train, _, kw = data.prepare(cfg("pc_chat.jsonl"), root, tokenizer)
    assert train[0] == rows[0]
    assert kw["completion_only_loss"] is True


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt", "messages", "prompt_completion", "text"])
def test_explicit_format_must_match_columns(root: Path, tokenizer, fmt: str) -> None:
    other = "text" if fmt != "text" else "alpaca"
    with pytest.raises(DataError, match=r"^dataset_format: .*\[") as err:
        data.prepare(cfg(f"{other}.jsonl", dataset_format=fmt), root, tokenizer)
    assert str(sorted(ROWS[other][0])) in str(err.value)


def test_unknown_columns(root: Path, tokenizer) -> None:
    write(root / "odd.jsonl", [{"foo": 1, "bar": "x"}])
    with pytest.raises(DataError, match=r"^dataset_format: no known format matches the columns \['bar', 'foo'\]"):
        data.prepare(cfg("odd.jsonl"), root, tokenizer)
    with pytest.raises(DataError, match="expected one of: messages"):
        data.detect_format(["question", "answer"])


def test_unusable_rows_are_dropped_or_reported(root: Path, tokenizer) -> None:
    write(root / "holes.jsonl", [{"instruction": "a", "output": ""}, {"instruction": "b", "output": "B"}])
    train, _, _ = data.prepare(cfg("holes.jsonl"), root, tokenizer)
    assert len(train) == 1
    write(root / "empty_out.jsonl", [{"instruction": "a", "output": ""}])
    with pytest.raises(DataError, match="^dataset_format: none of the 1 rows"):
        data.prepare(cfg("empty_out.jsonl"), root, tokenizer)
    (root / "nothing.jsonl").write_text("")
    with pytest.raises(DataError, match="^dataset_name:"):
        data.load_source(cfg("nothing.jsonl"), root)


def test_missing_file_and_unreadable_file(root: Path) -> None:
    with pytest.raises(DataError, match=r"^dataset_name: file not found under the data root: x\.jsonl$"):
        data.load_source(cfg("x.jsonl"), root)
    (root / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"^dataset_name: could not read bad\.json"):
        data.load_source(cfg("bad.json"), root)


@pytest.mark.parametrize("name", ["../x.json", "/etc/passwd.json", "a/../../x.json", "link/alpaca.json"])
def test_paths_that_leave_the_root_are_rejected(root: Path, tmp_path_factory, name: str) -> None:
    outside = tmp_path_factory.mktemp("outside")
    write(outside / "alpaca.json", ALPACA)
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match="^dataset_name: "):
        data.load_source(cfg(name), root)


def test_hub_unreachable_and_bad_ids(root: Path) -> None:
    with pytest.raises(DataError, match="^dataset_name: the hub could not be reached .*builtin:tasks"):
        data.load_source(cfg("tatsu-lab/alpaca"), root)
    for name in ("../secrets", "/etc", "a b"):
        with pytest.raises(DataError, match="^dataset_name: .* neither a hub id"):
            data.load_source(cfg(name), root)
    with pytest.raises(DataError, match="^dataset_name: .*unknown"):
        data.load_source(cfg("builtin:nope"), root)


def test_builtin_dataset(root: Path, tokenizer) -> None:
    train, _, kw = data.prepare(cfg("builtin:tasks"), root, tokenizer)
    assert len(train) > 0
    assert train.column_names == ["prompt", "completion"]
    assert kw["completion_only_loss"]


@pytest.mark.parametrize(("split", "rows", "expect"), [(0.0, 20, None), (0.1, 20, 2), (0.25, 20, 5), (0.5, 3, 2)])
def test_eval_split_sizes(root: Path, tokenizer, split: float, rows: int, expect: int | None) -> None:
    train, evals, _ = data.prepare(cfg("text.jsonl", eval_split=split, max_samples=rows), root, tokenizer)
    assert (None if evals is None else len(evals)) == expect
    assert len(train) + (expect or 0) == rows
    again, _, _ = data.prepare(cfg("text.jsonl", eval_split=split, max_samples=rows), root, tokenizer)
    assert again["text"] == train["text"]  # seeded


def test_eval_split_needs_two_rows(root: Path, tokenizer) -> None:
    with pytest.raises(DataError, match="^eval_split: "):
        data.prepare(cfg("text.jsonl", eval_split=0.2, max_samples=1), root, tokenizer)


def test_max_samples(root: Path) -> None:
    assert len(data.load_source(cfg("alpaca.parquet", max_samples=7), root)) == 7
    assert len(data.load_source(cfg("alpaca.parquet", max_samples=500), root)) == 20


def test_preview_counts_tokens(root: Path, builtin_cache: Path) -> None:
    rows = data.preview(cfg("alpaca.json"), 3, root, builtin_cache)
    assert len(rows) == 3
    for row in rows:
        assert row["loss_on"] == "response"
        assert row["text"] == row["prompt"] + row["response"]
        assert 0 < row["loss_tokens"] < row["tokens"]
    full = data.preview(cfg("alpaca.json", completion_only_loss=False), 1, root, builtin_cache)[0]
    assert full["loss_on"] == "all tokens"
    assert full["loss_tokens"] == full["tokens"]
    chat = data.preview(cfg("sharegpt.jsonl"), 2, root, builtin_cache)
    assert chat[0]["loss_on"] == "assistant turns"
    assert 0 < chat[0]["loss_tokens"] < chat[0]["tokens"]
    assert chat[0]["response"].startswith("Bye then")
    text = data.preview(cfg("text.jsonl"), 1, root, builtin_cache)[0]
    assert text["loss_on"] == "all tokens"
    assert text["tokens"] == text["loss_tokens"] > 0
    short = data.preview(cfg("text.jsonl", max_seq_length=16), 1, root, builtin_cache)[0]
    assert short["tokens"] == 16
    assert short["truncated"]


def test_preview_reports_bad_data_and_model(root: Path, builtin_cache: Path) -> None:
    with pytest.raises(DataError, match="^dataset_name: file not found"):
        data.preview(cfg("nope.jsonl"), 2, root, builtin_cache)
    with pytest.raises(ValueError, match="^base_model: the hub could not be reached"):
        data.preview(cfg("alpaca.json", base_model="gpt2"), 2, root, builtin_cache)


def test_model_path_resolution(root: Path, builtin_cache: Path, tokenizer) -> None:
    builtin = Path(data.resolve_model_path("builtin:tiny-gpt2", root, builtin_cache))
    assert builtin.is_dir()
    shutil.copytree(builtin, root / "models" / "mine")
    assert data.resolve_model_path("models/mine", root, builtin_cache) == str((root / "models" / "mine").resolve())
    assert data.load_tokenizer("models/mine", root, builtin_cache).eos_token == tokenizer.eos_token
    assert data.resolve_model_path("org/model", root, builtin_cache) == "org/model"
    for name in ("../models/mine", "/etc", "builtin:nope"):
        with pytest.raises(ValueError, match="^base_model: "):
            data.resolve_model_path(name, root, builtin_cache)


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="../shared/data is absent")
def test_real_data(tmp_path: Path, builtin_cache: Path, tokenizer) -> None:
    for name in ("alpaca_en_demo.json", "c4_demo.jsonl"):
        shutil.copy(REAL_DATA / name, tmp_path / name)
    source = data.load_source(cfg("alpaca_en_demo.json"), tmp_path)
    assert len(source) == 999
    assert data.detect_format(source.column_names) == "alpaca"
    train, evals, kw = data.prepare(cfg("alpaca_en_demo.json", eval_split=0.1), tmp_path, tokenizer)
    assert len(train) + len(evals) == 999
    assert len(evals) == 100
    assert kw["completion_only_loss"]
    rows = data.preview(cfg("alpaca_en_demo.json", max_seq_length=4096), 5, tmp_path, builtin_cache)
    assert all(0 < r["loss_tokens"] < r["tokens"] for r in rows)
    train, _, kw = data.prepare(cfg("c4_demo.jsonl", max_samples=50), tmp_path, tokenizer)
    assert len(train) == 50
    assert train.column_names == ["text"]
    assert not kw["completion_only_loss"]
