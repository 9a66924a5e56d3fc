"""Preview: the first rows as the model will see them, with token counts and what the loss covers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sft_ui.config import SFTConfig
from sft_ui.data.formats import convert
from sft_ui.data.sources import load_source, load_tokenizer


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
    rows, _, loss_on, _ = convert(config, source, tokenizer)
    return [_preview_row(row, loss_on, tokenizer, config.max_seq_length) for row in rows.to_list()[:n]]
