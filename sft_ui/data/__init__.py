"""Data sets: sources (hub, data-root files, built-in), formats -> TRL rows, preview; used by server and worker.

Importing this package stays light (no datasets, transformers or torch): the server uses it for path checks.
"""

from sft_ui.data.accounting import describe
from sft_ui.data.formats import (
    FORMAT_COLUMNS,
    builtin_held_out,
    convert,
    detect_format,
    held_out_rows,
    prepare,
    prompt_style,
)
from sft_ui.data.preview import preview
from sft_ui.data.sources import (
    LOCAL_SUFFIXES,
    DataError,
    check_paths,
    load_model,
    load_source,
    load_tokenizer,
    resolve_model_path,
)
from sft_ui.data.templates import PLAIN_CHAT_TEMPLATE, ensure_chat_template, has_generation

__all__ = [
    "FORMAT_COLUMNS", "LOCAL_SUFFIXES", "PLAIN_CHAT_TEMPLATE", "DataError", "builtin_held_out", "check_paths",
    "convert", "describe", "detect_format", "ensure_chat_template", "has_generation", "held_out_rows", "load_model",
    "load_source", "load_tokenizer",
    "prepare", "preview", "prompt_style", "resolve_model_path",
]
