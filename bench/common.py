"""Helpers the benchmarks share: percentiles, `python app.py` as a server, the machine, RESULTS.md."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sft_ui.settings import free_port  # noqa: E402
from sft_ui.supervisor import worker_env  # noqa: E402


def training_env() -> dict[str, str]:
    """The environment sft-ui gives its workers, offline: a benchmark's own training runs as a job's would."""
    return {**worker_env(), "HF_HUB_OFFLINE": "1"}


def edit_database(data: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change a stopped server's database in one whole-snapshot write: `edit` gets {table: {doc_id: record}}.

    Seeding thousands of records one acknowledged write at a time would spend minutes in fsync.
    """
    from sft_ui.recovery import database_file
    from sft_ui.storage import JournalStorage

    path = database_file(data.resolve())  # no manager: starting one would also start a spare worker here
    storage = JournalStorage(path)
    content = storage.read() or {}
    edit(content)
    storage.write(content)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else float("nan")


class Server:
    """`python app.py` on a data dir; `env` adds settings; `ready_seconds` is the time from spawn to health 200."""

    def __init__(self, data: Path, env: dict[str, str] | None = None, poll: float = 0.2) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/sft"
        env = {**os.environ, "PORT": str(self.port), "SFT_UI_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", **(env or {})}
        env.pop("SFT_UI_API_KEY", None)
        self.log = open(data.parent / f"server-{self.port}.log", "wb")
        spawned = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    self.ready_seconds = time.monotonic() - spawned
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise SystemExit(f"the server did not start; see {self.log.name}")
            time.sleep(poll)

    def cpu_seconds(self) -> float:
        """CPU time the server process itself has used (its workers are other processes)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Ctrl-C, then wait."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def machine() -> str:
    """Cores, CPU model, memory and the load average (other processes share this machine)."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (
            int(line.split()[1]) // 1024 // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return f"{os.cpu_count()} cores ({model}), {mem} GiB, Python {platform.python_version()}; load average {load()}"


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def append_results(text: str) -> None:
    """Append a markdown section to bench/RESULTS.md (made with its title when missing)."""
    results = ROOT / "bench" / "RESULTS.md"
    head = "" if results.exists() else "# Benchmark results\n"
    with open(results, "a", encoding="utf-8") as fh:
        fh.write(head + "\n" + text.rstrip("\n") + "\n")


def link_model(folder: Path, target: Path) -> None:
    """Hard-link (copy across file systems) the files of a model folder into `target`, replacing what was there."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for item in folder.iterdir():
        if item.is_file():
            try:
                os.link(item, target / item.name)
            except OSError:
                shutil.copy2(item, target / item.name)
