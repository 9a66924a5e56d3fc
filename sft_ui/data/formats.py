"""Row formats (messages, ShareGPT, prompt/completion, alpaca, text): detection and conversion to TRL's rows."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sft_ui.config import SFTConfig
from sft_ui.data import cache, turns
from sft_ui.data.sources import DataError, load_source
from sft_ui.data.templates import PLAIN_CHAT_TEMPLATE, ensure_chat_template, has_generation

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
_OPTIONAL = {"messages": ("tools",), "sharegpt": ("system", "tools"), "alpaca": ("input", "system", "history")}
TOOLS_AS_TEXT = "tool calls rendered as plain text turns: the chat template has no tool support"


def detect_format(columns: list[str]) -> str:
    """The row format that the column names imply; DataError listing the columns when none fits."""
    for fmt, needed in FORMAT_COLUMNS.items():
        if all(col in columns for col in needed):
            return fmt
    raise DataError(f"dataset_format: no known format matches the columns {sorted(columns)}; "
                    f"expected one of: {_EXPECTED}; rename yours with column_map")


def _resolve_format(config: SFTConfig, columns: list[str]) -> str:
    """config.dataset_format checked against the columns, or the detected one for auto."""
    if config.dataset_format == "auto":
        return detect_format(columns)
    needed = FORMAT_COLUMNS[config.dataset_format]
    if not all(col in columns for col in needed):
        raise DataError(f"dataset_format: {config.dataset_format} needs the columns {list(needed)} but the data set "
                        f"has {sorted(columns)}; pick the format that matches, auto, or rename with column_map")
    return config.dataset_format


def map_columns(ds: Dataset, column_map: dict[str, str]) -> tuple[Dataset, dict[str, str]]:
    """The data set with column_map's columns renamed, and the rest of the map (keys inside conversation turns)."""
    renames = {k: v for k, v in column_map.items() if k in ds.column_names and k != v}
    clash = [v for v in renames.values() if v in ds.column_names and v not in renames]
    if clash:
        raise DataError(f"column_map: the data set already has a column {clash[0]!r}; map it away first")
    if renames:
        ds = ds.rename_columns(renames)
    return ds, {k: v for k, v in column_map.items() if k not in renames}


def _text(value: Any) -> str | None:
    """A non-empty string (numbers, as CSV files type them, become text), or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:  # NaN is an empty CSV cell
        value = str(value)
    return value if isinstance(value, str) and value.strip() else None


def own_template(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template is one sft-ui gave it (the built-in model's or the plain fallback)."""
    from sft_ui.builtin import CHAT_TEMPLATE, CHATML_TEMPLATE

    return turns.template_text(tokenizer) in (CHAT_TEMPLATE, CHATML_TEMPLATE, PLAIN_CHAT_TEMPLATE, "")


def instruction_style(config: SFTConfig, tokenizer: Any) -> str:
    """How alpaca and prompt/completion rows are written: prompt_template, where auto means chat for a model
    that ships its own chat template, and the alpaca template otherwise (the built-in demo keeps alpaca)."""
    if config.prompt_template != "auto":
        return config.prompt_template
    return "alpaca" if own_template(tokenizer) else "chat"


def _alpaca(row: dict, style: str, eos: str) -> dict[str, Any]:
    """One alpaca row (with system and history) as chat turns or as a prompt/completion pair."""
    from sft_ui.builtin import alpaca_prompt

    instruction, output = _text(row.get("instruction")), _text(row.get("output"))
    if not instruction:
        raise turns.Drop("empty instruction")
    if not output:
        raise turns.Drop("empty output")
    extra, system = _text(row.get("input")) or "", _text(row.get("system"))
    history = turns.history_turns(row.get("history"))
    if style == "chat":
        user = f"{instruction}\n{extra}" if extra else instruction
        head = [{"role": "system", "content": system}] if system else []
        return {"chat": [*head, *history, {"role": "user", "content": user}, {"role": "assistant", "content": output}]}
    pairs = [(history[i]["content"], history[i + 1]["content"]) for i in range(0, len(history), 2)]
    if style == "alpaca":
        earlier = "".join(alpaca_prompt(p) + r + "\n\n" for p, r in pairs)
        prompt = alpaca_prompt(instruction, extra)
        return {"prompt": (system + "\n\n" if system else "") + earlier + prompt, "completion": output + eos}
    earlier = "".join(f"{p}\n{r}\n\n" for p, r in pairs)
    prompt = f"{instruction}\n{extra}" if extra else instruction
    return {"prompt": (system + "\n\n" if system else "") + earlier + prompt, "completion": "\n" + output + eos}


def _row(fmt: str, row: dict, style: str, keys: dict[str, str], notes: Counter, tokenizer: Any) -> dict[str, Any]:
    """One source row as {"text"}, {"prompt", "completion"} or {"chat": turns, "tools"}; Drop names why not."""
    if fmt == "text":
        text = _text(row.get("text"))
        if not text:
            raise turns.Drop("empty text")
        return {"text": text}
    if fmt == "alpaca":
        return _alpaca(row, style, tokenizer.eos_token or "")
    if fmt == "prompt_completion":
        prompt, completion = turns.json_value(row.get("prompt")), turns.json_value(row.get("completion"))
        if isinstance(prompt, list) or isinstance(completion, list):
            reasoning = turns.renders_reasoning(tokenizer)
            before = turns.conversation(prompt, keys, notes, reasoning) if prompt else []
            return {"chat": before + turns.conversation(completion, keys, notes, reasoning), "split": len(before)}
        prompt, completion = _text(prompt), _text(completion)
        if not prompt or not completion:
            raise turns.Drop("empty prompt" if not prompt else "empty completion")
        if style == "chat":
            return {"chat": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]}
        return {"prompt": prompt, "completion": completion}
    key = FORMAT_COLUMNS[fmt][0]
    chat = turns.conversation(row.get(key), keys, notes, turns.renders_reasoning(tokenizer))
    system = _text(row.get("system"))
    if system and chat[0]["role"] != "system":
        chat.insert(0, {"role": "system", "content": system})
    return {"chat": chat, "tools": turns.tools_json(row.get("tools"))}


def _chat_row(item: dict[str, Any], tools_ok: bool, split: bool, notes: Counter) -> dict[str, Any]:
    """A conversation as TRL's messages row, or split at its last reply into a prompt/completion row."""
    chat, tools = item["chat"], item.get("tools")
    uses_tools = tools or any(t.get("tool_calls") or t["role"] == "tool" for t in chat)
    if uses_tools and not tools_ok:
        chat, tools = turns.as_text_turns(chat, tools), None
        notes[TOOLS_AS_TEXT] += 1
    replies = [i for i, t in enumerate(chat) if t["role"] == "assistant"]
    if not replies:
        raise turns.Drop("no assistant reply")
    extra = {"tools": tools} if uses_tools and tools_ok else {}
    if "split" in item:  # conversational prompt/completion rows keep their own split
        if item["split"] == 0 or item["split"] == len(chat):
            raise turns.Drop("empty prompt" if item["split"] == 0 else "empty completion")
        return {"prompt": chat[:item["split"]], "completion": chat[item["split"]:], **extra}
    if not split:
        return {"messages": chat, **extra}
    if replies[-1] == 0:
        raise turns.Drop("reply without a prompt")
    return {"prompt": chat[:replies[-1]], "completion": [chat[replies[-1]]], **extra}


def _convert(fmt: str, rows: list[dict], config: SFTConfig, tokenizer: Any,
             keys: dict[str, str]) -> tuple[list[dict], dict, str, Counter, Counter, str]:
    """Rows in TRL's shape, the trl.SFTConfig loss kwargs, what the loss covers, drops and notes by reason,
    and the prompt style (alpaca, chat or plain)."""
    loss, style = config.completion_only_loss, instruction_style(config, tokenizer)
    generation, tools_ok = has_generation(tokenizer), turns.supports_tools(tokenizer)
    dropped, notes, out = Counter(), Counter(), []
    for row in rows:
        try:
            item = _row(fmt, row, style, keys, notes, tokenizer)
            if "chat" in item:
                item = _chat_row(item, tools_ok, loss and not generation, notes)
        except turns.Drop as exc:
            dropped[str(exc)] += 1
            continue
        out.append(item)
    if any("tools" in item for item in out):  # every row names the column (Dataset.from_list reads the first's keys)
        out = [{**item, "tools": item.get("tools")} for item in out]
    chat = any("messages" in item or isinstance(item.get("prompt"), list) for item in out)
    prompts = "chat" if chat else ("alpaca" if fmt == "alpaca" and style == "alpaca" else "plain")
    if fmt == "text":
        return out, {"completion_only_loss": False, "assistant_only_loss": False}, "all tokens", dropped, notes, prompts
    if any("messages" in item for item in out):
        kwargs = {"completion_only_loss": False, "assistant_only_loss": loss}
        return out, kwargs, ("assistant turns" if loss else "all tokens"), dropped, notes, prompts
    conversational = any(isinstance(item.get("prompt"), list) for item in out)
    loss_on = ("last reply" if fmt in ("messages", "sharegpt") else "response") if loss else "all tokens"
    if conversational and loss and generation:  # conversational prompt/completion: TRL masks the prompt
        loss_on = "response"
    return out, {"completion_only_loss": loss, "assistant_only_loss": False}, loss_on, dropped, notes, prompts


def convert(config: SFTConfig, ds: Dataset, tokenizer: Any,
            info: dict[str, Any] | None = None) -> tuple[Dataset, dict, str, str]:
    """Converted rows as a Dataset, the loss kwargs, what the loss covers, and the format used.

    `info`, when given, receives the columns found, the mapping used, the prompt style, notes and the row counts.
    """
    from datasets import Dataset

    ensure_chat_template(tokenizer)
    columns = list(ds.column_names)
    ds, keys = map_columns(ds, config.column_map)
    fmt = _resolve_format(config, list(ds.column_names))
    rows = ds.to_list()
    out, kwargs, loss_on, dropped, notes, style = _convert(fmt, rows, config, tokenizer, keys)
    if info is not None:
        used = [c for c in (*FORMAT_COLUMNS[fmt], *_OPTIONAL.get(fmt, ())) if c in ds.column_names]
        inverse = {v: k for k, v in config.column_map.items()}
        info.update(dataset_format=fmt, prompt_style=style, columns=columns, loss_on=loss_on,
                    column_map={c: inverse.get(c, c) for c in used}, turn_keys=keys,
                    data_notes=[f"{reason}: {count}" for reason, count in notes.items()],
                    rows={"read": len(rows), "used": len(out), "dropped": dict(dropped), "truncated": 0})
    if not out:
        reasons = ", ".join(f"{r}: {n}" for r, n in dropped.most_common(3))
        raise DataError(f"dataset_format: none of the {len(rows)} rows of {config.dataset_name!r} is a usable {fmt} "
                        f"row ({reasons}); columns: {sorted(columns)}")
    if dropped:
        log.warning("dropped %d of %d %s rows: %s", len(rows) - len(out), len(rows), fmt, dict(dropped))
    return Dataset.from_list(out), kwargs, loss_on, fmt


def prompt_style(fmt: str, rows: Dataset) -> str:
    """How a prompt is written for a model trained on these converted rows: alpaca, chat or plain."""
    first = rows[0] if len(rows) else {}
    if "messages" in first or isinstance(first.get("prompt"), list):
        return "chat"
    return "alpaca" if fmt == "alpaca" and str(first.get("prompt", "")).lstrip().startswith("###") else "plain"


def prepare(config: SFTConfig, data_root: Path, tokenizer: Any, info: dict[str, Any] | None = None,
            cache_dir: Path | None = None) -> tuple[Dataset, Dataset | None, dict]:
    """(train, eval or None, trl.SFTConfig kwargs); gives the tokenizer a chat template if it lacks one.

    `info`, when given, receives the format used (`dataset_format`), how prompts look (`prompt_style`), the
    columns and mapping, and the row accounting (`rows`, `tokens`, `warnings`; accounting.account).
    With `cache_dir`, the rows are kept on disk there, so that TRL's tokenizing is cached for the next job.
    """
    details: dict[str, Any] = {}
    train, kwargs = _measured(config, data_root, tokenizer, details)
    if cache_dir is not None:
        train = cache.on_disk(train, cache_dir / "datasets")
    if info is not None:
        info.update(details)
    if config.eval_dataset.strip():
        evals, eval_details = held_out_rows(config, (config.eval_dataset.strip(), config.eval_dataset_split),
                                            data_root, tokenizer)
        if info is not None:
            info.update(eval_rows=eval_details["rows"])
        return train, evals, kwargs
    if config.eval_split <= 0:
        return train, None, kwargs
    if len(train) < 2:  # eval_split <= 0.5 then leaves at least one training row
        raise DataError(f"eval_split: {len(train)} usable row(s) are too few to hold some out; set eval_split to 0")
    parts = train.train_test_split(test_size=config.eval_split, seed=config.seed)
    return parts["train"], parts["test"], kwargs


def _measured(config: SFTConfig, data_root: Path, tokenizer: Any,
              details: dict[str, Any]) -> tuple[Dataset, dict[str, Any]]:
    """config's rows converted and measured (too long ones cut or dropped and counted in `details`), loss kwargs."""
    from sft_ui.data.accounting import account, measure

    rows, kwargs, loss_on, _ = convert(config, load_source(config, data_root), tokenizer, details)
    keep = account(details, measure(rows.to_list(), loss_on, tokenizer, config.max_seq_length),
                   config.max_seq_length, config.truncation == "drop")
    if len(keep) < len(rows):
        if not keep:
            raise DataError(f"max_seq_length: every one of the {len(rows)} rows is longer than "
                            f"{config.max_seq_length} tokens; raise max_seq_length or set truncation to cut")
        rows = rows.select(keep)
    return rows, kwargs


def builtin_held_out(config: SFTConfig) -> tuple[str, str] | None:
    """(data set, split) of the built-in data set's other split, held out from training on it; else None.

    A job without an eval set still gets its final score from these rows (not periodic evaluations)."""
    from sft_ui.builtin import SPLITS, is_builtin

    name = config.dataset_name.strip()
    others = [split for split in SPLITS if split != config.dataset_split]
    return (name, others[0]) if is_builtin(name) and config.dataset_split in SPLITS and others else None


def held_out_rows(config: SFTConfig, source: tuple[str, str], data_root: Path,
              tokenizer: Any) -> tuple[Dataset, dict[str, Any]]:
    """The rows of an evaluation data set, converted like the training rows; errors name the eval_dataset fields."""
    held = config.model_copy(update={"dataset_name": source[0], "dataset_split": source[1], "max_samples": None})
    details: dict[str, Any] = {}
    try:
        rows, _ = _measured(held, data_root, tokenizer, details)
    except DataError as exc:
        message = str(exc).replace("dataset_name:", "eval_dataset:", 1)
        message = message.replace("dataset_split:", "eval_dataset_split:", 1)
        raise DataError(message if message.startswith("eval_") else f"eval_dataset: {message}") from exc
    return rows, details
