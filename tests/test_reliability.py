"""Faults made for real: the server SIGKILLed while jobs run and requests write, the database writer killed
mid-write, and stop at every phase of a job; afterwards nothing is lost and no process is left behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sft_ui import SFTConfig, jobdir
from sft_ui.manager import JobManager
from sft_ui.store import Store
from tests.helpers import LONG, alive, group_members
from tests.servers import ROOT, AppServer

SECRET = "secret-xyz-do-not-store"


# --- processes ---


def wait_gone(pid: int, timeout: float) -> float:
    """Seconds until `pid` and its process group are gone; fails after `timeout`."""
    began = time.monotonic()
    while alive(pid) or group_members(pid):
        if time.monotonic() - began > timeout:
            pytest.fail(f"process {pid} (group {group_members(pid)}) still runs after {timeout}s")
        time.sleep(0.2)
    return time.monotonic() - began


def kill_leftovers(pids: list[int]) -> None:
    """Clean-up after a failed test: end the workers this test started, by pid."""
    for pid in pids:
        for member in group_members(pid):
            try:
                os.kill(member, signal.SIGKILL)
            except OSError:
                pass


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under `root` whose bytes contain `needle`."""
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


# --- the server killed ---


def test_server_sigkilled_while_training_and_writing_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = AppServer(data, SFT_UI_MAX_CONCURRENT_JOBS="2", HF_TOKEN=SECRET).start()
    workers: list[int] = []
    try:
        done_id = server.http.post("/train", json={"config": {"max_steps": 3, "job_name": "finished"}}).json()["job_id"]
        long_id = server.http.post("/train", json={"config": {**LONG, "job_name": "interrupted"}}).json()["job_id"]
        deadline = time.monotonic() + 180
        while not (server.job(done_id)["status"] == "completed"
                   and server.job(long_id)["progress"]["step"] >= 3):
            assert time.monotonic() < deadline, (server.job(done_id), server.job(long_id))
            time.sleep(0.2)
        worker = server.job(long_id)["worker_pid"]
        workers.append(worker)

        # Many clients save configs; the server dies under them.
        acked: dict[str, int] = {}
        tried: dict[str, list[int]] = {}
        stop = threading.Event()

        def writer(n: int) -> None:
            with httpx.Client(base_url=server.api, timeout=10) as http:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    # Writer n saves new names and replaces its own name "r{n}" in turn.
                    name = f"w{n}-{i}" if i % 2 else f"r{n}"
                    tried.setdefault(name, []).append(i + 1)
                    try:
                        response = http.post("/configs", json={"name": name, "config": {
                            "max_steps": i + 1, "job_name": f"{n}-{i}-" + "x" * random.randint(0, 150)}})
                    except httpx.HTTPError:
                        return  # the server is gone
                    if response.status_code == 200:
                        acked[name] = i + 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        assert len(acked) > 10, acked
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(15)

        # No orphan keeps training: the worker notices its server is gone and leaves by itself.
        assert wait_gone(worker, timeout=30) < 30
    finally:
        server.kill()
        kill_leftovers(workers)

    again = AppServer(data, HF_TOKEN=SECRET).start()  # a restart on the same data dir
    try:
        finished = again.job(done_id)
        assert finished["status"] == "completed"
        assert finished["result"]["steps"] == 3
        broken = again.job(long_id)
        # Its worker stopped and saved when the server died; the restart keeps what the worker wrote.
        assert broken["status"] == "stopped", broken
        assert broken["error"] is None, broken
        assert broken["result"]["stopped_early"], broken
        assert broken["result"]["steps"] >= 3, broken
        points = again.http.get(f"/jobs/{long_id}/metrics").json()["points"]
        assert [p["step"] for p in points if "loss" in p][:3] == [1, 2, 3]  # the partial history is kept
        assert "[sft-ui] training" in again.http.get(f"/jobs/{long_id}/log").json()["log"]

        saved = {c["name"]: c for c in again.http.get("/configs").json()}
        for name, value in acked.items():  # every acknowledged save is there, whole
            assert name in saved, name
            assert value <= saved[name]["config"]["max_steps"] <= max(tried[name]), (name, value, saved[name])
        for config in saved.values():
            SFTConfig(**config["config"])  # nothing half-written
        assert not list(data.rglob("*.corrupt-*"))
        assert files_containing(data, SECRET) == [], "the HF token leaked into the data dir"
    finally:
        again.stop()


def test_database_writer_killed_mid_write_never_leaves_half_a_file(tmp_path: Path) -> None:
    db = tmp_path / "sft_ui.json"
    script = (
        "import sys\n"
        "from sft_ui.store import Store\n"
        "store = Store(__import__('pathlib').Path(sys.argv[1]))\n"
        "for i in range(100000):\n"
        "    store.save_config(f'{sys.argv[2]}-{i}', {'max_steps': i + 1, 'job_name': 'y' * (i % 500)}, 'now')\n"
        "    print(f'{sys.argv[2]}-{i}', flush=True)\n"
    )
    acked: set[str] = set()
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", script, str(db), f"k{round_}"], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # it has started writing
        time.sleep(random.uniform(0.05, 0.4))
        proc.kill()
        out, _ = proc.communicate()
        acked |= {line for line in (first + out).splitlines() if line}
        store = Store(db)  # loads after every kill
        names = {c["name"] for c in store.list_configs()}
        assert acked <= names, sorted(acked - names)[:5]
        store.close()
    assert not list(tmp_path.glob("*.corrupt-*"))
    assert len(acked) > 6


# --- stop at every phase ---

SITECUSTOMIZE = '''
"""Test-only fault injection: a worker whose job dir holds fault.json sleeps once in the named phase."""
import json
import time
from pathlib import Path

try:
    _fault = json.loads(Path("fault.json").read_text())  # the worker runs in its job dir
except (OSError, ValueError):
    _fault = None
if _fault:
    from sft_ui import jobdir

    _write = jobdir.write_json

    def write_json(path, data, durable=False):
        _write(path, data, durable)
        if path.name == jobdir.STATUS and data.get("phase") == _fault["phase"] and not _fault.get("done"):
            _fault["done"] = True
            time.sleep(_fault["seconds"])

    jobdir.write_json = write_json
'''


@pytest.fixture
def slow_phases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Workers started now load a sitecustomize that can hold them in one phase (see SITECUSTOMIZE)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    yield


def test_stop_works_in_every_phase_and_leaves_no_process(tmp_path: Path, slow_phases: None) -> None:
    manager = JobManager(data_dir=tmp_path / "data", max_concurrent_jobs=4).start()
    plan = {  # job -> (fault injected, when to stop)
        "loading_model": ({"phase": "loading_model", "seconds": 120}, "phase"),
        "loading_data": ({"phase": "loading_data", "seconds": 120}, "phase"),  # data load + tokenisation
        "training": (None, "step"),
        "saving": ({"phase": "saving", "seconds": 4}, "phase"),
    }
    ids: dict[str, str] = {}
    for name, (fault, _) in plan.items():
        config = {"max_steps": 3, "job_name": name} if name == "saving" else {**LONG, "job_name": name}
        ids[name] = manager.create_job(config)
        if fault:
            (Path(manager.get_job_status(ids[name])["job_dir"]) / "fault.json").write_text(json.dumps(fault))
    for job_id in ids.values():
        manager.start_job(job_id)

    stops: dict[str, dict[str, Any]] = {}
    pids: dict[str, int] = {}
    threads = []

    def stop(name: str) -> None:
        began = time.monotonic()
        record = manager.stop_job(ids[name], wait=40)
        stops[name] = {**record, "took": time.monotonic() - began}

    try:
        deadline = time.monotonic() + 240
        while len(threads) < len(plan):
            assert time.monotonic() < deadline, {n: manager.get_job_status(i) for n, i in ids.items()}
            for name, (_, when) in plan.items():
                record = manager.get_job_status(ids[name])
                if record.get("worker_pid"):
                    pids[name] = record["worker_pid"]
                ready = record["progress"]["step"] >= 2 if when == "step" else record.get("phase") == name
                if ready and name not in {t.name for t in threads}:
                    thread = threading.Thread(target=stop, args=(name,), name=name)
                    thread.start()
                    threads.append(thread)
            time.sleep(0.05)
        for thread in threads:
            thread.join(60)

        for name in ("loading_model", "loading_data"):  # nothing to save yet: ended at once
            assert stops[name]["status"] == "stopped", stops[name]
            assert stops[name]["took"] < 10, stops[name]
            assert stops[name]["progress"]["step"] == 0
        mid = stops["training"]
        assert mid["status"] == "stopped", mid
        assert mid["result"]["stopped_early"], mid
        assert (Path(mid["result"]["output_dir"]) / "adapter_config.json").exists()
        late = stops["saving"]  # the run had finished its steps: it completes its save, then ends
        assert late["status"] in ("completed", "stopped"), late
        assert late["result"]["steps"] == 3, late
        assert (Path(late["result"]["output_dir"]) / "adapter_config.json").exists()
        for name, pid in pids.items():
            assert wait_gone(pid, timeout=5) < 5, name
    finally:
        manager.shutdown()
        kill_leftovers(list(pids.values()))

    root = manager.store_root()
    assert files_containing(root, SECRET) == [], "the HF token leaked into a job's files"
    for record in manager.list_jobs():
        assert SECRET not in json.dumps(record)
        assert (Path(record["job_dir"]) / jobdir.CONFIG).exists()


# --- the metrics history, read while it is written ---


@settings(max_examples=60, deadline=None, database=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["lines", "partial", "finish", "replace", "cut", "nan"]),
                              st.integers(min_value=0, max_value=5)), max_size=25),
       since=st.none() | st.integers(min_value=-1, max_value=30))
def test_incremental_metrics_read_equals_a_full_read(tmp_path_factory: pytest.TempPathFactory,
                                                     ops: list[tuple[str, int]], since: int | None) -> None:
    path = tmp_path_factory.mktemp("metrics") / jobdir.METRICS
    reader = jobdir.MetricsReader()
    step, pending = 0, b""
    for op, n in ops:
        if op == "lines":
            with open(path, "ab") as fh:
                for _ in range(n):
                    step += 1
                    fh.write(json.dumps({"step": step, "loss": 1 / step}).encode() + b"\n")
        elif op == "partial":  # the worker is in the middle of writing a line (or was killed there)
            step += 1
            line = json.dumps({"step": step, "loss": 0.5}).encode() + b"\n"
            pending, cut = line, max(1, len(line) - 1 - n)
            with open(path, "ab") as fh:
                fh.write(line[:cut])
            pending = line[cut:]
        elif op == "finish" and pending:
            with open(path, "ab") as fh:
                fh.write(pending)
            pending = b""
        elif op == "replace":  # resume trims the history atomically
            kept = [p for p in jobdir.read_metrics(path) if p["step"] <= n]
            tmp = path.with_name("tmp")
            tmp.write_bytes(b"".join(json.dumps(p).encode() + b"\n" for p in kept))
            os.replace(tmp, path)
            step, pending = n, b""
        elif op == "cut" and path.exists():
            with open(path, "r+b") as fh:
                fh.truncate(max(0, path.stat().st_size - n * 7))
            pending = b""
        elif op == "nan":
            with open(path, "ab") as fh:
                step += 1
                fh.write(f'{{"step": {step}, "loss": NaN, "grad_norm": Infinity}}\n'.encode())
        assert reader.read(path, since) == jobdir.read_metrics(path, since), (op, n, path.read_bytes()[-200:])
    assert all(p.get("loss", 0) is None or isinstance(p["loss"], float) for p in reader.read(path))
