"""The server SIGKILLed at each moment a worker can be in: every process it started ends within 30 s.

Each case runs `python app.py`, brings its workers to the moments named, captures every process under the
server, and kills the server with SIGKILL. Cases share a server where their moments can coexist.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sft_ui import jobdir
from sft_ui.status import ACTIVE
from tests.helpers import LONG, alive, group_members
from tests.servers import ROOT, AppServer

pytestmark = pytest.mark.slow

DEADLINE = 30.0  # seconds after the server's death by which every process it started must be gone
SHORT = {"max_steps": 3}

# Test-only: a worker whose job is named "slow save" hangs when it begins to save (the worker runs in its job dir).
SLOW_SAVE = '''
import json
import time
from pathlib import Path

try:
    _slow = json.loads(Path("config.json").read_text()).get("job_name") == "slow save"
except (OSError, ValueError, AttributeError):
    _slow = False
if _slow:
    from sft_ui import jobdir

    _write = jobdir.write_json

    def write_json(path, data, durable=False):
        _write(path, data, durable)
        if path.name == jobdir.STATUS and data.get("phase") == "saving":
            time.sleep(600)

    jobdir.write_json = write_json
'''


# --- processes ---


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first); [] when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> set[int]:
    """Every live process below `root` in the process tree."""
    parent = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else []
        if fields and fields[0] != "Z":
            parent[int(entry.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found


def cpu_ticks(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[11]) + int(fields[12]) if fields else 0


def job_processes(server: AppServer, job_ids: list[str]) -> set[int]:
    """The jobs' processes as the server and the job dirs name them: worker_pid and the pids/ folder."""
    pids = set()
    for job_id in job_ids:
        record = server.job(job_id)
        if record.get("worker_pid"):
            pids.add(record["worker_pid"])
        folder = Path(record["job_dir"]) / jobdir.PIDS
        pids |= {int(p.name) for p in folder.glob("*") if p.name.isdigit()}
    return pids


def until(what: str, check: Callable[[], bool], timeout: float = 240.0, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached in {timeout:.0f} s: {what}")
        time.sleep(every)


# --- the moments ---


def step(server: AppServer, job_id: str, at_least: int = 2) -> bool:
    record = server.job(job_id)
    assert record["status"] in ACTIVE, record
    return record["progress"]["step"] >= at_least


def first_spare_and_refilled_spare_mid_import(server: AppServer) -> list[str]:
    """The first spare trains; a job queued behind a short one goes to the refilled spare while it still imports."""
    first = server.http.post("/train", json={"config": LONG}).json()["job_id"]
    until("the first job trains", lambda: step(server, first))
    assert "--spare" in cmdline(server.job(first)["worker_pid"]), "the waiting spare took the first job"
    short = server.http.post("/train", json={"config": SHORT}).json()["job_id"]
    queued = server.http.post("/train", json={"config": LONG}).json()["job_id"]
    # The short job ends, a new spare starts, and the queued job is handed to it at once.
    until("the queued job reaches the refilled spare", lambda: server.job(queued).get("worker_pid"), every=0.05)
    assert server.job(short)["status"] == "completed"
    assert "--spare" in cmdline(server.job(queued)["worker_pid"])
    return [first, short, queued]


def refilled_spare_trains_and_a_spare_waits(server: AppServer) -> list[str]:
    """A refilled spare trains a job while the next spare, its imports done, waits for one."""
    short = server.http.post("/train", json={"config": SHORT}).json()["job_id"]
    until("the first job completes", lambda: server.job(short)["status"] == "completed")
    refilled = server.http.post("/train", json={"config": LONG}).json()["job_id"]
    other = server.http.post("/train", json={"config": SHORT}).json()["job_id"]  # a fresh worker: the spare is taken
    until("the refilled spare trains", lambda: step(server, refilled))
    until("the other short job completes", lambda: server.job(other)["status"] == "completed")
    assert "--spare" in cmdline(server.job(refilled)["worker_pid"])

    def spare_idle() -> bool:
        taken = server.job(refilled)["worker_pid"]
        spares = [p for p in descendants(server.pid) if "--spare" in cmdline(p) and p != taken]
        if not spares:
            return False
        before = cpu_ticks(spares[0])
        time.sleep(1.0)
        return cpu_ticks(spares[0]) - before <= 3  # its imports are done: it sleeps on its stdin

    until("a spare waits", spare_idle)
    return [short, refilled, other]


def fresh_two_processes_and_saving(server: AppServer) -> list[str]:
    """Spare off: a fresh worker trains, a 2-process job trains, and a job hangs in its save."""
    fresh = server.http.post("/train", json={"config": LONG}).json()["job_id"]
    pair = server.http.post("/train", json={"config": {**LONG, "num_processes": 2, "batch_size": 4}}).json()["job_id"]
    saving = server.http.post("/train", json={"config": {**SHORT, "job_name": "slow save"}}).json()["job_id"]
    until("the fresh and 2-process jobs train", lambda: step(server, fresh) and step(server, pair))
    until("the third job saves", lambda: server.job(saving).get("phase") == "saving")
    assert len(job_processes(server, [pair]) - {server.job(pair)["worker_pid"]}) == 2, "two training ranks"
    return [fresh, pair, saving]


CASES: dict[str, tuple[Callable[[AppServer], list[str]], dict[str, str]]] = {
    "first spare trains, refilled spare takes a job mid-import": (
        first_spare_and_refilled_spare_mid_import, {"SFT_UI_SPARE_WORKER": "1", "SFT_UI_MAX_CONCURRENT_JOBS": "2"}),
    "refilled spare trains, a spare waits": (
        refilled_spare_trains_and_a_spare_waits, {"SFT_UI_SPARE_WORKER": "1", "SFT_UI_MAX_CONCURRENT_JOBS": "2"}),
    "spare off: fresh worker trains, 2 processes train, a job saves": (
        fresh_two_processes_and_saving, {"SFT_UI_SPARE_WORKER": "0", "SFT_UI_MAX_CONCURRENT_JOBS": "3"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_worker_ends_within_30s_of_the_servers_sigkill(case: str, tmp_path: Path) -> None:
    arrange, env = CASES[case]
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_SAVE)
    path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p)
    server = AppServer(tmp_path / "data", PYTHONPATH=path, **env).start()
    captured: dict[int, str] = {}
    try:
        job_ids = arrange(server)
        pids = descendants(server.pid) | job_processes(server, job_ids)
        pids |= {m for pid in set(pids) for m in group_members(pid)}
        captured = {pid: line for pid in pids if (line := cmdline(pid))}
        killed = time.monotonic()
        server.kill()
        ended: dict[int, float] = {}
        while len(ended) < len(captured) and time.monotonic() - killed < DEADLINE:
            for pid in set(captured) - set(ended):
                if not alive(pid):
                    ended[pid] = round(time.monotonic() - killed, 1)
            time.sleep(0.1)
        print(f"\n{case}: seconds from the kill to the end of each process:")
        for pid in sorted(ended, key=ended.get):
            print(f"  {ended[pid]:5.1f}  {pid}  {captured[pid].split(' -m ')[-1][:70]}")
        left = {pid: captured[pid][:160] for pid in captured if pid not in ended}
        assert not left, f"still running {DEADLINE:.0f} s after the server's SIGKILL: {left}"
        assert any("sft_ui.worker" in line for line in captured.values())
    finally:
        server.kill()
        server.http.close()
        for pid, line in captured.items():  # only what this test started, and only if it is still that process
            if alive(pid) and cmdline(pid) == line:
                os.kill(pid, signal.SIGKILL)


def test_a_worker_whose_server_died_as_it_started_does_not_train(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / jobdir.CONFIG).write_text(json.dumps(LONG))
    # A stand-in server that starts a worker the way processes.start_worker does and dies at once.
    server = (
        "import os, subprocess, sys\n"
        f"args = [sys.executable, '-m', 'sft_ui.worker', {str(job_dir)!r}, '--data-root', {str(tmp_path)!r},"
        f" '--cache-dir', {os.environ['SFT_UI_CACHE_DIR']!r}, '--server-pid', str(os.getpid())]\n"
        f"log = open({str(job_dir / jobdir.LOG)!r}, 'ab')\n"
        "print(subprocess.Popen(args, start_new_session=True, stdout=log, stderr=log).pid, flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", server], cwd=ROOT, capture_output=True, text=True, check=True)
    worker = int(out.stdout)
    try:
        until("the worker leaves", lambda: not alive(worker), timeout=DEADLINE)
        assert jobdir.read_json(job_dir / jobdir.RESULT) == {"status": "stopped", "error": None, "result": None}
        assert not (job_dir / jobdir.METRICS).read_text(), "it trained no step"
    finally:
        if alive(worker) and "sft_ui.worker" in cmdline(worker):
            os.kill(worker, signal.SIGKILL)
