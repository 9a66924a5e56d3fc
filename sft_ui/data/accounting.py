"""Row accounting: each converted row as the model sees it, its token and loss-token counts, and the totals."""

from __future__ import annotations

import json
from typing import Any

WARN_SHARE = 0.05  # a job that drops or cuts more than this share of its rows gets a warning


def apply_chat(tokenizer: Any, turns: list, tools: Any, **kwargs: Any) -> Any:
    """apply_chat_template with the row's tools (a JSON list string, as the rows keep them)."""
    tools = json.loads(tools) if isinstance(tools, str) else tools
    return tokenizer.apply_chat_template(turns, tools=tools or None, **kwargs)


def token_ids(tokenizer: Any, value: str | list, tools: Any = None, **kwargs: Any) -> list[int]:
    """Token ids the way TRL computes them: the chat template for turns, the tokenizer for text."""
    if isinstance(value, list):
        return list(apply_chat(tokenizer, value, tools, tokenize=True, return_dict=True, **kwargs)["input_ids"])
    return list(tokenizer(text=value)["input_ids"])


def view(row: dict, loss_on: str, tokenizer: Any, texts: bool = True) -> dict[str, Any]:
    """One converted row: prompt/response/text (with `texts`), its token ids and its loss mask (before cutting)."""
    eos, tools = tokenizer.eos_token or "", row.get("tools")
    prompt = text = ""
    if row.get("text") is not None:
        text = row["text"] if row["text"].endswith(eos) else row["text"] + eos
        ids, mask = token_ids(tokenizer, text), None
    elif row.get("messages") is not None:
        turns = row["messages"]
        last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
        if texts:
            text = apply_chat(tokenizer, turns, tools, tokenize=False)
            prompt = apply_chat(tokenizer, turns[:last], tools, tokenize=False, add_generation_prompt=True)
        done = apply_chat(tokenizer, turns, tools, tokenize=True, return_dict=True,
                     return_assistant_tokens_mask=loss_on == "assistant turns")
        ids, mask = list(done["input_ids"]), done.get("assistant_masks")
    else:
        chat, completion = isinstance(row["prompt"], list), row["completion"]
        if not chat and not completion.endswith(eos):
            completion += eos
        if chat:
            if texts:
                prompt = apply_chat(tokenizer, row["prompt"], tools, tokenize=False, add_generation_prompt=True)
                text = apply_chat(tokenizer, row["prompt"] + completion, tools, tokenize=False)
            prompt_ids = token_ids(tokenizer, row["prompt"], tools, add_generation_prompt=True)
            ids = token_ids(tokenizer, row["prompt"] + completion, tools)
        else:
            prompt, text = row["prompt"], row["prompt"] + completion
            prompt_ids, ids = token_ids(tokenizer, prompt), token_ids(tokenizer, text)
        # The completion starts where the two tokenisations diverge (TRL's common_prefix_length).
        pairs = enumerate(zip(prompt_ids, ids, strict=False))
        start = next((i for i, (a, b) in pairs if a != b), min(len(prompt_ids), len(ids)))
        mask = [0] * start + [1] * (len(ids) - start)
    if loss_on == "all tokens" or mask is None:
        mask = [1] * len(ids)
    return {"prompt": prompt, "text": text, "ids": ids, "mask": list(mask)}


def preview_row(row: dict, loss_on: str, tokenizer: Any, max_len: int) -> dict[str, Any]:
    """One converted row as prompt/response/text with token and loss-token counts after truncation."""
    seen = view(row, loss_on, tokenizer)
    prompt, text, ids = seen["prompt"], seen["text"], seen["ids"]
    out = {"prompt": prompt, "response": text[len(prompt):] if text.startswith(prompt) else text, "text": text,
           "tokens": min(len(ids), max_len), "loss_tokens": int(sum(seen["mask"][:max_len])), "loss_on": loss_on,
           "truncated": len(ids) > max_len, "loss_spans": loss_spans(tokenizer, ids[:max_len], seen["mask"][:max_len])}
    if row.get("tools"):
        out["tools"] = row["tools"]
    return out


def loss_spans(tokenizer: Any, ids: list[int], mask: list[int]) -> list[str]:
    """The text of each run of tokens that carries loss, in order: where the loss goes in a row."""
    spans, start = [], None
    for i, flag in enumerate([*mask, 0]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append(tokenizer.decode(ids[start:i]))
            start = None
    return spans


def measure(rows: list[dict], loss_on: str, tokenizer: Any, max_len: int) -> list[tuple[int, int]]:
    """(tokens before cutting, loss tokens after cutting at max_len) of every row."""
    sizes = []
    for row in rows:
        seen = view(row, loss_on, tokenizer, texts=False)
        sizes.append((len(seen["ids"]), int(sum(seen["mask"][:max_len]))))
    return sizes


def _percentile(values: list[int], share: float) -> int:
    """The nearest-rank percentile of sorted values."""
    return values[min(len(values) - 1, max(0, round(share * len(values)) - 1))] if values else 0


def account(info: dict[str, Any], sizes: list[tuple[int, int]], max_len: int, drop_long: bool) -> list[int]:
    """Fill info's rows (truncated, or dropped 'too long'), tokens and warnings; the indices of the rows kept."""
    rows = info["rows"]
    long = [i for i, (n, _) in enumerate(sizes) if n > max_len]
    keep = [i for i, (n, _) in enumerate(sizes) if n <= max_len] if drop_long else list(range(len(sizes)))
    if drop_long and long:
        rows["dropped"]["too long"] = len(long)
        rows["used"] = len(keep)
    else:
        rows["truncated"] = len(long)
    lengths = sorted(min(sizes[i][0], max_len) for i in keep)
    loss = sum(sizes[i][1] for i in keep)
    info["tokens"] = {"p50": _percentile(lengths, 0.5), "p95": _percentile(lengths, 0.95),
                      "max": lengths[-1] if lengths else 0,
                      "loss_share": round(loss / sum(lengths), 4) if sum(lengths) else 0.0}
    info["warnings"] = warnings(rows)
    return keep


def warnings(rows: dict[str, Any]) -> list[str]:
    """A warning when more than 5 % of the rows read were dropped or cut, naming the reasons."""
    read, lost = rows["read"], sum(rows["dropped"].values()) + rows["truncated"]
    if not read or lost / read <= WARN_SHARE:
        return []
    parts = [f"{reason}: {count}" for reason, count in rows["dropped"].items()]
    parts += [f"truncated at max_seq_length: {rows['truncated']}"] if rows["truncated"] else []
    return [f"{lost} of {read} rows ({lost / read:.0%}) were dropped or truncated ({', '.join(parts)}); "
            "see the data preview, column_map, max_seq_length and truncation"]


def describe(info: dict[str, Any]) -> list[str]:
    """The data lines of a job's log: format and mapping, row counts, token lengths, notes and warnings."""
    rows, tokens = info.get("rows") or {}, info.get("tokens") or {}
    lines = [f"data: {info.get('dataset_format')} rows from the columns {info.get('columns')}, mapped "
             f"{info.get('column_map')}; prompts: {info.get('prompt_style')}; loss on {info.get('loss_on')}"]
    if rows:
        lines.append(f"rows: read {rows['read']}, used {rows['used']}, dropped {rows['dropped'] or 0}, "
                     f"truncated {rows['truncated']}")
    if tokens:
        lines.append(f"tokens per row: p50 {tokens['p50']}, p95 {tokens['p95']}, max {tokens['max']}; "
                     f"loss on {tokens['loss_share']:.0%} of them")
    lines += [f"note: {note}" for note in info.get("data_notes", [])]
    return lines + [f"warning: {text}" for text in info.get("warnings", [])]
