"""Small helpers shared by the tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sft_ui import builtin, jobdir
from sft_ui.manager import JobManager
from sft_ui.status import ACTIVE

LONG = {"max_steps": 100_000, "logging_steps": 1}  # a job that trains until it is stopped


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (a worker leads its own group)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def wait_for(manager: JobManager, job_id: str, statuses: tuple[str, ...], timeout: float = 120.0) -> dict:
    """Poll until the job reaches one of `statuses`; fail with its record when it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = manager.get_job_status(job_id)
        if record["status"] in statuses:
            return record
        time.sleep(0.2)
    pytest.fail(f"job {job_id} did not reach {statuses} in {timeout}s: {manager.get_job_status(job_id)}\n"
                f"log:\n{manager.get_log(job_id)}")


def run_until(manager: JobManager, job_id: str, step: int, timeout: float = 120.0) -> None:
    """Start the job and wait until it has trained past `step` (while it stays pending or running)."""
    manager.start_job(job_id)
    deadline = time.monotonic() + timeout
    while manager.get_job_status(job_id)["progress"]["step"] < step:
        assert manager.get_job_status(job_id)["status"] in ACTIVE, manager.get_log(job_id)
        assert time.monotonic() < deadline, manager.get_log(job_id)
        time.sleep(0.05)


def fake_trained_job(manager: JobManager, config: dict, model_from: str | Path) -> str:
    """A `completed` job whose model/ is a copy of the folder `model_from` (no training): for fast tests."""
    job_id = manager.create_job(config)
    job_dir = Path(manager.get_job_status(job_id)["job_dir"])
    shutil.copytree(model_from, job_dir / jobdir.MODEL)
    (job_dir / jobdir.METRICS).write_text('{"step": 1, "loss": 2.0}\n')
    manager.store.update_job(job_id, {"status": "completed", "finished_at": "2026-01-01T00:00:00Z",
                                      "result": {"output_dir": str(job_dir / jobdir.MODEL), "steps": 1}})
    return job_id


def api_app(manager: JobManager) -> FastAPI:
    """The REST routers alone (no Gradio) over `manager`, with the app's error handlers."""
    from sft_ui.playground import Playground
    from sft_ui.web import rest, rest_artifacts, rest_events, rest_models, rest_sweeps

    app = FastAPI()
    app.state.sft_manager = manager
    app.state.playground = Playground(manager)
    rest.install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(rest_artifacts.router)
    app.include_router(rest_models.router)
    app.include_router(rest_sweeps.router)
    app.include_router(rest_events.router)
    return app


def rest_client(manager: JobManager) -> TestClient:
    """A TestClient over api_app(manager)."""
    return TestClient(api_app(manager))


def error(response: httpx.Response, status: int, *words: str) -> str:
    """Assert a JSON error with `status` whose detail mentions every word; return the detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for word in words:
        assert word in detail, detail
    return detail


def small_tokenizer(template: str, words: str = "user assistant system tool") -> Any:
    """A small byte-level tokenizer with the built-in model's special tokens and the given chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = [builtin.BOS, builtin.IM_START, builtin.EOS, builtin.PAD]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([builtin.alpaca_prompt("Add one.", "2"), words] * 20,
                                trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=builtin.BOS, eos_token=builtin.EOS,
                                  pad_token=builtin.PAD, extra_special_tokens=[builtin.IM_START])
    tok.chat_template = template
    return tok


@contextlib.contextmanager
def tiny_disk(tmp_path: Path, size: str = "300k") -> Iterator[Path]:
    """A real 300 KB tmpfs (needs root and mount); skips where it cannot be made."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.decode().strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk(folder: Path) -> None:
    """Fill the file system holding `folder` to the last byte."""
    for name, chunk in (("filler", 4096), ("filler-bytes", 1)):
        with contextlib.suppress(OSError), open(folder / name, "wb", buffering=0) as fh:
            while True:
                fh.write(b"x" * chunk)


def write_gguf(path: Path, architecture: str, tensors: dict[str, tuple[int, ...]],
               chat_template: str | None = None) -> Path:
    """A GGUF file's header as llama.cpp writes it (metadata, a vocabulary array, tensor infos), no tensor data."""
    import struct

    def text(value: str) -> bytes:
        data = value.encode()
        return struct.pack("<Q", len(data)) + data

    meta = [text("general.architecture") + struct.pack("<I", 8) + text(architecture),
            text(f"{architecture}.block_count") + struct.pack("<I", 4) + struct.pack("<I", 2),
            text("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + b"".join(map(text, ("a", "b", "c"))),
            text("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 0, 0, 0)]
    if chat_template is not None:
        meta.append(text("tokenizer.chat_template") + struct.pack("<I", 8) + text(chat_template))
    infos = [text(name) + struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
             + struct.pack("<IQ", 0, 0) for name, shape in tensors.items()]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(meta)) + b"".join(meta) + b"".join(infos))
    return path
