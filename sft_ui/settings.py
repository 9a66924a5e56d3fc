"""Server settings read from the environment, and the one rule for paths under the data root."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any


def port() -> int:
    """The port `python app.py` serves on (`PORT`, default 7860)."""
    return int(os.environ.get("PORT", "7860"))


def free_port() -> int:
    """A TCP port that is free on this machine now (for a launch's rendezvous, test servers, benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def data_dir() -> Path:
    """`SFT_UI_DATA_DIR`; else `/data` on a Space with persistent storage; else `./sft_data`."""
    configured = os.environ.get("SFT_UI_DATA_DIR")
    if configured:
        return Path(configured).resolve()
    if os.environ.get("SPACE_ID") and Path("/data").is_dir() and os.access("/data", os.W_OK):
        return Path("/data/sft_ui")
    return Path("sft_data").resolve()


def cache_dir(data_root: Path) -> Path:
    """Where the built-in model is made once (`SFT_UI_CACHE_DIR`, default <data dir>/cache)."""
    configured = os.environ.get("SFT_UI_CACHE_DIR")
    return Path(configured).resolve() if configured else data_root / "cache"


def private_dir(data_root: Path) -> Path:
    """The server's own files (database, download zips): no job, data set or output_dir path may enter it."""
    return data_root / ".sft_ui"


def max_concurrent_jobs() -> int:
    """How many jobs train at once (`SFT_UI_MAX_CONCURRENT_JOBS`, default 1)."""
    return max(1, int(os.environ.get("SFT_UI_MAX_CONCURRENT_JOBS", "1")))


def spare_worker() -> bool:
    """Keep one worker waiting with the training libraries imported (`SFT_UI_SPARE_WORKER`, default on)."""
    return os.environ.get("SFT_UI_SPARE_WORKER", "1").strip().lower() not in ("0", "false", "no", "off", "")


def accelerate_config() -> str | None:
    """An accelerate config file for jobs with num_processes > 1 (`SFT_UI_ACCELERATE_CONFIG`; unset: one machine)."""
    return os.environ.get("SFT_UI_ACCELERATE_CONFIG") or None


def stop_grace_seconds() -> float:
    """How long a stopping worker may take to save before it is killed."""
    return float(os.environ.get("SFT_UI_STOP_GRACE_SECONDS", "30"))


def max_queued_jobs() -> int:
    """How many jobs may be pending (created or queued, not yet running) at once (`SFT_UI_MAX_QUEUED_JOBS`)."""
    return max(1, int(os.environ.get("SFT_UI_MAX_QUEUED_JOBS", "100")))


def max_sweep_jobs() -> int:
    """How many jobs one sweep may create (`SFT_UI_MAX_SWEEP_JOBS`, default 32)."""
    return max(1, int(os.environ.get("SFT_UI_MAX_SWEEP_JOBS", "32")))


def gpu_per_job() -> bool:
    """Give each job's worker GPUs of its own through CUDA_VISIBLE_DEVICES (`SFT_UI_GPU_PER_JOB`, default off)."""
    return os.environ.get("SFT_UI_GPU_PER_JOB", "0").strip().lower() in ("1", "true", "yes", "on")


def max_configs() -> int:
    """How many configs may be saved (`SFT_UI_MAX_CONFIGS`, default 1000); replacing one by name always works."""
    return max(1, int(os.environ.get("SFT_UI_MAX_CONFIGS", "1000")))


def max_upload_bytes() -> int:
    """Largest data set file an upload may bring (`SFT_UI_MAX_UPLOAD_MB`, default 500), in bytes."""
    return int(float(os.environ.get("SFT_UI_MAX_UPLOAD_MB", "500")) * 1024 * 1024)


def limit(name: str, default: int) -> int:
    """An upper bound on a config field that protects the machine; `SFT_UI_MAX_<NAME>` overrides it."""
    return int(os.environ.get(f"SFT_UI_MAX_{name.upper()}", default))


def playground_idle_seconds() -> float:
    """How long the Playground keeps a job's models loaded without use (`SFT_UI_PLAYGROUND_IDLE_SECONDS`)."""
    return float(os.environ.get("SFT_UI_PLAYGROUND_IDLE_SECONDS", "600"))


def api_key() -> str | None:
    """Optional key that guards the API (`SFT_UI_API_KEY`); None leaves it open."""
    return os.environ.get("SFT_UI_API_KEY") or None


def resolve_inside(root: Path, relative: str, what: str) -> Path:
    """Resolve `relative` under `root`; reject absolute paths, '..' and symlinks leading out."""
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"{what}: must be a path relative to the data root, got {relative!r}")
    root = root.resolve()
    path = (root / pure).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{what}: {relative!r} leads outside the data root")
    return path


def max_model_upload_bytes() -> int:
    """Largest GGUF file a model upload may bring (`SFT_UI_MAX_MODEL_UPLOAD_MB`, default 100000), in bytes."""
    return int(float(os.environ.get("SFT_UI_MAX_MODEL_UPLOAD_MB", "100000")) * 1024 * 1024)


def jobs_naming(root: Path, target: Path, field: str, records: Iterable[dict[str, Any]]) -> list[str]:
    """The job ids among `records` whose config's `field` (a path under `root`) is `target` (resolved)."""
    found = []
    for record in records:
        with contextlib.suppress(ValueError, OSError):
            if resolve_inside(root, str(record["config"].get(field, "")), field) == target:
                found.append(record["job_id"])
    return found
