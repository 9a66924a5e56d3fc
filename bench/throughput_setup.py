"""Set-up for bench/throughput.py: a randomly initialised Llama made offline, and data sets of varied row lengths."""

from __future__ import annotations

import json
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

LLAMAS: dict[str, dict[str, int]] = {
    # ~0.50B parameters: a Llama at a real small size (untied 32k-vocab embeddings and head).
    "llama-0.5b": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "intermediate_size": 4864,
        "vocab_size": 32000,
    },
    "llama-tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 172,
        "vocab_size": 1024,
    },
}


def build_llama(name: str, data_root: Path, cache_dir: Path) -> str:
    """Make (once) a randomly initialised Llama of shape LLAMAS[name] under the data root; returns its relative path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sft_ui import data
    from sft_ui.config import BUILTIN_MODEL

    rel = f"models/{name}"
    folder = data_root / rel
    marker = {"shape": LLAMAS[name], "seed": 0}
    if (folder / "bench.json").is_file() and json.loads((folder / "bench.json").read_text()) == marker:
        return rel
    tokenizer = data.load_tokenizer(BUILTIN_MODEL, data_root, cache_dir)
    config = LlamaConfig(
        **LLAMAS[name],
        max_position_embeddings=8192,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    began = time.monotonic()
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "bench.json").write_text(json.dumps(marker))
    params = sum(p.numel() for p in model.parameters())
    print(f"made {rel}: {params / 1e6:,.1f}M parameters in {time.monotonic() - began:.0f} s", flush=True)
    return rel


def build_rows(tokenizer: Any, seq_len: int, n_rows: int, seed: int = 0) -> tuple[list[dict[str, str]], list[int]]:
    """Alpaca rows of varied length (uniform in [L/8, L] tokens), each several built-in tasks joined; and lengths."""
    from sft_ui.builtin import alpaca_prompt, builtin_rows

    tasks = builtin_rows("train")
    facts = [f"{r['instruction']} {r['input']} -> {r['output']}".replace("  ", " ") for r in tasks]
    rng = random.Random(seed)
    eos = tokenizer.eos_token or ""

    def length(row: dict[str, str]) -> int:
        return len(tokenizer(alpaca_prompt(row["instruction"], row["input"]) + row["output"] + eos)["input_ids"])

    rows, lengths = [], []
    for _ in range(n_rows):
        target = rng.randint(max(1, seq_len // 8), seq_len - 4)  # a few tokens of margin for TRL's own tokenising
        last = rng.choice(tasks)
        picked: list[str] = []
        row = {"instruction": last["instruction"], "input": last["input"], "output": last["output"]}
        size = length(row)
        while size < target:  # grow a fact at a time; cheap enough for a few hundred rows
            picked.append(rng.choice(facts))
            row["instruction"] = "\n".join([*picked, last["instruction"]])
            size = length(row)
        while size > seq_len - 4 and picked:
            picked.pop()
            row["instruction"] = "\n".join([*picked, last["instruction"]])
            size = length(row)
        rows.append(row)
        lengths.append(size)
    return rows, lengths


def prepare(
    model: str, seq_lengths: list[int], steps: int, batch_size: int, data_root: Path
) -> tuple[str, dict[int, str], str]:
    """The base_model id, a data set file per sequence length, and a sentence describing the data."""
    from sft_ui import data, settings

    cache_dir = settings.cache_dir(data_root)
    if model == "builtin":
        base_model = "builtin:tiny-gpt2"
    elif model in LLAMAS:
        base_model = build_llama(model, data_root, cache_dir)
    else:
        base_model = f"models/{Path(model).name}"  # a model folder, linked under the data root (throughput.main)
    tokenizer = data.load_tokenizer(base_model, data_root, cache_dir)
    n_rows = max(256, 3 * (steps + 2) * batch_size)
    files, described = {}, []
    for seq_len in seq_lengths:
        rows, lengths = build_rows(tokenizer, seq_len, n_rows)
        name = f"bench-throughput/rows-{seq_len}.jsonl"
        (data_root / name).parent.mkdir(parents=True, exist_ok=True)
        (data_root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        files[seq_len] = name
        batches = [lengths[i : i + batch_size] for i in range(0, len(lengths), batch_size)]
        waste = 1 - sum(lengths) / sum(max(b) * len(b) for b in batches)
        described.append(
            f"L={seq_len}: {len(rows)} rows of {min(lengths)}-{max(lengths)} tokens, mean "
            f"{statistics.mean(lengths):.0f}, so a padded batch of {batch_size} is ~{waste:.0%} "
            "padding"
        )
    text = (
        "Each sequence length L gets its own data set: alpaca rows made of several built-in task rows joined "
        "(the built-in rows alone are 25-43 tokens, too short for L to matter), to a length drawn uniformly "
        f"from L/8 to L, so that padding and packing behave as with real, varied SFT data. {'; '.join(described)}."
    )
    return base_model, files, text
