"""The model library: trainable model folders in `<data dir>/models/`, imported from GGUF files or copied in by hand.

A folder is listed once it holds a config.json; an import shows as a record (`models/.imports/<name>.json`, written
by the import worker) until its folder appears. Only the standard library runs here: the server lists and checks,
a worker process (sft_ui.worker.gguf_import) converts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sft_ui import jobdir
from sft_ui.config import check_text
from sft_ui.errors import NotFoundError, StateError, one_line
from sft_ui.gguf_file import check_architecture, read_header
from sft_ui.settings import jobs_naming, resolve_inside
from sft_ui.status import iso_time
from sft_ui.uploads import Incoming

FOLDER = "models"
IMPORTS = ".imports"  # import records and logs
UPLOADS = ".uploads"  # GGUF files sent over HTTP, kept only while their import runs
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
IMPORTING, READY, FAILED = "importing", "ready", "failed"
MARKER = "sft_ui_model.json"  # written into a model folder by its import: how it was made (the listed source)


def folder(data_root: Path) -> Path:
    """`<data dir>/models`."""
    return data_root / FOLDER


def check_name(name: str) -> str:
    """A model name as given; ValueError naming `name` unless it is letters, digits, . _ - (at most 100)."""
    if not isinstance(name, str) or not NAME.match(name) or name.endswith("."):
        raise ValueError(f"name: {str(name)[:100]!r} is not a model name (letters, digits, . _ -, at most 100, "
                         "starting with a letter or digit)")
    return name


def name_for(filename: str) -> str:
    """A model name made from a GGUF file's name: its stem, unsafe characters replaced."""
    stem = re.split(r"[/\\]", filename)[-1].removesuffix(".gguf").removesuffix(".GGUF")
    name = _UNSAFE.sub("-", stem).strip("._-")[:100].rstrip("._-")
    if not name:
        raise ValueError(f"name: {filename[:100]!r} gives no usable model name; pass one")
    return name


def list_models(data_root: Path) -> list[dict[str, Any]]:
    """Every model folder (status ready) and every import not yet done (importing, failed), newest first."""
    where = folder(data_root)
    if not where.is_dir():
        return []
    entries = {path.name: entry for path in where.iterdir()
               if NAME.match(path.name) and (entry := _folder_entry(path)) is not None}
    for record in _records(data_root):
        if record["name"] not in entries and record["status"] != READY:
            entries[record["name"]] = record
    return sorted(entries.values(), key=lambda e: (e.get("created_at") or "", e["name"]), reverse=True)


def get(data_root: Path, name: str) -> dict[str, Any]:
    """One model (or its import record); NotFoundError when neither exists."""
    path = folder(data_root) / check_name(name)
    entry = _folder_entry(path)
    record = jobdir.read_json(_record_file(data_root, name))
    if entry is not None:
        return {**entry, "import": _public_record(record)} if record else entry
    if record:
        return _public_record(record)
    raise NotFoundError(f"model {name} not found in {folder(data_root)}")


def users(data_root: Path, name: str, records: Iterable[dict[str, Any]]) -> list[str]:
    """The job ids among `records` whose base_model is this model's folder."""
    return jobs_naming(data_root, (folder(data_root) / check_name(name)).resolve(), "base_model", records)


def _folder_entry(path: Path) -> dict[str, Any] | None:
    """What the library shows of a model folder; None unless it holds a config.json."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        stat = (path / "config.json").stat()
    except (OSError, ValueError):
        return None
    made = jobdir.read_json(path / MARKER) or {}
    files = [p for p in path.iterdir() if p.is_file()]
    architectures = config.get("architectures") or [None]
    return {
        "name": path.name, "path": f"{FOLDER}/{path.name}", "base_model": f"{FOLDER}/{path.name}", "status": READY,
        "architecture": architectures[0], "model_type": config.get("model_type"),
        "parameters": _parameters(files) or made.get("parameters"), "size_bytes": sum(p.stat().st_size for p in files),
        "dtype": made.get("dtype") or config.get("dtype") or config.get("torch_dtype"),
        "has_chat_template": _has_chat_template(path), "source": _source(made),
        "created_at": made.get("imported_at") or iso_time(stat.st_mtime),
    }


def _source(made: dict[str, Any]) -> str:
    """'gguf: <file>' for an import, 'folder' for a folder copied in by hand."""
    return f"gguf: {made.get('gguf')}" if made.get("source") == "gguf" else "folder"


def _has_chat_template(path: Path) -> bool:
    """Whether the tokenizer saved with the model carries a chat template (file or tokenizer_config field)."""
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    with contextlib.suppress(OSError, ValueError):
        return bool(json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template"))
    return False


def _parameters(files: list[Path]) -> int | None:
    """The parameter count from the safetensors headers (a few KB each), without loading any weight."""
    total, seen = 0, False
    for path in files:
        if path.suffix != ".safetensors":
            continue
        with contextlib.suppress(OSError, ValueError, struct.error), open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(min(size, 100 << 20)))
            for key, tensor in header.items():
                if key != "__metadata__":
                    count = 1
                    for dim in tensor["shape"]:
                        count *= dim
                    total += count
            seen = True
    return total if seen else None


# --- imports ---
def _record_file(data_root: Path, name: str) -> Path:
    return folder(data_root) / IMPORTS / f"{name}.json"


def _records(data_root: Path) -> list[dict[str, Any]]:
    where = folder(data_root) / IMPORTS
    if not where.is_dir():
        return []
    found = (jobdir.read_json(path) for path in where.glob("*.json"))
    return [_public_record(record) for record in found if record and NAME.match(str(record.get("name", "")))]


def _public_record(record: dict[str, Any]) -> dict[str, Any]:
    """An import record as the API shows it: the worker's running/completed become importing/ready."""
    status = {"running": IMPORTING, "completed": READY}.get(record.get("status", ""), record.get("status"))
    shown = {key: record.get(key) for key in ("name", "gguf", "phase", "progress", "elapsed_seconds", "error",
                                              "architecture", "parameters", "dtype", "started_at", "finished_at")}
    name = str(record.get("name"))
    return {**shown, "status": status, "path": f"{FOLDER}/{name}", "base_model": f"{FOLDER}/{name}",
            "source": f"gguf: {record.get('gguf')}", "created_at": record.get("started_at")}


class ModelLibrary:
    """The models under one data root: lists them, imports GGUF files in worker processes (one at a time: a 7B one
    takes minutes and tens of GB) and deletes them. `env` is the workers' environment; `active_jobs` gives the
    records of pending and running jobs (a model they use is not deleted)."""

    def __init__(self, data_root: Path, env: dict[str, str],
                 active_jobs: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.data_root, self._env, self._active_jobs = data_root, env, active_jobs
        self._lock = threading.RLock()
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def list(self) -> list[dict[str, Any]]:
        """Every model, newest first (list_models)."""
        return list_models(self.data_root)

    def get(self, name: str) -> dict[str, Any]:
        """One model or import record (get)."""
        return get(self.data_root, name)

    def recover(self) -> None:
        """After a restart: no import can still run (workers end with their server), so finish their records."""
        where = folder(self.data_root)
        for path in where.glob(".*.importing-*") if where.is_dir() else ():
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(where / UPLOADS, ignore_errors=True)
        for record in _records(self.data_root):
            if record["status"] == IMPORTING:
                self._finish(record["name"], "the server stopped during the import; start it again")

    def check(self, gguf: str, name: str | None) -> tuple[Path, str, dict[str, Any]]:
        """The GGUF file under the data root, the model's name and the header; ValueError naming the field."""
        if not isinstance(gguf, str) or not gguf.strip():
            raise ValueError("gguf: give the path of a .gguf file under the data root, or upload one")
        check_text(gguf, "gguf")
        path = resolve_inside(self.data_root, gguf.strip(), "gguf")
        if path.suffix.lower() != ".gguf":
            raise ValueError(f"gguf: {gguf!r} is not a .gguf file")
        if not path.is_file():
            raise ValueError(f"gguf: file not found under the data root ({self.data_root}): {gguf}")
        header = read_header(path)
        check_architecture(header, path.name)
        name = check_name(name) if name else name_for(path.name)
        self._check_free(name)
        return path, name, header

    def _check_free(self, name: str) -> None:
        if (folder(self.data_root) / name).exists():
            raise ValueError(f"name: a model named {name} already exists; pick another name or delete it first")
        if name in self.running():
            raise ValueError(f"name: {name} is being imported now")

    def start(self, gguf: str, name: str | None = None, dtype: str = "auto",
              uploaded: tuple[Path, str] | None = None) -> dict[str, Any]:
        """Check the GGUF, then convert it in a worker process; the import record (status importing).

        `uploaded` is (file, the name it was sent under) for a GGUF that receive() took: it is deleted at the end.
        """
        try:
            with self._lock:
                process, record = self._spawn(gguf, name, dtype, uploaded)
        except BaseException:  # refused or not started: an uploaded file is not kept
            if uploaded is not None:
                uploaded[0].unlink(missing_ok=True)
            raise
        name = record["name"]
        reap = (name, process, uploaded[0] if uploaded else None)
        threading.Thread(target=self._reap, args=reap, name=f"sft-ui-import-{name}", daemon=True).start()
        return _public_record(record)

    def _spawn(self, gguf: str, name: str | None, dtype: str,
               uploaded: tuple[Path, str] | None) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        """Check everything, write the record and start the worker (called with the lock held)."""
        if dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype: must be auto, float32, bfloat16 or float16, got {dtype!r}")
        path, name, header = self.check(gguf, name or (name_for(uploaded[1]) if uploaded else None))
        busy = self.running()
        if busy:
            raise StateError(f"gguf: model {busy[0]} is being imported; one import runs at a time, try again when "
                             "it is done")
        shown = uploaded[1] if uploaded is not None else path.relative_to(self.data_root)
        record = {"name": name, "gguf": str(shown), "status": "running", "phase": "starting", "progress": 0.0,
                  "architecture": header["architecture"], "parameters": header["parameters"],
                  "started_at": iso_time(), "uploaded": uploaded is not None}
        status = _record_file(self.data_root, name)
        status.parent.mkdir(parents=True, exist_ok=True)
        jobdir.write_json(status, record)
        with open(status.with_suffix(".log"), "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "sft_ui.worker.gguf_import", "--gguf", str(path), "--dest",
                 str(folder(self.data_root) / name), "--status", str(status), "--dtype", dtype,
                 "--server-pid", str(os.getpid())],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self._env, cwd=str(self.data_root))
        self._running[name] = process
        return process, record

    def _reap(self, name: str, process: subprocess.Popen[bytes], uploaded: Path | None) -> None:
        """Wait for the worker; a worker that died without saying why (killed, out of memory) fails its record."""
        code = process.wait()
        record = jobdir.read_json(_record_file(self.data_root, name)) or {}
        if record.get("status") == "running":
            log = _record_file(self.data_root, name).with_suffix(".log")
            last = jobdir.tail(log, 2000).strip().splitlines()[-1:] if log.exists() else []
            self._finish(name, f"the import process ended with code {code}" + (f": {last[0]}" if last else ""))
        if uploaded is not None:
            uploaded.unlink(missing_ok=True)
        with self._lock:
            self._running.pop(name, None)

    def _finish(self, name: str, error: str) -> None:
        path = _record_file(self.data_root, name)
        record = jobdir.read_json(path) or {"name": name}
        jobdir.write_json(path, {**record, "status": "failed", "error": one_line(error), "finished_at": iso_time()})

    def running(self) -> list[str]:
        """Names of the imports still at work: the worker runs and has not written its end into the record."""
        with self._lock:
            return [name for name, process in self._running.items() if process.poll() is None
                    and (jobdir.read_json(_record_file(self.data_root, name)) or {}).get("status") == "running"]

    def pids(self) -> dict[str, int]:
        """The worker pid of each import running now."""
        with self._lock:
            return {name: self._running[name].pid for name in self.running()}

    def delete(self, name: str) -> None:
        """Remove a model folder and its import record; refused while it is imported or a job uses it."""
        check_name(name)
        if name in self.running():
            raise StateError(f"name: {name} is being imported now; wait for it to finish")
        used = users(self.data_root, name, self._active_jobs())
        if used:
            raise StateError(f"name: model {name} is used by job {used[0]}, which is pending or running; stop it "
                             "first")
        path, record = folder(self.data_root) / name, _record_file(self.data_root, name)
        if not path.exists() and not record.exists():
            raise NotFoundError(f"model {name} not found in {folder(self.data_root)}")
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        record.unlink(missing_ok=True)
        record.with_suffix(".log").unlink(missing_ok=True)

    def receive(self, filename: str, chunks: Iterable[bytes], max_bytes: int) -> tuple[Path, str]:
        """Stream an uploaded GGUF into models/.uploads/ (deleted when its import ends): start()'s `uploaded`."""
        if not filename.lower().endswith(".gguf"):
            raise ValueError(f"file: {filename[:100]!r} is not a .gguf file")
        where = folder(self.data_root) / UPLOADS
        where.mkdir(parents=True, exist_ok=True)
        incoming = Incoming(where, ".gguf", max_bytes, "SFT_UI_MAX_MODEL_UPLOAD_MB")
        try:
            for chunk in chunks:
                incoming.write(chunk)
            tmp = incoming.close()
        except BaseException:
            incoming.abort()
            raise
        final = tmp.with_name(tmp.name.lstrip("."))
        os.replace(tmp, final)
        return final, re.split(r"[/\\]", filename)[-1]

    def shutdown(self) -> None:
        """End running imports (the server is stopping; their records say so at the next start)."""
        with self._lock:
            processes = list(self._running.values())
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, 15)
