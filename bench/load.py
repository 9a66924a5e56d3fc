"""Load benchmark: does polling slow training down, and does the jobs list stay fast with 1,000 jobs?

    python bench/load.py [--duration 60] [--clients 50] [--interval 1.0] [--steps N] [--repeats 1]
                         [--jobs 1000] [--write]

1. Serves `python app.py` on a temporary data dir and trains the built-in model for --steps steps (by default
   about --duration seconds of training) with no load (baseline), then again while --clients threads poll
   list/get/metrics (each one call every --interval s) for --duration s or until the job ends, whichever is
   later, then another baseline; --repeats times. Reports errors (must be 0), p50/p95 latencies, the loaded
   jobs' train_runtime against the baselines (medians), and the CPU the server spent answering, which does
   not depend on what else runs on the machine.
2. Puts --jobs job records into the database, restarts the server, and times the jobs list with limit/offset.

Prints the numbers and, with --write, appends them to bench/RESULTS.md with a description of the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Server, append_results, edit_database, machine, percentile  # noqa: E402


def train(base: str, steps: int) -> tuple[str, threading.Event, dict[str, Any]]:
    """Start a job; returns its id, an event set when it has ended, and a dict that then holds its record."""
    config = {"max_steps": steps, "logging_steps": 1, "job_name": f"bench {steps} steps"}
    job_id = httpx.post(f"{base}/train", json={"config": config}, timeout=30).json()["job_id"]
    ended, record = threading.Event(), {}

    def watch() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while True:
                current = http.get(f"/jobs/{job_id}").json()
                if current["status"] not in ("pending", "running"):
                    record.update(current)
                    ended.set()
                    return
                time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    return job_id, ended, record


def baseline(base: str, steps: int) -> dict[str, Any]:
    """Train with nothing else going on; the finished record."""
    _, ended, record = train(base, steps)
    ended.wait()
    if record["status"] != "completed":
        raise SystemExit(f"the baseline job ended {record['status']}: {record.get('error')}")
    return record


def loaded(server: Server, steps: int, clients: int, interval: float, duration: float) -> dict[str, Any]:
    """Train while `clients` threads poll list/get/metrics; the record, latencies by call, CPU used."""
    base = server.base
    cpu_before, own_before = server.cpu_seconds(), sum(os.times()[:2])
    job_id, ended, record = train(base, steps)
    latencies: dict[str, list[float]] = {"list": [], "get": [], "metrics": []}
    errors: list[str] = []
    lock = threading.Lock()
    began = time.monotonic()

    def client(n: int) -> None:
        calls = [
            ("list", "/jobs", {"limit": 50}),
            ("get", f"/jobs/{job_id}", {}),
            ("metrics", f"/jobs/{job_id}/metrics", {}),
        ]
        i = n  # clients start at different calls
        with httpx.Client(base_url=base, timeout=30) as http:
            time.sleep(interval * n / clients)  # spread the clients over one interval
            while not (ended.is_set() and time.monotonic() - began >= duration):
                name, path, params = calls[i % 3]
                i += 1
                sent = time.monotonic()
                try:
                    response = http.get(path, params=params)
                    ok = response.status_code == 200
                    problem = f"{name}: HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    ok, problem = False, f"{name}: {type(exc).__name__}"
                took = time.monotonic() - sent
                with lock:
                    latencies[name].append(took)
                    if not ok:
                        errors.append(problem)
                time.sleep(max(0.0, interval - took))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    return {
        "record": record,
        "latencies": latencies,
        "errors": errors,
        "wall": wall,
        "server_cpu": server.cpu_seconds() - cpu_before,
        "client_cpu": sum(os.times()[:2]) - own_before,
    }


def idle_cpu(server: Server, seconds: float) -> float:
    """CPU seconds the server uses per second when nobody calls it (its supervisor threads poll files)."""
    before = server.cpu_seconds()
    time.sleep(seconds)
    return (server.cpu_seconds() - before) / seconds


def fill(data: Path, jobs: int, template: dict[str, Any]) -> int:
    """Add `jobs` ended job records (copies of `template`) to the stopped server's database; the total."""
    total = 0

    def add(content: dict[str, Any]) -> None:
        nonlocal total
        table = content.setdefault("jobs", {})
        next_id = max((int(k) for k in table), default=0) + 1
        statuses = ("completed", "failed", "stopped")
        for n in range(jobs):
            table[str(next_id + n)] = {
                **template,
                "job_id": f"bench{n:07d}",
                "name": f"bench job {n}",
                "status": statuses[n % 3],
            }
        total = len(table)

    edit_database(data, add)
    return total


def time_lists(base: str, rounds: int) -> dict[str, dict[str, float]]:
    """p50/p95 (ms) of the jobs list: pages of 50 at several offsets, the whole list, and one job."""
    shapes: dict[str, dict[str, Any]] = {
        "limit=50 offset=0": {"limit": 50},
        "limit=50 offset=500": {"limit": 50, "offset": 500},
        "limit=50 offset=950": {"limit": 50, "offset": 950},
        "status=failed limit=50": {"status": "failed", "limit": 50},
        "no limit (all)": {},
    }
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=base, timeout=60) as http:
        newest = http.get("/jobs", params={"limit": 1}).json()["jobs"][0]["job_id"]
        for label, params in {**shapes, "get one job": None}.items():
            times = []
            for _ in range(rounds if params != {} else max(5, rounds // 5)):
                sent = time.monotonic()
                response = http.get(f"/jobs/{newest}") if params is None else http.get("/jobs", params=params)
                times.append(time.monotonic() - sent)
                assert response.status_code == 200, response.text
            out[label] = {
                "p50_ms": 1000 * statistics.median(times),
                "p95_ms": 1000 * percentile(times, 95),
                "n": len(times),
            }
    return out


def runtime(record: dict[str, Any]) -> float:
    """TRL's train_runtime of a finished job (the training loop only, not start-up)."""
    return float(record["result"]["train_runtime_seconds"])


def seconds_per_step(record: dict[str, Any]) -> float:
    """Training seconds a step, from the logged times past the first (slow) steps."""
    points = [p for p in record.get("_points", []) if "time" in p]
    if len(points) >= 10:
        return (points[-1]["time"] - points[4]["time"]) / (points[-1]["step"] - points[4]["step"])
    return runtime(record) / max(1, record["result"]["steps"])


def main() -> None:
    """Run both parts and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of polling, at least (default 60)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent polling clients (default 50)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one client's calls")
    parser.add_argument(
        "--steps",
        type=int,
        default=0,
        help="steps of the timed training job (default: about --duration seconds of training)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="loaded runs, each followed by a baseline")
    parser.add_argument("--jobs", type=int, default=1000, help="job records for the list timing")
    parser.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()

    before = machine()
    tmp = Path(tempfile.mkdtemp(prefix="sft-bench-"))
    data = tmp / "data"
    server = Server(data)
    baselines: list[dict[str, Any]] = []
    loads: list[dict[str, Any]] = []
    try:
        print(f"machine: {before}", flush=True)
        warm = baseline(server.base, 30)  # makes the built-in model once, so no timed run pays for it
        warm["_points"] = httpx.get(f"{server.base}/jobs/{warm['job_id']}/metrics", timeout=30).json()["points"]
        if not args.steps:
            args.steps = max(20, round(args.duration / seconds_per_step(warm)))
            print(f"{seconds_per_step(warm):.3f} s a step: timing jobs of {args.steps} steps", flush=True)
        idle = idle_cpu(server, 5.0)
        baselines.append(baseline(server.base, args.steps))
        print(f"baseline: train_runtime {runtime(baselines[-1])} s", flush=True)
        for _ in range(args.repeats):
            loads.append(loaded(server, args.steps, args.clients, args.interval, args.duration))
            print(f"loaded: train_runtime {runtime(loads[-1]['record'])} s", flush=True)
            baselines.append(baseline(server.base, args.steps))
            print(f"baseline: train_runtime {runtime(baselines[-1])} s", flush=True)
    finally:
        server.stop()
    base_runtime = statistics.median(runtime(r) for r in baselines)
    load_runtime = statistics.median(runtime(run["record"]) for run in loads)
    ratio = load_runtime / base_runtime
    latencies: dict[str, list[float]] = {
        name: [t for run in loads for t in run["latencies"][name]] for name in loads[0]["latencies"]
    }
    all_latencies = [t for values in latencies.values() for t in values]
    errors = [e for run in loads for e in run["errors"]]
    kinds = f" ({', '.join(sorted(set(errors))[:5])})" if errors else ""
    wall = sum(run["wall"] for run in loads)
    server_cpu = sum(run["server_cpu"] for run in loads) / wall
    client_cpu = sum(run["client_cpu"] for run in loads) / wall
    cores = os.cpu_count() or 1

    total = fill(data, args.jobs, baselines[0])
    server = Server(data)
    try:
        lists = time_lists(server.base, rounds=100)
    finally:
        server.stop()
    after = machine()

    lines = [
        f"## Load ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Machine: {before}; after the run: load average {after.rsplit('load average ', 1)[1]}. "
        "Other sessions' processes shared these cores throughout, so wall-clock timings are noisy.",
        "",
        f"Command: `python bench/load.py --duration {args.duration:g} --clients {args.clients} "
        f"--interval {args.interval:g} --steps {args.steps} --repeats {args.repeats} --jobs {args.jobs}`",
        "",
        f"- Polling: {args.clients} clients, one call every {args.interval:g} s each, {len(loads)} run(s) of "
        f"{wall / len(loads):.1f} s: {len(all_latencies)} calls ({len(all_latencies) / wall:.1f}/s), "
        f"**{len(errors)} errors**{kinds}.",
        f"- train_runtime of {args.steps} steps: no load "
        + ", ".join(f"{runtime(r)} s" for r in baselines)
        + " (median "
        + f"{base_runtime:.2f} s); under load "
        + ", ".join(f"{runtime(r['record'])} s" for r in loads)
        + f" (median {load_runtime:.2f} s): **ratio {ratio:.3f}** (goal < 1.05).",
        f"- CPU the server spent answering: {server_cpu:.3f} CPU-s per second of polling = "
        f"{100 * server_cpu / cores:.1f} % of the {cores} cores (idle server: {100 * idle / cores:.1f} %); the "
        f"polling clients themselves, in this process: {100 * client_cpu / cores:.1f} %.",
        "- Latency under load (ms): "
        + "; ".join(
            f"{name} p50 {1000 * statistics.median(v):.1f}, p95 {1000 * percentile(v, 95):.1f}"
            for name, v in latencies.items()
            if v
        )
        + f"; all p50 {1000 * statistics.median(all_latencies):.1f}, "
        f"p95 {1000 * percentile(all_latencies, 95):.1f}.",
        f"- Jobs list with {total} jobs in the database (ms): "
        + "; ".join(f"{label} p50 {v['p50_ms']:.1f}, p95 {v['p95_ms']:.1f}" for label, v in lists.items())
        + ".",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        append_results(report)


if __name__ == "__main__":
    main()
