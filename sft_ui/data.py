"""Load a data set (hub id, local file, built-in), shape its rows the way TRL's SFTTrainer takes them, preview."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sft_ui import datacache
from sft_ui.config import BUILTIN_MODEL, SFTConfig
from sft_ui.settings import private_dir, resolve_inside

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)

LOCAL_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
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
_HUB_ID = re.compile(r"^[A-Za-z0-9_][\w.-]*(/[A-Za-z0-9_][\w.-]*)?$")
_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")  # the test TRL applies before assistant_only_loss
_OFFLINE_HINTS = ("couldn't reach", "could not connect", "couldn't connect", "offline", "connection", "resolve host")

# Plain-text template for tokenizers that ship none; the {% generation %} block lets TRL mask all but the replies.
PLAIN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if not loop.first %}{{ '\\n\\n' }}{% endif -%}"
    "{{- '### ' + message['role'] | capitalize + ':\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{- message['content'] + (eos_token or '') -}}{% endgeneration %}"
    "{%- else -%}{{- message['content'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- ('\\n\\n' if messages else '') + '### Assistant:\\n' -}}{%- endif -%}"
)


class DataError(ValueError):
    """A data set problem described in one line that names the field to change."""


def _cause(exc: BaseException) -> str:
    """First line of an exception, short enough for one message."""
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else type(exc).__name__)


def _is_offline(exc: BaseException) -> bool:
    """Whether an exception says the hub could not be reached."""
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, ConnectionError) or any(hint in text for hint in _OFFLINE_HINTS)


def _check_hub_id(name: str, field: str) -> None:
    """Reject names that are not hub ids; the loaders would read them as local paths."""
    if not _HUB_ID.match(name) or ".." in name or os.path.exists(name):
        raise DataError(f"{field}: {name!r} is neither a hub id (owner/name), a built-in id nor a data-root path")


def check_paths(config: SFTConfig, data_root: Path) -> None:
    """Refuse at creation what the worker would refuse later: local paths leading out of the data root, odd ids."""
    from sft_ui.builtin import is_builtin

    for field in ("base_model", "dataset_name"):
        name = getattr(config, field).strip()
        if is_builtin(name):
            continue  # an unknown built-in id fails in the worker, naming the ones that exist
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise DataError(f"{field}: must not contain control characters")
        local = field == "base_model" or name.lower().endswith(LOCAL_SUFFIXES)
        path = resolve_inside(data_root, name, field) if local else None  # ValueError naming the field
        if path is not None and _is_private(path, data_root):
            raise DataError(f"{field}: {name!r} is one of the server's own files, not a model or data set")
        if path is None or (field == "base_model" and not _is_dir(path)):
            if not _HUB_ID.match(name) or ".." in name:
                raise DataError(f"{field}: {name!r} is neither a hub id (owner/name), a built-in id nor a "
                                "data-root path")


def _is_private(path: Path, data_root: Path) -> bool:
    """True for the server's own files: its private folder, and the database where older versions kept it."""
    private = private_dir(data_root.resolve())
    legacy_database = path.parent == data_root.resolve() and path.name.startswith("sft_ui.json")
    return path == private or private in path.parents or legacy_database


def _is_dir(path: Path) -> bool:
    """Path.is_dir, False also for names the file system cannot hold (too long)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def load_source(config: SFTConfig, data_root: Path) -> Dataset:
    """The raw rows of config.dataset_name (built-in, local file or hub id), cut to max_samples."""
    from datasets import Dataset, load_dataset

    from sft_ui.builtin import is_builtin, resolve_builtin_dataset

    name = config.dataset_name.strip()
    if is_builtin(name):
        try:
            ds = Dataset.from_list(resolve_builtin_dataset(name, config.dataset_split))
        except ValueError as exc:
            raise DataError(str(exc)) from exc
    elif name.lower().endswith(LOCAL_SUFFIXES):
        try:
            path = resolve_inside(data_root, name, "dataset_name")
        except ValueError as exc:
            raise DataError(str(exc)) from exc
        if not path.is_file():
            raise DataError(f"dataset_name: file not found under the data root: {name}")
        try:
            ds = load_dataset(_BUILDERS[path.suffix.lower()], data_files=str(path), split="train")
        except Exception as exc:  # any parse failure is the file's fault
            raise DataError(f"dataset_name: could not read {name}: {_cause(exc)}") from exc
    else:
        _check_hub_id(name, "dataset_name")
        try:
            ds = load_dataset(name, split=config.dataset_split)
        except Exception as exc:  # every failure becomes one actionable line
            if _is_offline(exc):
                raise DataError(f"dataset_name: the hub could not be reached to load {name!r}; use a local "
                                ".json/.jsonl/.csv/.parquet file under the data root or builtin:tasks") from exc
            if "unknown split" in str(exc).lower():
                raise DataError(f"dataset_split: {config.dataset_split!r} is not a split of {name!r}: "
                                f"{_cause(exc)}") from exc
            raise DataError(f"dataset_name: could not load {name!r} from the hub: {_cause(exc)}") from exc
    if len(ds) == 0:
        raise DataError(f"dataset_name: {name!r} has no rows")
    if config.max_samples is not None and config.max_samples < len(ds):
        ds = ds.select(range(config.max_samples))
    return ds


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


def ensure_chat_template(tokenizer: Any) -> Any:
    """Give a tokenizer without a chat template (e.g. gpt2) a plain-text one; returns the tokenizer."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    return tokenizer


def _has_generation(tokenizer: Any) -> bool:
    """Whether the chat template marks assistant turns with {% generation %}, which assistant_only_loss needs."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = template.get("default", "")
    return bool(_GENERATION.search(template))


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
        if _has_generation(tokenizer) or not loss:
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


def _rows(config: SFTConfig, ds: Dataset, tokenizer: Any) -> tuple[Dataset, dict, str, str]:
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
    train, kwargs, _, fmt = _rows(config, load_source(config, data_root), tokenizer)
    if cache_dir is not None:
        train = datacache.on_disk(train, cache_dir / "datasets")
    if info is not None:
        info.update(dataset_format=fmt, prompt_style=prompt_style(fmt, train))
    if config.eval_split <= 0:
        return train, None, kwargs
    if len(train) < 2:  # eval_split <= 0.5 then leaves at least one training row
        raise DataError(f"eval_split: {len(train)} usable row(s) are too few to hold some out; set eval_split to 0")
    parts = train.train_test_split(test_size=config.eval_split, seed=config.seed)
    return parts["train"], parts["test"], kwargs


def resolve_model_path(base_model: str, data_root: Path, cache_dir: Path) -> str:
    """Where from_pretrained loads base_model: the built-in folder, a folder under the data root, or the hub id."""
    from sft_ui.builtin import is_builtin, resolve_builtin_model

    name = base_model.strip()
    if is_builtin(name):
        return str(resolve_builtin_model(name, cache_dir))
    folder = resolve_inside(data_root, name, "base_model")
    if folder.is_dir():
        return str(folder)
    try:
        _check_hub_id(name, "base_model")
    except DataError as exc:
        raise ValueError(str(exc)) from None
    return name


def load_tokenizer(base_model: str, data_root: Path, cache_dir: Path) -> Any:
    """The tokenizer of base_model (never trust_remote_code), with a chat template."""
    from transformers import AutoTokenizer

    path = resolve_model_path(base_model, data_root, cache_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:  # every failure becomes one actionable line
        if _is_offline(exc):
            raise ValueError(f"base_model: the hub could not be reached to load {base_model!r}; use "
                             f"{BUILTIN_MODEL} or a model folder under the data root") from exc
        raise ValueError(f"base_model: could not load the tokenizer of {base_model!r}: {_cause(exc)}") from exc
    return ensure_chat_template(tokenizer)


def _ids(tokenizer: Any, value: str | list) -> list[int]:
    """Token ids the way TRL computes them: the chat template for turns, the tokenizer for text."""
    if isinstance(value, list):
        return list(tokenizer.apply_chat_template(value, tokenize=True, return_dict=True)["input_ids"])
    return list(tokenizer(text=value)["input_ids"])


def _render(tokenizer: Any, turns: list, generation_prompt: bool = False) -> str:
    """Conversation turns as the chat template writes them."""
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=generation_prompt)


def _preview_row(row: dict, loss_on: str, tokenizer: Any, max_len: int) -> dict:
    """One converted row as prompt/response/text with token and loss-token counts after truncation."""
    eos = tokenizer.eos_token or ""
    if "text" in row:
        text = row["text"] if row["text"].endswith(eos) else row["text"] + eos
        prompt, ids, mask = "", _ids(tokenizer, text), None
    elif "messages" in row:
        turns = row["messages"]
        last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
        text, prompt = _render(tokenizer, turns), _render(tokenizer, turns[:last], generation_prompt=True)
        done = tokenizer.apply_chat_template(turns, tokenize=True, return_dict=True,
                                             return_assistant_tokens_mask=loss_on == "assistant turns")
        ids, mask = list(done["input_ids"]), done.get("assistant_masks")
    else:
        chat = isinstance(row["prompt"], list)
        completion = row["completion"]
        if not chat and not completion.endswith(eos):
            completion += eos
        if chat:
            prompt, text = _render(tokenizer, row["prompt"], True), _render(tokenizer, row["prompt"] + completion)
            prompt_ids = list(tokenizer.apply_chat_template(row["prompt"], tokenize=True, return_dict=True,
                                                            add_generation_prompt=True)["input_ids"])
            ids = _ids(tokenizer, row["prompt"] + completion)
        else:
            prompt, text = row["prompt"], row["prompt"] + completion
            prompt_ids, ids = _ids(tokenizer, prompt), _ids(tokenizer, text)
        # The completion starts where the two tokenisations diverge (TRL's common_prefix_length).
        pairs = enumerate(zip(prompt_ids, ids, strict=False))
        start = next((i for i, (a, b) in pairs if a != b), min(len(prompt_ids), len(ids)))
        mask = [0] * start + [1] * (len(ids) - start)
    if loss_on == "all tokens" or mask is None:
        mask = [1] * len(ids)
    return {"prompt": prompt, "response": text[len(prompt):] if text.startswith(prompt) else text, "text": text,
            "tokens": min(len(ids), max_len), "loss_tokens": int(sum(mask[:max_len])), "loss_on": loss_on,
            "truncated": len(ids) > max_len}


def preview(config: SFTConfig, n: int, data_root: Path, cache_dir: Path) -> list[dict]:
    """The first n rows as the model will see them, with token counts and what the loss covers."""
    tokenizer = load_tokenizer(config.base_model, data_root, cache_dir)
    limit = max(1, n) if config.max_samples is None else min(max(1, n), config.max_samples)
    source = load_source(config.model_copy(update={"max_samples": limit}), data_root)
    rows, _, loss_on, _ = _rows(config, source, tokenizer)
    return [_preview_row(row, loss_on, tokenizer, config.max_seq_length) for row in rows.to_list()[:n]]
