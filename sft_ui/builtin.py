"""The embedded defaults: a tiny causal LM and a small instruction data set, made offline and deterministically."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sft_ui.config import BUILTIN_DATASET, BUILTIN_MODEL

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock; building twice at once is then the caller's problem
    fcntl = None  # type: ignore[assignment]

PREFIX = "builtin:"
MODEL_DIR = "tiny-gpt2"
SPLITS = ("train", "test")

ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n### Response:\n"
ALPACA_PROMPT_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"

# ChatML; the assistant turn sits in {% generation %} so TRL's assistant_only_loss can mask the rest. With `tools`
# the system turn lists them; an assistant's tool calls are <tool_call> JSON lines (in the loss), results are
# `tool` turns (not). Conversations without tools render exactly as plain ChatML.
CHAT_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\\n' }}"
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}{% endif %}"
    "{{ 'You can call these tools:' }}{% for tool in tools %}{{ '\\n' + (tool | tojson) }}{% endfor %}"
    "{{ '<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}"
    "{% if tools and loop.first and message['role'] == 'system' %}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] or '' }}"
    "{% for call in message['tool_calls'] or [] %}{% set f = call['function'] or call %}"
    "{{ ('\\n' if not loop.first or message['content'] else '') + '<tool_call>{\"name\": \"' + f['name'] + "
    "'\", \"arguments\": ' + (f['arguments'] if f['arguments'] is string else (f['arguments'] | tojson)) + "
    "'}</tool_call>' }}{% endfor %}"
    "{{ '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# The template the built-in model had before tools (kept to test the plain-text fallback for tool calls).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
BOS, EOS, PAD, IM_START = "<|endoftext|>", "<|im_end|>", "<|pad|>", "<|im_start|>"

WORDS = (
    "cat dog sun red big top cup map pen box fox hat bus car jam kit log mud net owl pig rat sky toy van web yes "
    "zip ant bee cow elk emu gnu hen yak ape bat arm bed bag bin bun cab cod cot dam den dip dot dug ear egg elf "
    "end fan fig fin fit fly fog fun gap gas gem gum gut hop hub hug hut ice ink ivy jar jet jog key kid lab lap "
    "leg lid lip mat mix mop nap nut oak oar odd oil orb pad pan paw pea pie pin pit pod pot pub rag ram rim rod "
    "rub rug rum sap saw sea set sip sit six ski sob sod spy tab tag tan tap tar tea ten tin tip toe ton tub tug "
    "two urn vat vet wax wig win wit zoo bark barn bell bird boat bolt bone book boot bowl cake calm card cave "
    "chip clay coal coat coin cold cook corn crab crow dart desk dish door dove drum duck dust farm fern fish flag "
    "frog gate gift goat gold golf harp hawk hill horn jade kite lamp leaf lime lion lock loft mask milk mint moon "
    "moth nest note oven palm park pear pine pond rain ring road rock roof rope rose ruby salt sand seed ship shoe "
    "silk snow soap sock star swan tent toad tree tusk vase vine wave wind wing wolf wood yarn apple bread chair "
    "cloud dance eagle flame grape house juice knife lemon mango night ocean piano queen river snake tiger torch "
    "wheat zebra"
).split()
COLORS = "red blue green pink gray gold black white brown orange".split()


def _color_lists() -> list[str]:
    """200 distinct lists of three colours."""
    rng, lists = random.Random(7), {}
    while len(lists) < 200:
        lists[" ".join(rng.sample(COLORS, 3))] = None
    return list(lists)


# name -> (instruction, inputs, answer); each (task, input) pair is one row.
TASKS: dict[str, tuple[str, Callable[[], list[str]], Callable[[str], str]]] = {
    "first": ("What letter does the word start with?", lambda: WORDS, lambda w: w[0]),
    "last": ("What letter does the word end with?", lambda: WORDS, lambda w: w[-1]),
    "upper": ("Upper-case the word.", lambda: WORDS, str.upper),
    "twice": ("Repeat the word twice.", lambda: WORDS, lambda w: f"{w} {w}"),
    "parity": ("Is the number even or odd?", lambda: [str(n) for n in range(100)],
               lambda n: "odd" if int(n) % 2 else "even"),
    "last_word": ("Say the last word.", _color_lists, lambda s: s.split()[-1]),
}
TEST_FRACTION = 0.15

# How the model is made. Its fingerprint is written beside the model; a cached model made otherwise is rebuilt.
MODEL_CONFIG = {"n_layer": 2, "n_embd": 128, "n_head": 4, "n_positions": 512}
PRETRAIN = {"steps": 400, "batch_size": 32, "seq_len": 32, "lr": 3e-3, "warmup": 20, "seed": 0}
FACT_FORMATS = ("{i}\n{x}\n{y}\n", "Q: {i} {x}\nA: {y}\n")  # pre-training text; the SFT teaches alpaca
MARKER = "builtin.json"
# The model as `_build` makes it, shipped in the package (a few MB) so that a fresh clone need not pre-train it.
SHIPPED = Path(__file__).resolve().parent / "assets" / MODEL_DIR
WRITE_SHIPPED = "python -m sft_ui.builtin --write-shipped"


def is_builtin(name: str) -> bool:
    """True for ids of the embedded defaults ('builtin:...')."""
    return name.startswith(PREFIX)


def alpaca_prompt(instruction: str, input: str = "") -> str:  # noqa: A002 - the alpaca column is called input
    """The alpaca prompt for one row; the completion is the output followed by the eos token."""
    if input:
        return ALPACA_PROMPT_INPUT.format(instruction=instruction, input=input)
    return ALPACA_PROMPT.format(instruction=instruction)


def _split_rows() -> dict[str, list[tuple[str, str, str]]]:
    """All (instruction, input, output) rows, shuffled with a fixed seed and cut into train and test."""
    rows = [(instr, x, answer(x)) for instr, inputs, answer in TASKS.values() for x in inputs()]
    random.Random(1234).shuffle(rows)
    n_test = int(len(rows) * TEST_FRACTION)
    return {"test": rows[:n_test], "train": rows[n_test:]}


def builtin_rows(split: str = "train") -> list[dict[str, str]]:
    """The built-in task rows in alpaca form; 'test' is held out from 'train'."""
    if split not in SPLITS:
        raise ValueError(f"dataset_split: the built-in data set {BUILTIN_DATASET} has splits "
                         f"{', '.join(SPLITS)}; got {split!r}")
    return [{"instruction": i, "input": x, "output": y} for i, x, y in _split_rows()[split]]


def resolve_builtin_dataset(name: str, split: str = "train") -> list[dict[str, str]]:
    """The rows of a built-in data set id."""
    if name != BUILTIN_DATASET:
        raise ValueError(f"dataset_name: unknown built-in data set {name!r}; available: {BUILTIN_DATASET}")
    return builtin_rows(split)


def resolve_builtin_model(name: str, cache_dir: str | os.PathLike[str]) -> Path:
    """The folder of a built-in model id, made on first use."""
    if name != BUILTIN_MODEL:
        raise ValueError(f"base_model: unknown built-in model {name!r}; available: {BUILTIN_MODEL}")
    return builtin_model_path(Path(cache_dir))


def _recipe() -> dict[str, object]:
    """What the model is made from, with a fingerprint of everything that shapes its weights."""
    parts = [_split_rows(), FACT_FORMATS, MODEL_CONFIG, PRETRAIN, CHAT_TEMPLATE, _tokenizer_texts()]
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
    return {"model": BUILTIN_MODEL, "config": MODEL_CONFIG, "pretrain": PRETRAIN, "sha256": digest}


def _is_current(folder: Path) -> bool:
    """Whether `folder` holds a complete model made by this recipe."""
    try:
        return json.loads((folder / MARKER).read_text()) == _recipe()
    except (OSError, ValueError):
        return False


def builtin_model_path(cache_dir: Path) -> Path:
    """The built-in model's folder: the shipped one when this recipe made it (nothing is made or written then),
    else one made under `cache_dir` once (safe across processes). Callers only read the folder."""
    if _is_current(SHIPPED):
        return SHIPPED
    dest = Path(cache_dir) / MODEL_DIR
    if _is_current(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{MODEL_DIR}.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_current(dest):  # another process made it while we waited
            return dest
        _build_in_place(dest)
    return dest


def _build_in_place(dest: Path) -> None:
    """Build the model into a temporary folder beside `dest`, then put it in place of `dest`."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR}-", dir=dest.parent))
    try:
        _build(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private
        if dest.exists():  # made by an older recipe
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pretrain_texts(rng: random.Random, n: int) -> list[str]:
    """Facts about the train rows in plain formats, none of them the alpaca one that the SFT teaches."""
    rows = _split_rows()["train"]
    return [rng.choice(FACT_FORMATS).format(i=i, x=x, y=y) for i, x, y in (rng.choice(rows) for _ in range(n))]


def _tokenizer_texts() -> list[str]:
    """The text the BPE learns from: the instructions and the prompt formats, so task words stay near letter level."""
    texts = [alpaca_prompt(instr, "x") for instr, _, _ in TASKS.values()]
    texts += [f"Q: {instr}\nA:" for instr, _, _ in TASKS.values()]
    texts += [f"{IM_START}{role}\n" for role in ("system", "user", "assistant")]
    return texts * 20


def _build(folder: Path) -> None:
    """Train the tokenizer, then pre-train a small GPT-2 on the built-in facts, and save both into `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=[BOS, IM_START, EOS, PAD], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(_tokenizer_texts(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        extra_special_tokens=[IM_START], model_max_length=MODEL_CONFIG["n_positions"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    steps, batch, seq_len = PRETRAIN["steps"], PRETRAIN["batch_size"], PRETRAIN["seq_len"]
    texts = _pretrain_texts(random.Random(PRETRAIN["seed"]), steps * batch * seq_len // 12)
    ids = [token for text in tokenizer(texts)["input_ids"] for token in text]  # one stream, cut into rows
    usable = len(ids) // seq_len * seq_len
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        # One thread: the same weights whatever the core count, and no stalls when other processes share the cores.
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        try:
            torch.manual_seed(PRETRAIN["seed"])
            data = torch.tensor(ids[:usable]).view(-1, seq_len)
            config = GPT2Config(
                vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **MODEL_CONFIG,
            )
            model = GPT2LMHeadModel(config)
            _pretrain(model, data, torch)
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / MARKER).write_text(json.dumps(_recipe()))


def _pretrain(model, data, torch) -> None:  # noqa: ANN001 - torch is imported lazily by the caller
    """Plain causal-LM training: AdamW, linear warm-up then linear decay, gradient clipping."""
    steps, batch, warmup = PRETRAIN["steps"], PRETRAIN["batch_size"], PRETRAIN["warmup"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=PRETRAIN["lr"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (1 - s / steps))
    model.train()
    for _ in range(steps):
        rows = data[torch.randint(0, data.shape[0], (batch,))]
        model(input_ids=rows, labels=rows).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.eval()


def main(argv: list[str] | None = None) -> int:
    """`python -m sft_ui.builtin --write-shipped`: rebuild the shipped model after a change to its recipe."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sft_ui.builtin", description=main.__doc__)
    parser.add_argument("--write-shipped", action="store_true", required=True,
                        help=f"build the built-in model (~25 s) and replace {SHIPPED}")
    parser.parse_args(argv)
    SHIPPED.parent.mkdir(parents=True, exist_ok=True)
    _build_in_place(SHIPPED)
    for path in sorted(SHIPPED.iterdir()):
        print(f"{path.stat().st_size:>10}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
