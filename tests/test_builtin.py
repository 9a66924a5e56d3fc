"""The built-in data set and model: rows, splits, errors, and a model made deterministically and safely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sft_ui import builtin
from sft_ui.builtin import (
    BUILTIN_DATASET,
    BUILTIN_MODEL,
    alpaca_prompt,
    builtin_model_path,
    builtin_rows,
    is_builtin,
    resolve_builtin_dataset,
    resolve_builtin_model,
)

ROOT = Path(__file__).resolve().parents[1]
FEW_STEPS = 3  # the model tests check how it is made, not how well it learns: a short pre-training does
MODEL_FILES = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def python(code: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """Start `python -c code args` in the repository with this environment plus `env`."""
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


@pytest.fixture(scope="module")
def few_steps() -> Iterator[None]:
    """Shorten the pre-training for this module's model builds."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(builtin.PRETRAIN, "steps", FEW_STEPS)
        yield


@pytest.fixture(scope="module")
def model_dir(few_steps: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One built model for the loading tests."""
    return builtin_model_path(tmp_path_factory.mktemp("cache"))


# --- data set ---

def test_rows_have_alpaca_form_and_enough_of_them() -> None:
    train, test = builtin_rows("train"), builtin_rows("test")
    assert len(train) >= 1000
    assert 150 <= len(test) <= 250
    for row in train + test:
        assert set(row) == {"instruction", "input", "output"}
        assert all(isinstance(v, str) and v for v in row.values())
    assert builtin_rows() == train


def test_test_split_is_held_out_and_covers_every_task() -> None:
    def keys(rows: list[dict[str, str]]) -> set[tuple[str, str]]:
        return {(r["instruction"], r["input"]) for r in rows}

    train, test = builtin_rows("train"), builtin_rows("test")
    assert not keys(train) & keys(test)
    assert len(keys(train)) == len(train)
    assert len(keys(test)) == len(test)
    instructions = {t[0] for t in builtin.TASKS.values()}
    assert {r["instruction"] for r in test} == {r["instruction"] for r in train} == instructions


def test_rows_are_the_same_in_another_process_and_importing_stays_light() -> None:
    code = ("import json, sys; from sft_ui.builtin import builtin_rows; "
            "assert not {'torch', 'transformers', 'tokenizers'} & set(sys.modules), 'heavy import'; "
            "print(json.dumps([builtin_rows('train'), builtin_rows('test')]))")
    proc = python(code, PYTHONHASHSEED="123")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out) == [builtin_rows("train"), builtin_rows("test")]


def test_examples_of_the_tasks() -> None:
    rows = builtin_rows("train") + builtin_rows("test")
    by_task = {(r["instruction"], r["input"]): r["output"] for r in rows}
    assert by_task[("Upper-case the word.", "cat")] == "CAT"
    assert by_task[("Repeat the word twice.", "cat")] == "cat cat"
    assert by_task[("What letter does the word start with?", "zebra")] == "z"
    assert by_task[("Is the number even or odd?", "7")] == "odd"


def test_alpaca_prompt() -> None:
    assert alpaca_prompt("Say hi.") == "### Instruction:\nSay hi.\n\n### Response:\n"
    assert alpaca_prompt("Reverse the word.", "cat") == (
        "### Instruction:\nReverse the word.\n\n### Input:\ncat\n\n### Response:\n"
    )


def test_builtin_ids_and_their_errors() -> None:
    assert is_builtin(BUILTIN_MODEL)
    assert is_builtin(BUILTIN_DATASET)
    assert is_builtin("builtin:x")
    assert not is_builtin("gpt2")
    assert not is_builtin("data/builtin:x.json")
    assert resolve_builtin_dataset(BUILTIN_DATASET) == builtin_rows()
    assert resolve_builtin_dataset(BUILTIN_DATASET, "test") == builtin_rows("test")
    unknown_model = r"^base_model: unknown built-in model 'builtin:x'; available: builtin:tiny-gpt2$"
    with pytest.raises(ValueError, match=unknown_model):
        resolve_builtin_model("builtin:x", "/nonexistent")
    unknown_data = r"^dataset_name: unknown built-in data set 'builtin:x'; available: builtin:tasks$"
    with pytest.raises(ValueError, match=unknown_data):
        resolve_builtin_dataset("builtin:x")
    with pytest.raises(ValueError, match=r"^dataset_split: .* has splits train, test; got 'validation'$"):
        resolve_builtin_dataset(BUILTIN_DATASET, "validation")


# --- model ---

def test_model_and_tokenizer_load_and_generate(model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (builtin.BOS, builtin.EOS, builtin.PAD)
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    assert model.config.vocab_size == len(tok)
    assert model.config.eos_token_id == tok.eos_token_id
    assert tok.convert_ids_to_tokens(tok(builtin.IM_START)["input_ids"]) == [builtin.IM_START]
    prompt = alpaca_prompt("Upper-case the word.", "cat")
    assert tok.decode(tok(prompt)["input_ids"]) == prompt
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_chat_template_marks_the_assistant_turn(model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    chat = [{"role": "user", "content": "Upper-case the word.\ncat"}, {"role": "assistant", "content": "CAT"}]
    assert "{% generation %}" in tok.chat_template
    assert tok.apply_chat_template(chat, tokenize=False) == (
        "<|im_start|>user\nUpper-case the word.\ncat<|im_end|>\n<|im_start|>assistant\nCAT<|im_end|>\n"
    )
    assert tok.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True).endswith(
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    enc = tok.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    marked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    assert tok.decode(marked) == "CAT<|im_end|>"


def test_a_made_model_is_returned_at_once(model_dir: Path) -> None:
    marker = (model_dir / builtin.MARKER).stat().st_mtime_ns
    start = time.perf_counter()
    assert builtin_model_path(model_dir.parent) == model_dir
    assert resolve_builtin_model(BUILTIN_MODEL, str(model_dir.parent)) == model_dir
    assert time.perf_counter() - start < 0.5
    assert (model_dir / builtin.MARKER).stat().st_mtime_ns == marker


def test_making_is_deterministic_and_leaves_torch_as_it_was(model_dir: Path, tmp_path: Path) -> None:
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    state = torch.random.get_rng_state()
    again = builtin_model_path(tmp_path)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    assert torch.equal(torch.random.get_rng_state(), state)
    for name in MODEL_FILES:
        assert (again / name).read_bytes() == (model_dir / name).read_bytes(), name


def test_a_model_made_by_another_recipe_is_remade(few_steps: None, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first = builtin_model_path(tmp_path)
    old = json.loads((first / builtin.MARKER).read_text())
    monkeypatch.setitem(builtin.PRETRAIN, "steps", FEW_STEPS + 1)
    second = builtin_model_path(tmp_path)
    assert second == first
    assert json.loads((second / builtin.MARKER).read_text()) != old
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny-gpt2.lock", "tiny-gpt2"]  # no temp folders left


def test_two_processes_making_it_at_once_both_get_a_model(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from sft_ui import builtin; "
            f"builtin.PRETRAIN['steps'] = {FEW_STEPS}; print(builtin.builtin_model_path(Path(sys.argv[1])))")
    procs = [python(code, str(tmp_path / "cache")) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == str(tmp_path / "cache" / "tiny-gpt2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "cache" / "tiny-gpt2"
    assert AutoModelForCausalLM.from_pretrained(folder) is not None
    assert AutoTokenizer.from_pretrained(folder)
    assert sorted(p.name for p in folder.parent.iterdir()) == [".tiny-gpt2.lock", "tiny-gpt2"]
