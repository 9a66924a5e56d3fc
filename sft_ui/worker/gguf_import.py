"""`python -m sft_ui.worker.gguf_import`: turn a GGUF file into a trainable model folder, in its own process.

transformers reads GGUF with `gguf_file=`, but the model it gives is marked quantised and can be neither trained
nor saved; so the dequantised weights are moved into a plain model built from the same config (without
`quantization_config`) and saved with the tokenizer and its chat template. The server polls the status file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from sft_ui import jobdir
from sft_ui.errors import one_line
from sft_ui.model_library import MARKER
from sft_ui.status import iso_time


class Progress:
    """The import's status file: phase, progress (0-1) and, at the end, status and error."""

    def __init__(self, path: Path) -> None:
        self.path, self.began = path, time.monotonic()
        self.state: dict[str, Any] = {**(jobdir.read_json(path) or {}), "status": "running", "pid": os.getpid()}

    def update(self, phase: str, progress: float, **fields: Any) -> None:
        """Record a phase and how far along the import is."""
        self.state.update(phase=phase, progress=round(progress, 3),
                          elapsed_seconds=round(time.monotonic() - self.began, 1), **fields)
        jobdir.write_json(self.path, self.state)


def dtype_name(requested: str) -> str:
    """float32 on a CPU; bfloat16 on a GPU that has it; otherwise float32 (float16 weights cannot be fully trained)."""
    if requested != "auto":
        return requested
    import torch

    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"


def convert(gguf: Path, dest: Path, dtype: str, progress: Progress) -> dict[str, Any]:
    """Load `gguf` with transformers, rebuild it as a plain model and save it into the new folder `dest`."""
    progress.update("loading libraries", 0.02)
    import torch
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    progress.update("reading the tokenizer", 0.05, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    progress.update("dequantising the weights", 0.1)
    # transformers shows this loop with tqdm only; its module-level name is the one place to hear each tensor.
    gguf_utils.tqdm = _counting(gguf_utils.tqdm, lambda done, total: progress.update(
        "dequantising the weights", 0.1 + 0.7 * done / max(total, 1)))
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch_dtype,
                                                  trust_remote_code=False)
    progress.update("building a trainable model", 0.82)
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    settings.pop("_name_or_path", None)
    config = AutoConfig.for_model(**settings)
    with torch.device("meta"):  # no second copy of the weights: the loaded tensors are moved in (assign=True)
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype, trust_remote_code=False)
    model.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    del loaded
    progress.update("saving", 0.88)
    tmp = dest.with_name(f".{dest.name}.importing-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {"source": "gguf", "gguf": progress.state.get("gguf"), "architecture": model.config.architectures[0],
                "dtype": dtype, "parameters": sum(p.numel() for p in model.parameters()), "imported_at": iso_time()}
        jobdir.write_json(tmp / MARKER, info, durable=True)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def _counting(tqdm: Any, report: Any) -> Any:
    """A tqdm that also calls report(done, total) at most twice a second."""

    class Counting(tqdm):  # type: ignore[misc, valid-type]
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            now = time.monotonic()
            if now - getattr(self, "_sft_ui_said", 0.0) > 0.5 or self.n == self.total:
                self._sft_ui_said = now
                report(self.n, self.total or 0)
            return shown

    return Counting


def _watch(server_pid: int) -> None:
    """Exit when the server is gone: nobody would read the result, and the half-made folder is cleaned at start."""
    while True:
        time.sleep(1.0)
        if os.getppid() != server_pid:
            os._exit(3)


def main(argv: list[str] | None = None) -> int:
    """Convert one GGUF file; the status file says how it went (the exit code is 0 unless it failed)."""
    parser = argparse.ArgumentParser(prog="python -m sft_ui.worker.gguf_import")
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args(argv)
    if args.server_pid:
        threading.Thread(target=_watch, args=(args.server_pid,), daemon=True).start()
    progress = Progress(args.status)
    try:
        info = convert(args.gguf, args.dest, dtype_name(args.dtype), progress)
    except Exception as exc:  # noqa: BLE001 - every failure is reported in the status file, in one line
        traceback.print_exc()
        phase = progress.state.get("phase", "starting")
        progress.update(phase, progress.state.get("progress", 0.0), status="failed",
                        error=f"while {phase}: {_explain(exc)}", finished_at=iso_time())
        return 1
    progress.update("done", 1.0, status="completed", finished_at=iso_time(), model=info)
    print(json.dumps({"imported": str(args.dest), **info}), flush=True)
    return 0


def _explain(exc: BaseException) -> str:
    """One line for the record; running out of memory says what to do."""
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return ("out of memory while converting: a GGUF of N billion parameters needs about 4N GB of memory in "
                "float32; import it on a machine with more memory")
    return one_line(exc)


if __name__ == "__main__":
    sys.exit(main())
