"""Where data and models come from: built-in ids, files and folders under the data root, hub ids; path checks."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sft_ui.config import BUILTIN_MODEL, SFTConfig
from sft_ui.data.templates import ensure_chat_template
from sft_ui.errors import one_line
from sft_ui.settings import private_dir, resolve_inside

if TYPE_CHECKING:
    from datasets import Dataset

LOCAL_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt")
_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
_HUB_ID = re.compile(r"^[A-Za-z0-9_][\w.-]*(/[A-Za-z0-9_][\w.-]*)?$")
_OFFLINE_HINTS = ("couldn't reach", "could not connect", "couldn't connect", "offline", "connection", "resolve host")


class DataError(ValueError):
    """A data set problem described in one line that names the field to change."""


def _cause(exc: BaseException) -> str:
    """First line of an exception, short enough for one message."""
    return one_line(exc, 200)


def _is_offline(exc: BaseException) -> bool:
    """Whether an exception says the hub could not be reached."""
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, ConnectionError) or any(hint in text for hint in _OFFLINE_HINTS)


def _check_hub_id(name: str, field: str) -> None:
    """Reject names that are not hub ids; the loaders would read them as local paths."""
    if not _HUB_ID.match(name) or ".." in name or os.path.exists(name):
        raise DataError(f"{field}: {name!r} is neither a hub id (owner/name), a built-in id nor a data-root path")


def check_paths(config: SFTConfig, data_root: Path) -> None:
    """Refuse at creation what the worker would refuse later: local paths leading out of the data root, odd ids.

    Control characters never get here: SFTConfig refuses them in every text field (config.check_text).
    """
    from sft_ui.builtin import is_builtin

    for field in ("base_model", "dataset_name", "eval_dataset"):
        name = getattr(config, field).strip()
        if is_builtin(name) or not name:  # only eval_dataset may be empty (SFTConfig)
            continue  # an unknown built-in id fails in the worker, naming the ones that exist
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
            if path.suffix.lower() == ".txt":
                ds = Dataset.from_list(text_documents(path))
            elif path.suffix.lower() == ".csv":
                ds = _csv_as_written(path)
            else:
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
                                ".json/.jsonl/.csv/.parquet/.txt file under the data root or builtin:tasks") from exc
            if "unknown split" in str(exc).lower():
                raise DataError(f"dataset_split: {config.dataset_split!r} is not a split of {name!r}: "
                                f"{_cause(exc)}") from exc
            raise DataError(f"dataset_name: could not load {name!r} from the hub: {_cause(exc)}") from exc
    if len(ds) == 0:
        raise DataError(f"dataset_name: {name!r} has no rows")
    if config.max_samples is not None and config.max_samples < len(ds):
        ds = ds.select(range(config.max_samples))
    return ds


def text_blocks(lines: Iterable[str]) -> Iterator[str]:
    """The documents of a .txt file's lines: blocks separated by blank lines (nothing but spaces or tabs).

    The one rule for both the job's rows and the upload library's row count.
    """
    block: list[str] = []
    for line in lines:
        line = line.rstrip("\r\n")
        if line.strip(" \t"):
            block.append(line)
        elif block:
            yield "\n".join(block)
            block = []
    if block:
        yield "\n".join(block)


def text_documents(path: Path) -> list[dict[str, str]]:
    """A .txt file as `text` rows: one document per block of lines separated by blank lines."""
    with open(path, encoding="utf-8") as fh:
        return [{"text": block} for block in text_blocks(fh)]


def _csv_as_written(path: Path) -> Dataset:
    """A CSV file with every cell as the text it holds: pandas would read `0042` as 42.0 and `NA` or `null`
    as a missing value, changing or dropping what a person wrote."""
    import csv

    from datasets import Features, Value, load_dataset

    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    features = Features({column: Value("string") for column in header})
    return load_dataset("csv", data_files=str(path), split="train", features=features, keep_default_na=False)


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


def load_model(base_model: str, data_root: Path, cache_dir: Path, path: str | None = None, **kwargs: Any) -> Any:
    """AutoModelForCausalLM of base_model (or of the folder `path`), never with trust_remote_code; every failure
    is a ValueError naming base_model in one line. `kwargs` go to from_pretrained (dtype, attention, ...)."""
    from transformers import AutoModelForCausalLM

    where = path or resolve_model_path(base_model, data_root, cache_dir)
    try:
        return AutoModelForCausalLM.from_pretrained(where, trust_remote_code=False, **kwargs)
    except Exception as exc:  # every failure becomes one actionable line
        if _is_offline(exc):
            raise ValueError(f"base_model: the hub could not be reached to load {base_model!r}; use "
                             f"{BUILTIN_MODEL} or a model folder under the data root") from exc
        raise ValueError(f"base_model: could not load {base_model!r}: {one_line(exc)}") from exc
