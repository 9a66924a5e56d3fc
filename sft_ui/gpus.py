"""GPUs of their own for each job's worker (`SFT_UI_GPU_PER_JOB`), so that a sweep runs several jobs at once.

Counted without torch: the entries of CUDA_VISIBLE_DEVICES when the server has it, else nvidia-smi's indices.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from sft_ui import jobdir, resources, settings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_pools: dict[str | None, GpuPool] = {}  # by the server's CUDA_VISIBLE_DEVICES: nvidia-smi runs once


class GpuPool:
    """Hands each worker the least-used devices (ties: the first listed) and takes them back when it ends."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.devices = list(devices)
        self._held: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def acquire(self, holder: str, count: int = 1) -> str:
        """A CUDA_VISIBLE_DEVICES value of `count` devices for `holder` (all of them when it needs as many).

        With more jobs than devices running, a device is shared by the fewest jobs possible.
        """
        with self._lock:
            self._held.pop(holder, None)
            use = collections.Counter(device for held in self._held.values() for device in held)
            order = sorted(range(len(self.devices)), key=lambda i: (use[self.devices[i]], i))
            chosen = [self.devices[i] for i in sorted(order[:max(1, count)])]
            self._held[holder] = chosen
            return ",".join(chosen)

    def release(self, holder: str) -> None:
        """Give back what `holder` took (nothing when it took nothing)."""
        with self._lock:
            self._held.pop(holder, None)

    def held(self) -> dict[str, list[str]]:
        """Which holder has which devices now."""
        with self._lock:
            return {holder: list(devices) for holder, devices in self._held.items()}


def visible_devices(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The devices a worker could see: CUDA_VISIBLE_DEVICES' entries up to the first empty or negative one (where
    CUDA stops reading it), else the index of each GPU nvidia-smi lists ([] without it)."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(gpu["index"]) for gpu in resources.gpus()]
    devices = []
    for entry in (part.strip() for part in listed.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def pool() -> GpuPool | None:
    """This server's pool when SFT_UI_GPU_PER_JOB is on and more than one device is visible; else None."""
    if not settings.gpu_per_job():
        return None
    key = os.environ.get("CUDA_VISIBLE_DEVICES")
    with _lock:
        if key not in _pools:
            _pools[key] = GpuPool(visible_devices())
            log.info("SFT_UI_GPU_PER_JOB: %d devices for jobs (%s)", len(_pools[key].devices),
                     ",".join(_pools[key].devices) or "none")
        found = _pools[key]
    return found if len(found.devices) > 1 else None


def assign(job_dir: Path) -> str | None:
    """The CUDA_VISIBLE_DEVICES value for the job in `job_dir` (one device per process), or None to leave the
    server's as it is (SFT_UI_GPU_PER_JOB off, or fewer than two devices)."""
    found = pool()
    if found is None:
        return None
    config = jobdir.read_json(job_dir / jobdir.CONFIG) or {}
    processes = config.get("num_processes")
    return found.acquire(str(job_dir), processes if isinstance(processes, int) and processes > 0 else 1)


def release(job_dir: Path) -> None:
    """Give back the devices the job in `job_dir` had."""
    found = pool()
    if found is not None:
        found.release(str(job_dir))
