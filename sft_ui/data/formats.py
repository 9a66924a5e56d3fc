"""Row formats (messages, ShareGPT, prompt/completion, alpaca, text): detection and conversion to TRL's rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sft_ui.config import SFTConfig
from sft_ui.data import cache
from sft_ui.data.sources import DataError, load_source
from sft_ui.data.templates import ensure_chat_template, has_generation

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)

# Detection order matters: alpaca data often also carries a pre-rendered `text` column.
FORMAT_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("instruction", "output"),
    "text": ("text",),
}
_EXPECTED = ", ".join(f"{name} ({', '.join(cols)})" for name, cols in FORMAT_COLUMNS.items())
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
          "bot": "assistant", "system": "system", "tool": "tool"}


def detect_format(columns: list[str]) -> str:
    """The row format that the column names imply; DataError listing the columns when none fits."""
    for fmt, needed in FORMAT_COLUMNS.items():
        if all(col in columns for col in needed):
            return fmt
    raise DataError(f"dataset_format: no known format matches the columns {sorted(columns)}; "
                    f"expected one of: {_EXPECTED}")


def _resolve_format(config: SFTConfig, columns: list[str]) -> str:
    """config.dataset_format checked against the columns, or the detected one for auto."""
    if config.dataset_format == "auto":
        return detect_format(columns)
    needed = FORMAT_COLUMNS[config.dataset_format]
    if not all(col in columns for col in needed):
        raise DataError(f"dataset_format: {config.dataset_format} needs the columns {list(needed)} but the data set "
                        f"has {sorted(columns)}; pick the format that matches or auto")
    return config.dataset_format


def _turns(value: Any, need_reply: bool = True) -> list[dict[str, str]] | None:
    """Normalise role/content or from/value turns to role/content; None when the conversation is unusable."""
    if isinstance(value, str):  # CSV cells hold conversations as JSON text
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, list) or not value:
        return None
    turns = []
    for turn in value:
        if not isinstance(turn, dict):
            return None
        # Arrow gives every turn all keys seen in the column, so a missing one is None rather than absent.
        role = _ROLES.get(str(turn.get("role") or turn.get("from") or "").lower())
        content = turn.get("content") if turn.get("content") is not None else turn.get("value")
        if role is None or not isinstance(content, str):
            return None
        turns.append({"role": role, "content": content})
    return turns if not need_reply or any(t["role"] == "assistant" for t in turns) else None


def _text(value: Any) -> str | None:
    """A non-empty string (numbers, as CSV files type them, become text), or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:  # NaN is an empty CSV cell
        value = str(value)
    return value if isinstance(value, str) and value.strip() else None


def _convert(fmt: str, rows: list[dict], config: SFTConfig, tokenizer: Any) -> tuple[list[dict], dict, str]:
    """Rows in TRL's shape, the trl.SFTConfig loss kwargs, and what the loss covers."""
    from sft_ui.builtin import alpaca_prompt

    eos = tokenizer.eos_token or ""
    loss = config.completion_only_loss
    out: list[dict] = []
    if fmt == "text":
        out = [{"text": t} for row in rows if (t := _text(row.get("text")))]
        return out, {"completion_only_loss": False, "assistant_only_loss": False}, "all tokens"
    if fmt == "alpaca":
        for row in rows:
            instruction, output = _text(row.get("instruction")), _text(row.get("output"))
            if instruction and output:
                extra = _text(row.get("input")) or ""
                out.append({"prompt": alpaca_prompt(instruction, extra), "completion": output + eos})
    elif fmt == "prompt_completion":
        chat = isinstance(next((r["prompt"] for r in rows if r.get("prompt") is not None), None), list)
        for row in rows:
            if chat:
                prompt, completion = _turns(row.get("prompt"), need_reply=False), _turns(row.get("completion"))
            else:
                prompt, completion = _text(row.get("prompt")), _text(row.get("completion"))
            if prompt and completion:
                out.append({"prompt": prompt, "completion": completion})
    else:  # messages, sharegpt
        key = FORMAT_COLUMNS[fmt][0]
        conversations = [t for row in rows if (t := _turns(row.get(key)))]
        if has_generation(tokenizer) or not loss:
            out = [{"messages": t} for t in conversations]
            return out, {"completion_only_loss": False, "assistant_only_loss": loss}, (
                "assistant turns" if loss else "all tokens")
        # No generation markers: split at the last reply so TRL's prompt/completion masking applies.
        for turns in conversations:
            last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
            if last > 0:
                out.append({"prompt": turns[:last], "completion": [turns[last]]})
        return out, {"completion_only_loss": True, "assistant_only_loss": False}, "last reply"
    return out, {"completion_only_loss": loss, "assistant_only_loss": False}, "response" if loss else "all tokens"


def convert(config: SFTConfig, ds: Dataset, tokenizer: Any) -> tuple[Dataset, dict, str, str]:
    """Converted rows as a Dataset, the loss kwargs, what the loss covers, and the format used."""
    from datasets import Dataset

    ensure_chat_template(tokenizer)
    fmt = _resolve_format(config, list(ds.column_names))
    rows = ds.to_list()
    out, kwargs, loss_on = _convert(fmt, rows, config, tokenizer)
    if not out:
        raise DataError(f"dataset_format: none of the {len(rows)} rows of {config.dataset_name!r} is a usable {fmt} "
                        f"row (empty fields, or no assistant reply); columns: {sorted(ds.column_names)}")
    if len(out) < len(rows):
        log.warning("dropped %d of %d %s rows that had empty or unusable fields", len(rows) - len(out), len(rows), fmt)
    return Dataset.from_list(out), kwargs, loss_on, fmt


def prompt_style(fmt: str, rows: Dataset) -> str:
    """How a prompt is written for a model trained on these converted rows: alpaca, chat or plain."""
    if fmt == "alpaca":
        return "alpaca"
    first = rows[0] if len(rows) else {}
    return "chat" if "messages" in first or isinstance(first.get("prompt"), list) else "plain"


def prepare(config: SFTConfig, data_root: Path, tokenizer: Any, info: dict[str, Any] | None = None,
            cache_dir: Path | None = None) -> tuple[Dataset, Dataset | None, dict]:
    """(train, eval or None, trl.SFTConfig kwargs); gives the tokenizer a chat template if it lacks one.

    `info`, when given, receives the format used (`dataset_format`) and how prompts look (`prompt_style`).
    With `cache_dir`, the rows are kept on disk there, so that TRL's tokenizing is cached for the next job.
    """
    train, kwargs, _, fmt = convert(config, load_source(config, data_root), tokenizer)
    if cache_dir is not None:
        train = cache.on_disk(train, cache_dir / "datasets")
    if info is not None:
        info.update(dataset_format=fmt, prompt_style=prompt_style(fmt, train))
    if config.eval_split <= 0:
        return train, None, kwargs
    if len(train) < 2:  # eval_split <= 0.5 then leaves at least one training row
        raise DataError(f"eval_split: {len(train)} usable row(s) are too few to hold some out; set eval_split to 0")
    parts = train.train_test_split(test_size=config.eval_split, seed=config.seed)
    return parts["train"], parts["test"], kwargs
