"""The playground: a job's base and tuned answers side by side, with one job's models loaded at a time.

Generation runs in the server process, in the calling thread (FastAPI and Gradio run these calls in worker
threads, never on the event loop). torch, transformers and peft are imported on the first call only, so the
server still starts without them. One job's models stay loaded between calls: picking another job releases
them, and so does IDLE seconds without use (or, on a single GPU, a training job that needs the GPU).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sft_ui import settings
from sft_ui.artifacts import is_adapter, saved_model
from sft_ui.builtin import builtin_rows
from sft_ui.config import BUILTIN_DATASET, check_text
from sft_ui.data.templates import format_prompt
from sft_ui.manager import JobManager, StateError
from sft_ui.status import JobStatus

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 1024
MAX_PROMPT_CHARS = 20_000
STYLES = ("alpaca", "chat", "plain")
_FORMAT_STYLES = {"alpaca": "alpaca", "messages": "chat", "sharegpt": "chat"}
EXAMPLES = 5  # example prompts offered per job
_EXAMPLE_ROWS = 50  # rows of a data file read to find them
_TEXT_HEAD = 200  # characters of a text row's opening offered as a prompt


def idle_seconds() -> float:
    """How long loaded models stay without use (`SFT_UI_PLAYGROUND_IDLE_SECONDS`, default 600)."""
    return settings.playground_idle_seconds()


def prompt_style(record: dict[str, Any]) -> str:
    """How the job's training wrote prompts: recorded by the run, else read from its config."""
    style = (record.get("result") or {}).get("prompt_style")
    if style in STYLES:
        return style
    config = record.get("config") or {}
    if config.get("prompt_template") in STYLES and config.get("dataset_format") in ("alpaca", "prompt_completion"):
        return config["prompt_template"]
    if config.get("dataset_format") == "auto" and config.get("dataset_name") == BUILTIN_DATASET:
        return "alpaca"
    return _FORMAT_STYLES.get(config.get("dataset_format", ""), "plain")


def example(record: dict[str, Any]) -> tuple[str, str]:
    """(prompt, input) of a held-out task to try, for jobs trained on the built-in data set; else empty."""
    if (record.get("config") or {}).get("dataset_name") != BUILTIN_DATASET:
        return "", ""
    row = builtin_rows("test")[0]
    return row["instruction"], row["input"]


def examples(record: dict[str, Any], data_root: Path, n: int = EXAMPLES) -> list[tuple[str, str]]:
    """(prompt, input) of up to `n` tasks to try: the built-in data set's held-out rows, else the first rows of the
    job's local data file (its column_map applied); [] for a hub data set or a file that cannot be read."""
    config = record.get("config") or {}
    name = str(config.get("dataset_name") or "").strip()
    rows = builtin_rows("test") if name == BUILTIN_DATASET else _first_rows(name, data_root)
    column_map = config.get("column_map") or {}
    found: list[tuple[str, str]] = []
    for row in rows:
        task = row_task({column_map.get(key, key): value for key, value in row.items()})
        if task is not None and task not in found:
            found.append(task)
        if len(found) >= n:
            break
    return found


def _first_rows(name: str, data_root: Path) -> list[dict[str, Any]]:
    """The first rows of a local data file under `data_root` as written; [] for anything else."""
    from sft_ui.data import peek

    if not name.lower().endswith(peek.SUFFIXES):
        return []
    try:
        return peek.first_rows(settings.resolve_inside(data_root, name, "dataset_name"), _EXAMPLE_ROWS)
    except (ValueError, OSError):  # outside the data root, missing, or unreadable (peek.Unreadable)
        return []


def row_task(row: dict[str, Any]) -> tuple[str, str] | None:
    """(prompt, input) that a data row asks (alpaca, prompt/completion, messages, ShareGPT or text); None if none."""
    if isinstance(row.get("instruction"), str) and row["instruction"].strip():
        extra = row.get("input")
        return _cut(row["instruction"]), _cut(extra) if isinstance(extra, str) else ""
    for key in ("prompt", "messages", "conversations"):
        value = row.get(key)
        text = value if key == "prompt" and isinstance(value, str) else _first_user_turn(value)
        if text and text.strip():
            return _cut(text), ""
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    body = text.strip()  # a plain text row: its opening words, for the model to continue
    head = body[:_TEXT_HEAD]
    if len(body) > _TEXT_HEAD and " " in head:
        head = head.rsplit(None, 1)[0]  # not a word cut in half
    return head, ""


def _first_user_turn(turns: Any) -> str | None:
    """The content of the first user turn of a conversation (OpenAI/HF messages or ShareGPT), as text."""
    if not isinstance(turns, list):
        return None
    for turn in turns:
        if not isinstance(turn, dict) or str(turn.get("role", turn.get("from", ""))).lower() not in ("user", "human"):
            continue
        content = turn.get("content", turn.get("value"))
        if isinstance(content, list):  # content parts: their text
            content = "\n".join(part["text"] for part in content
                                if isinstance(part, dict) and isinstance(part.get("text"), str))
        return content if isinstance(content, str) else None
    return None


def _cut(text: str) -> str:
    """At most MAX_PROMPT_CHARS characters."""
    return text[:MAX_PROMPT_CHARS]


def check_settings(prompt: Any, max_new_tokens: Any, temperature: Any, top_p: Any, input: Any) -> None:  # noqa: A002
    """ValueError naming the first setting out of bounds."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt: must be a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS or not isinstance(input, str) or len(input) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompt: at most {MAX_PROMPT_CHARS} characters (prompt and input each)")
    check_text(prompt, "prompt", multiline=True)
    check_text(input, "input", multiline=True)
    whole = isinstance(max_new_tokens, int) and not isinstance(max_new_tokens, bool)
    if not whole or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise ValueError(f"max_new_tokens: must be a whole number from 1 to {MAX_NEW_TOKENS}, got {max_new_tokens!r}")
    if not isinstance(temperature, int | float) or not 0.0 <= temperature <= 2.0:
        raise ValueError(f"temperature: must be from 0 (greedy) to 2, got {temperature!r}")
    if not isinstance(top_p, int | float) or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p: must be above 0 and at most 1, got {top_p!r}")


@dataclass
class _Loaded:
    """One job's models, as the playground holds them."""

    job_id: str
    key: str  # the model (or checkpoint) folder and its modification time: a resumed job's new model is loaded again
    tokenizer: Any
    tuned: Any
    base: Any  # None when `tuned` is a PEFT model: the base answers with the adapter disabled
    style: str
    device: str
    max_positions: int | None


class Playground:
    """Holds one job of `manager` with its base and tuned model and answers prompts with both; thread-safe.

    The app makes one (`build_app` puts it on `app.state.playground`); its models are its own, not the process's.
    """

    def __init__(self, manager: JobManager, idle: float | None = None) -> None:
        self.manager = manager
        self.idle = idle_seconds() if idle is None else idle
        self._lock = threading.Lock()  # one load or generation at a time
        self._loaded: _Loaded | None = None
        self._last_used = 0.0
        self._watcher: threading.Thread | None = None

    def loaded_job(self) -> str | None:
        """The job whose models are loaded, if any."""
        loaded = self._loaded
        return loaded.job_id if loaded else None

    def load(self, job_id: str, checkpoint: str | None = None) -> dict[str, Any]:
        """Load the job's models (releasing another job's): {job_id, checkpoint, prompt_style, adapter, device}."""
        with self._lock:
            loaded = self._ensure(job_id, checkpoint)
            return {"job_id": job_id, "checkpoint": checkpoint or None, "prompt_style": loaded.style,
                    "adapter": loaded.base is None, "device": loaded.device}

    def generate(self, job_id: str, prompt: str, max_new_tokens: int = 64,
                 temperature: float = 0.0, top_p: float = 1.0, input: str = "",  # noqa: A002
                 checkpoint: str | None = None) -> dict[str, Any]:
        """The base and tuned answers to `prompt` written as in training (tuned: the job's model, or the named
        checkpoint's); temperature 0 is greedy."""
        check_settings(prompt, max_new_tokens, temperature, top_p, input)
        began = time.monotonic()
        with self._lock:
            loaded = self._ensure(job_id, checkpoint)
            text, ids = format_prompt(loaded.style, loaded.tokenizer, prompt, input)
            room = max_new_tokens
            if loaded.max_positions:
                room = min(max_new_tokens, loaded.max_positions - len(ids))
                if room < 1:
                    raise ValueError(f"prompt: {len(ids)} tokens; this model reads at most {loaded.max_positions}")
            settings = {"max_new_tokens": room, "temperature": float(temperature), "top_p": float(top_p)}
            tuned = self._answer(loaded, loaded.tuned, ids, settings)
            base = self._answer(loaded, loaded.base, ids, settings)
            self._last_used = time.monotonic()
        return {"job_id": job_id, "base": base, "tuned": tuned, "prompt_formatted": text, "prompt_style": loaded.style,
                "max_new_tokens": room, "seconds": round(time.monotonic() - began, 3), "checkpoint": checkpoint or None}

    def release(self) -> None:
        """Drop the loaded models and give their memory back."""
        with self._lock:
            self._release()

    # --- internals (called with the lock held) ---
    def _ensure(self, job_id: str, checkpoint: str | None = None) -> _Loaded:
        record, model_dir = saved_model(self.manager, job_id, checkpoint)
        key = f"{model_dir}:{_mtime(model_dir)}"  # a checkpoint's folder differs from model/
        if self._loaded is not None and self._loaded.key == key:
            return self._loaded
        self._release()
        if self._gpu_is_busy():
            raise StateError("the GPU is busy: every training slot is taken; try the playground when a job ends")
        self._loaded = _load(self.manager, job_id, key, record, model_dir)
        self._last_used = time.monotonic()
        if self._watcher is None:  # it ends once nothing is loaded (see _watch)
            self._watcher = threading.Thread(target=self._watch, name="playground-idle", daemon=True)
            self._watcher.start()
        return self._loaded

    def _release(self) -> None:
        if self._loaded is None:
            return
        log.info("playground: releasing the models of job %s", self._loaded.job_id)
        cuda = self._loaded.device == "cuda"
        self._loaded = None
        gc.collect()
        if cuda:
            import torch

            torch.cuda.empty_cache()

    def _watch(self) -> None:
        """Release the models after `idle` seconds without use, or when training needs the GPU."""
        while True:
            time.sleep(max(0.05, min(5.0, self.idle / 4)))
            loaded = self._loaded
            if loaded is None:
                with self._lock:  # _ensure starts a new watcher under this lock
                    if self._loaded is None:
                        self._watcher = None
                        return
                continue
            idle = time.monotonic() - self._last_used > self.idle
            if (idle or (loaded.device == "cuda" and self._gpu_is_busy())) \
                    and self._lock.acquire(timeout=0.1):
                try:
                    if self._loaded is loaded:
                        self._release()
                finally:
                    self._lock.release()

    def _gpu_is_busy(self) -> bool:
        """True on a single-GPU machine whose training slots are all taken."""
        import torch

        if not torch.cuda.is_available() or torch.cuda.device_count() != 1:
            return False
        return self.manager.count_jobs(JobStatus.RUNNING) >= self.manager.max_concurrent_jobs

    @staticmethod
    def _answer(loaded: _Loaded, model: Any, ids: list[int], settings: dict[str, Any]) -> str:
        """One greedy or sampled answer; model None means the tuned PEFT model with its adapter off."""
        import contextlib

        import torch

        peft = loaded.tuned
        runner = peft if model is None else model
        sample = settings["temperature"] > 0
        kwargs: dict[str, Any] = {"max_new_tokens": settings["max_new_tokens"], "do_sample": sample,
                                  "pad_token_id": loaded.tokenizer.pad_token_id or loaded.tokenizer.eos_token_id,
                                  "eos_token_id": loaded.tokenizer.eos_token_id}
        if sample:
            kwargs.update(temperature=settings["temperature"], top_p=settings["top_p"])
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        input_ids = torch.tensor([ids], device=loaded.device)
        adapter_off = peft.disable_adapter() if model is None else contextlib.nullcontext()
        with torch.inference_mode(), adapter_off:
            out = runner.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        return loaded.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)


def free_models(playground: Playground) -> str:
    """Release the playground's models; says whose were released (REST's /playground/release and the UI)."""
    loaded = playground.loaded_job()
    playground.release()
    return f"Released the models of job {loaded}" if loaded else "No models were loaded"


def _mtime(folder: Path) -> float:
    """The newest modification time of the folder's files (changes when a resumed job saves again)."""
    return max((p.stat().st_mtime for p in folder.iterdir() if p.is_file()), default=0.0)


def _load(manager: JobManager, job_id: str, key: str, record: dict[str, Any], model_dir: Path) -> _Loaded:
    """Load the job's tokenizer, base model and tuned model (a PEFT wrapper of the base for an adapter)."""
    import torch
    from transformers import AutoTokenizer

    from sft_ui import data

    cuda = torch.cuda.is_available()
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    device = "cuda" if cuda else "cpu"
    base_name = record["config"]["base_model"]
    tokenizer = data.ensure_chat_template(AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False))
    base = data.load_model(base_name, manager.store_root(), manager.cache_dir, dtype=dtype)
    if is_adapter(model_dir):
        from peft import PeftModel

        tuned, base = PeftModel.from_pretrained(base, str(model_dir)), None
    else:
        tuned = data.load_model(base_name, manager.store_root(), manager.cache_dir, path=str(model_dir), dtype=dtype)
        base = base.to(device).eval()
    tuned = tuned.to(device).eval()
    config = (tuned.get_base_model() if base is None else tuned).config
    max_positions = getattr(config, "max_position_embeddings", None)
    log.info("playground: loaded job %s on %s", job_id, device)
    return _Loaded(job_id, key, tokenizer, tuned, base, prompt_style(record), device, max_positions)
