"""Preview: the first rows as the model will see them, with token counts, what the loss covers and row counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sft_ui.config import SFTConfig
from sft_ui.data.accounting import account, measure, preview_row
from sft_ui.data.formats import convert
from sft_ui.data.sources import load_source, load_tokenizer

COUNTED_ROWS = 1000  # the preview counts drops and truncation over at most this many first rows


def preview(config: SFTConfig, n: int, data_root: Path, cache_dir: Path, info: dict[str, Any] | None = None,
            counted: int = COUNTED_ROWS) -> list[dict]:
    """The first n rows as the model will see them, with token counts and what the loss covers.

    `info`, when given, receives the format, columns and mapping, notes, and `rows`/`tokens` counted over the
    first `counted` rows (as a job counts them over all of its rows).
    """
    tokenizer = load_tokenizer(config.base_model, data_root, cache_dir)
    limit = max(1, n, counted if info is not None else 0)
    limit = limit if config.max_samples is None else min(limit, config.max_samples)
    source = load_source(config.model_copy(update={"max_samples": limit}), data_root)
    details: dict[str, Any] = {}
    rows, _, loss_on, _ = convert(config, source, tokenizer, details)
    converted = rows.to_list()
    if info is not None:
        sizes = measure(converted, loss_on, tokenizer, config.max_seq_length)
        account(details, sizes, config.max_seq_length, config.truncation == "drop")
        info.update(details)
    return [preview_row(row, loss_on, tokenizer, config.max_seq_length) for row in converted[:n]]
