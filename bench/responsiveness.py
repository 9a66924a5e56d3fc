"""Responsiveness benchmark: server start, first loss point and stop, with and without a spare worker.

    python bench/responsiveness.py [--starts 3] [--runs 3] [--write]

(a) Starts `python app.py` --starts times each with SFT_UI_SPARE_WORKER=0 and =1 (alternating, a fresh data dir
    each) and times spawn -> GET /api/sft/health answers 200, and -> GET / (the UI page) answers 200. Goal <= 5 s.
(b) On two servers side by side (spare off, spare on), --runs times each, alternating: POST /api/sft/train with the
    default config (the built-in model, logging every step) and time POST -> the first point in GET .../metrics
    (polled every 50 ms). Goal <= 2 s. The phases come from the worker's `[sft-ui] <phase>` log lines. Before each
    spare-on run it waits until the server's spare worker (a child whose command line holds `sft_ui.worker` and
    `--spare`) is idle, and records its memory (VmRSS). A server without the setting runs as without a spare.
(c) Once a job has logged 3 points: POST .../stop, and time the call's return and the first GET of the job that
    says `stopped` (polled every 25 ms). Goal <= 2 s.
Prints a markdown section; --write appends it to bench/RESULTS.md.
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
from common import Server, append_results, load, machine  # noqa: E402
from overhead import Watch, find_child, wrap  # noqa: E402

START_GOAL, FIRST_POINT_GOAL, STOP_GOAL = 5.0, 2.0, 2.0
MODES = {"spare off": "0", "spare on": "1"}


def start_once(data: Path, env: dict[str, str]) -> dict[str, float]:
    """Spawn a server; seconds to the API's first 200 and to the UI page's first 200; then stop it."""
    server = Server(data, env=env, poll=0.05)
    try:
        answered = time.monotonic()
        page = httpx.get(f"http://127.0.0.1:{server.port}/", timeout=30)
        page.raise_for_status()
        return {"api": server.ready_seconds, "ui": server.ready_seconds + time.monotonic() - answered}
    finally:
        server.stop()


def rss_mib(pid: int) -> float | None:
    """VmRSS of a process in MiB, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("VmRSS:")), 0)
    return kib / 1024


def cpu_ticks(pid: int) -> int | None:
    """User + system clock ticks a process has used, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def idle_spare(server: Server, timeout: float = 90.0) -> int | None:
    """Wait until the server's spare worker exists and has used no CPU for 0.5 s; its pid, or None if it has none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = find_child(server.proc.pid, "sft_ui.worker", "--spare")
        if pid is not None:
            before = cpu_ticks(pid)
            time.sleep(0.5)
            if before is not None and cpu_ticks(pid) == before:
                return pid
        else:
            time.sleep(0.25)
    return None


def one_job(server: Server, data: Path, label: str, expect_spare: bool) -> dict[str, Any]:
    """Start a long job; time its first loss point; after 3 points stop it and time the stop."""
    spare = idle_spare(server, timeout=90.0 if expect_spare else 1.0)
    out: dict[str, Any] = {
        "spare_pid": spare,
        "spare_rss": rss_mib(spare) if spare else None,
        "server_rss": rss_mib(server.proc.pid),
    }
    if spare is None:
        time.sleep(1.0)  # let the last job's exit settle
    config = {"max_steps": 2000, "logging_steps": 1, "job_name": f"responsiveness {label}"}
    with httpx.Client(base_url=server.base, timeout=60) as http:
        post = time.time()
        job_id = http.post("/train", json={"config": config}).raise_for_status().json()["job_id"]
        watch = Watch(data / "outputs" / job_id, server.proc.pid)
        watch.start()
        points: list[dict[str, Any]] = []
        while not points:
            points = http.get(f"/jobs/{job_id}/metrics").json()["points"]
            if points:
                out["first_point"] = time.time() - post
                break
            time.sleep(0.05)
        while len(points) < 3:
            time.sleep(0.05)
            points = http.get(f"/jobs/{job_id}/metrics").json()["points"]
        record = http.get(f"/jobs/{job_id}").json()
        out["spare_used"] = spare is not None and record.get("worker_pid") == spare
        stop_seen: dict[str, float] = {}

        def poll_status() -> None:
            with httpx.Client(base_url=server.base, timeout=60) as poller:
                while time.time() - stop_sent < 60:
                    if poller.get(f"/jobs/{job_id}").json()["status"] == "stopped":
                        stop_seen["at"] = time.time()
                        return
                    time.sleep(0.025)

        stop_sent = time.time()
        poller = threading.Thread(target=poll_status, daemon=True)
        poller.start()
        answer = http.post(f"/jobs/{job_id}/stop").json()
        out["stop_return"] = time.time() - stop_sent
        poller.join()
        final = http.get(f"/jobs/{job_id}").json()
    watch.halt.set()
    watch.join()
    out["stop_answer"] = answer.get("status")
    out["stop_status"] = stop_seen["at"] - stop_sent if "at" in stop_seen else None
    out["stopped_at_step"] = final["progress"]["step"]
    out["phases"] = {name: at - post for name, at in watch.stamps.items()}
    return out


def med(values: list[float | None]) -> float | None:
    """The median of the values that are not None, or None."""
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def listing(values: list[float | None]) -> str:
    """'1.23, 2.34 s (median 1.50)'."""
    shown = ", ".join("-" if v is None else f"{v:.2f}" for v in values)
    middle = med(values)
    return f"{shown} s (median {'-' if middle is None else f'{middle:.2f}'})"


def phase_line(runs: list[dict[str, Any]]) -> str:
    """Median seconds after POST at which each worker phase was seen."""
    names = ("worker_start", "loading_model", "loading_data", "training")
    parts = []
    for name in names:
        value = med([run["phases"].get(name) for run in runs])
        if value is not None:
            parts.append(f"{name} {value:.2f}")
    return ", ".join(parts) or "no phase lines seen"


def report(
    args: argparse.Namespace,
    starts: dict[str, list[dict[str, float]]],
    jobs: dict[str, list[dict[str, Any]]],
    before: str,
    after: str,
) -> str:
    """The markdown section."""
    lines = [
        f"## Responsiveness ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Machine: {before}; after the run: load average {after}. CPU only; other sessions' processes may share "
        "these cores. Spare off / on alternate, each on its own server; medians.",
        "",
        f"Command: `python bench/responsiveness.py --starts {args.starts} --runs {args.runs}`",
        "",
    ]
    for mode, values in starts.items():
        api, ui = [v["api"] for v in values], [v["ui"] for v in values]
        lines.append(
            f"- Server start, {mode}: spawn -> `GET /api/sft/health` 200 {listing(api)}; -> `GET /` (the UI "
            f"page) 200 {listing(ui)} (goal <= {START_GOAL:g} s)."
        )
    for mode, runs in jobs.items():
        used = sum(1 for run in runs if run["spare_used"])
        note = f"; the spare worker took {used} of {len(runs)} jobs" if mode == "spare on" else ""
        lines.append(
            f"- POST /train -> first loss point, {mode}: {listing([r.get('first_point') for r in runs])} "
            f"(goal <= {FIRST_POINT_GOAL:g} s){note}. Phases seen at (median s after POST): "
            f"{phase_line(runs)}."
        )
    spare_rss = [r["spare_rss"] for r in jobs.get("spare on", []) if r["spare_rss"]]
    server_rss = med([r["server_rss"] for runs in jobs.values() for r in runs])
    if spare_rss:
        lines.append(
            f"- Memory: the idle spare worker holds {statistics.median(spare_rss):.0f} MiB (VmRSS, median of "
            f"{len(spare_rss)}); the server itself {server_rss:.0f} MiB."
        )
    else:
        lines.append(
            f"- Memory: no spare worker process was found (a child with `sft_ui.worker --spare` in its "
            f"command line): this server has no SFT_UI_SPARE_WORKER, so both modes ran without one. The "
            f"server itself holds {server_rss:.0f} MiB."
        )
    for mode, runs in jobs.items():
        steps = ", ".join(str(r["stopped_at_step"]) for r in runs)
        answers = sorted({str(r["stop_answer"]) for r in runs})
        lines.append(
            f"- Stop mid-training, {mode}: POST stop returned after {listing([r['stop_return'] for r in runs])}"
            f" (answer status {', '.join(answers)}); GET job said stopped after "
            f"{listing([r['stop_status'] for r in runs])} (goal <= {STOP_GOAL:g} s); stopped at steps {steps}."
        )
    return wrap("\n".join(lines)) + "\n"


def main() -> None:
    """Run (a), then (b) and (c) together, and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=3, help="server starts per mode (default 3)")
    parser.add_argument("--runs", type=int, default=3, help="jobs per mode (default 3)")
    parser.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()

    before = machine()
    print(f"machine: {before}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="sft-responsiveness-")).resolve()
    cache = Path(os.environ.get("SFT_UI_CACHE_DIR") or tmp / "cache")  # one built-in model for all servers
    envs = {mode: {"SFT_UI_CACHE_DIR": str(cache), "SFT_UI_SPARE_WORKER": flag} for mode, flag in MODES.items()}
    starts: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for n in range(args.starts):
        for mode in MODES if n % 2 == 0 else reversed(MODES):
            starts[mode].append(start_once(tmp / f"data-start-{mode[-3:].strip()}-{n}", envs[mode]))
            print(f"start, {mode}: {starts[mode][-1]}", flush=True)

    datas = {mode: tmp / f"data-jobs-{mode[-3:].strip()}" for mode in MODES}
    servers = {mode: Server(datas[mode], env=envs[mode]) for mode in MODES}
    jobs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        for server in servers.values():  # untimed: makes the built-in model if needed
            httpx.post(f"{server.base}/train", json={"config": {"max_steps": 5}}, timeout=60).raise_for_status()
        for server in servers.values():
            while True:
                counts = httpx.get(f"{server.base}/health", timeout=30).json()["jobs"]
                if not counts["pending"] + counts["running"]:
                    break
                time.sleep(0.5)
        has_spare = idle_spare(servers["spare on"], timeout=60.0) is not None
        print(f"spare worker: {'yes' if has_spare else 'none (the server lacks SFT_UI_SPARE_WORKER)'}", flush=True)
        for n in range(args.runs):
            for mode in MODES if n % 2 == 0 else reversed(MODES):
                run = one_job(servers[mode], datas[mode], mode, expect_spare=has_spare and mode == "spare on")
                jobs[mode].append(run)
                print(
                    f"job, {mode}: first point {run.get('first_point'):.2f} s, stop returned "
                    f"{run['stop_return']:.2f} s, spare {run['spare_pid']} ({run['spare_rss']} MiB)",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
    text = report(args, starts, jobs, before, load())
    print(text)
    if args.write:
        append_results(text)


if __name__ == "__main__":
    main()
