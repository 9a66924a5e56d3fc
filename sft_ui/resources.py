"""What the machine's CPU, memory and GPUs are doing, and which of sft-ui's processes hold the memory.

Read from /proc and `nvidia-smi` (when there is one), never through torch: the server must not import it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sft_ui.manager import JobManager
    from sft_ui.playground import Playground

_GPU_QUERY = "index,name,memory.used,memory.total,utilization.gpu"
_cpu_lock = threading.Lock()
_last_cpu: tuple[float, float] | None = None  # (busy, total) jiffies at the previous reading


def cpu_percent() -> float | None:
    """Whole-machine CPU use since the previous call (or over 0.1 s at the first), in percent; None off Linux."""
    global _last_cpu
    with _cpu_lock:
        now = _cpu_times()
        if now is None:
            return None
        before = _last_cpu
        if before is None:
            time.sleep(0.1)
            before, now = now, _cpu_times() or now
        _last_cpu = now
    busy, total = now[0] - before[0], now[1] - before[1]
    return round(100.0 * busy / total, 1) if total > 0 else 0.0


def _cpu_times() -> tuple[float, float] | None:
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def memory() -> dict[str, int] | None:
    """total_bytes and available_bytes of RAM (MemAvailable); None off Linux."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return {"total_bytes": int(info["MemTotal"].split()[0]) * 1024,
                "available_bytes": int(info["MemAvailable"].split()[0]) * 1024}
    except (OSError, ValueError, KeyError):
        return None


def rss_bytes(pid: int) -> int | None:
    """A process's resident memory (VmRSS), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def gpus(timeout: float = 2.0) -> list[dict[str, Any]]:
    """Per GPU: index, name, memory_used_bytes, memory_total_bytes, utilization_percent; [] without nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, f"--query-gpu={_GPU_QUERY}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 5:
            index, name, used, total, util = parts
            found.append({"index": int(index), "name": name, "memory_used_bytes": _mib(used),
                          "memory_total_bytes": _mib(total), "utilization_percent": _number(util)})
    return found


def _mib(text: str) -> int | None:
    value = _number(text)
    return None if value is None else int(value * 1024 * 1024)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]" on some boards


def snapshot(holders: Iterable[tuple[str, int | None]]) -> dict[str, Any]:
    """CPU, RAM and GPUs now, and the resident memory of each (label, pid) in `holders` that is alive."""
    held = [{"holder": label, "pid": pid, "rss_bytes": rss} for label, pid in holders
            if pid and (rss := rss_bytes(pid)) is not None]
    return {"cpu_percent": cpu_percent(), "cpu_count": os.cpu_count(), "memory": memory(), "gpus": gpus(),
            "processes": held}


def report(manager: JobManager, playground: Playground) -> dict[str, Any]:
    """snapshot() of sft-ui's processes: the server (naming the job whose models the playground holds), then the
    workers `manager` started. What GET /resources and the UI's Resources tab show."""
    loaded = playground.loaded_job()
    server = "server" + (f" (the playground holds job {loaded}'s models)" if loaded else "")
    return snapshot([(server, os.getpid()), *manager.memory_holders()])
