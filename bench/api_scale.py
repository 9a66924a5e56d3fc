"""API at scale: how fast are writes, the jobs list, one job, a long loss history and the UI's refresh, and how
do they change from 100 to 10,000 jobs?

    python bench/api_scale.py [--jobs 100 10000] [--points 2000] [--calls 100] [--write]

For each --jobs size: builds a temporary data dir with that many ended job records (the shape
JobManager.create_job writes, then what a finished job adds), each with a metrics.jsonl of --points lines like the
worker's, serves `python app.py` on it, and times writes (a saved config, a pending job's stop, create_job) and
REST reads (p50/p95 over --calls calls after a warm-up). For the largest size it also builds the Gradio UI in this
process and times the handlers its gr.Timer runs every tick. Prints a markdown section with the sizes side by
side; --write appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Server, append_results, edit_database, load, machine, percentile  # noqa: E402

LIST_GOAL_MS, JOB_GOAL_MS, WRITE_GOAL_MS, WRITE_RATIO_GOAL = 50.0, 20.0, 20.0, 1.5
STATUSES = ("completed", "failed", "stopped")


def metrics_lines(points: int) -> str:
    """`points` metrics.jsonl lines as training.ReportCallback writes them (a falling loss, a linear LR decay)."""
    lines = []
    for step in range(1, points + 1):
        point = {
            "step": step,
            "loss": round(3.2 * math.exp(-step / 600) + 0.4 + 0.05 * math.sin(step), 6),
            "grad_norm": round(1.5 + 0.3 * math.cos(step / 7), 6),
            "learning_rate": round(2e-4 * (1 - step / (points + 1)), 10),
            "entropy": round(2.1 - step / (4 * points), 6),
            "mean_token_accuracy": round(0.3 + 0.5 * step / points, 6),
            "num_tokens": float(step * 1024),
            "epoch": round(step / 250, 4),
            "time": round(step * 0.118, 3),
        }
        lines.append(json.dumps(point) + "\n")
    return "".join(lines)


def seed(data: Path, jobs: int, points: int, writes: int) -> tuple[list[str], list[str]]:
    """`jobs` ended jobs in a fresh data dir, oldest first, each with `points` metric points, and `writes` pending
    jobs; their ids."""
    from sft_ui.manager import JobManager

    manager = JobManager(data_dir=data, max_concurrent_jobs=1).start()
    template_id = manager.create_job({"job_name": "template", "max_steps": points, "logging_steps": 1})
    template = manager.store.get_job(template_id)
    assert template is not None
    manager.store.close()
    template_dir = Path(template["job_dir"])
    metrics = template_dir.parent / ".metrics.jsonl"
    metrics.write_text(metrics_lines(points), encoding="utf-8")
    last = json.loads(metrics.read_text().splitlines()[-1])
    config_text = (template_dir / "config.json").read_text()
    shutil.rmtree(template_dir)
    table: dict[str, Any] = {}
    started = time.time() - jobs * 600
    for n in range(jobs):
        job_id, status = f"bench{n:07d}", STATUSES[n % 3]
        job_dir = template_dir.parent / job_id
        job_dir.mkdir()
        (job_dir / "config.json").write_text(config_text)
        try:
            os.link(metrics, job_dir / "metrics.jsonl")  # the same bytes in every job, no disk for copies
        except OSError:
            shutil.copyfile(metrics, job_dir / "metrics.jsonl")
        at = started + n * 600

        def iso(t: float) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

        result = None
        if status == "completed":
            result = {
                "output_dir": str(job_dir / "model"),
                "saved": "lora_adapter",
                "steps": points,
                "final_loss": last["loss"],
                "train_loss": 1.234567,
                "train_runtime_seconds": 236.1,
                "runtime_seconds": 244.9,
                "train_rows": 1000,
                "stopped_early": False,
                "dataset_format": "alpaca",
                "prompt_style": "alpaca",
            }
        table[str(n + 1)] = {
            **template,
            "job_id": job_id,
            "name": f"bench job {n}",
            "status": status,
            "created_at": iso(at),
            "started_at": iso(at + 1),
            "finished_at": iso(at + 245),
            "queued_at": iso(at),
            "job_dir": str(job_dir),
            "progress": {"step": points, "total_steps": points, "epoch": last["epoch"], "eta_seconds": 0.0},
            "metrics": last,
            "phase": "saving",
            "worker_pid": 999_999,
            "error": "CUDA out of memory: lower batch_size or max_seq_length" if status == "failed" else None,
            "result": result,
        }
    pending = {}
    for n in range(writes):  # jobs created but not started: each stop over HTTP is one state-change write
        job_id = f"pend{n:07d}"
        (template_dir.parent / job_id).mkdir()
        (template_dir.parent / job_id / "config.json").write_text(config_text)
        pending[str(jobs + n + 1)] = {**template, "job_id": job_id, "job_dir": str(template_dir.parent / job_id)}

    def put(content: dict[str, Any]) -> None:
        content["jobs"] = {**pending, **table}  # oldest first: the newest job stays an ended one

    edit_database(data, put)
    metrics.unlink()
    return [record["job_id"] for record in table.values()], [record["job_id"] for record in pending.values()]


def timed(fn: Callable[[], Any], calls: int, warmup: int = 3) -> dict[str, float]:
    """p50/p95 (ms) of `calls` calls of fn after `warmup` untimed ones; `kb` is the size of its last answer."""
    for _ in range(warmup):
        fn()
    times, answer = [], None
    for _ in range(calls):
        sent = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - sent)
    kb = len(answer.content) / 1024 if isinstance(answer, httpx.Response) else float("nan")
    return {"p50": 1000 * statistics.median(times), "p95": 1000 * percentile(times, 95), "n": calls, "kb": kb}


def time_rest(base: str, ids: list[str], calls: int, points: int) -> dict[str, dict[str, float]]:
    """The REST calls' latencies: the whole list, a page, one job, a long history whole and since/max_points."""
    newest = ids[-1]
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=base, timeout=60) as http:

        def get(path: str, **params: Any) -> Callable[[], httpx.Response]:
            def call() -> httpx.Response:
                response = http.get(path, params=params)
                assert response.status_code == 200, (path, params, response.text[:300])
                return response

            return call

        assert len(http.get("/jobs").json()["jobs"]) >= len(ids)  # and the stopped pending ones
        out[f"GET /jobs (all {len(ids)})"] = timed(get("/jobs"), calls)
        out["GET /jobs?limit=50"] = timed(get("/jobs", limit=50), calls)
        out["GET /jobs?status=failed&limit=50"] = timed(get("/jobs", status="failed", limit=50), calls)
        out["GET /jobs/{id}"] = timed(get(f"/jobs/{newest}"), calls)
        out[f"GET /jobs/{{id}}/metrics ({points} points)"] = timed(get(f"/jobs/{newest}/metrics"), calls)
        out[f"GET /jobs/{{id}}/metrics?since={points - 10}"] = timed(
            get(f"/jobs/{newest}/metrics", since=points - 10), calls
        )
        probe = http.get(f"/jobs/{newest}/metrics", params={"max_points": 10})
        if probe.status_code == 200 and len(probe.json()["points"]) <= 10:  # a server that has max_points
            out["GET /jobs/{id}/metrics?max_points=1000"] = timed(
                get(f"/jobs/{newest}/metrics", max_points=1000), calls
            )
        cold = iter(ids * 2)  # a different job each call: its file is parsed, not served from the reader's cache
        out["GET /jobs/{id}/metrics, another job each call"] = timed(
            lambda: get(f"/jobs/{next(cold)}/metrics")(), min(calls, len(ids) - 3)
        )
    return out


def time_writes(base: str, pending: list[str], calls: int) -> dict[str, dict[str, float]]:
    """The writes over HTTP: a saved config (a new name each call) and a pending job's stop (a state change)."""
    names, stops = iter(range(10**9)), iter(pending)
    with httpx.Client(base_url=base, timeout=60) as http:

        def post(path: str, body: dict[str, Any] | None = None) -> httpx.Response:
            response = http.post(path, json=body)
            assert response.status_code == 200, (path, response.text[:300])
            return response

        return {
            "POST /configs (a new config)": timed(
                lambda: post("/configs", {"name": f"bench-{next(names)}", "config": {"max_steps": 5}}), calls),
            "POST /jobs/{id}/stop (a pending job ends)": timed(
                lambda: post(f"/jobs/{next(stops)}/stop"), min(calls, len(pending) - 3)),
        }


def time_create(data: Path, calls: int) -> dict[str, dict[str, float]]:
    """JobManager.create_job in this process (what POST /train does before its worker starts): folder + record."""
    from sft_ui.manager import JobManager

    manager = JobManager(data_dir=data).start()
    manager._schedule = lambda: None  # type: ignore[method-assign]  # no worker: the write alone
    os.environ["SFT_UI_MAX_QUEUED_JOBS"] = str(10**6)
    out = {"create_job (a new pending job)": timed(lambda: manager.create_job({"max_steps": 5}), calls)}
    manager.store.close()
    return out


def time_ui(data: Path, ids: list[str], calls: int) -> dict[str, dict[str, float]]:
    """The work of one gr.Timer tick of the UI, in this process over the same data dir (each handler alone)."""
    import gradio as gr

    from sft_ui.manager import JobManager
    from sft_ui.playground import Playground
    from sft_ui.web.ui import build_ui
    from sft_ui.web.ui import views as ui_views

    manager = JobManager(data_dir=data).start()
    demo = build_ui(manager, Playground(manager))
    timer = next(block for block in demo.blocks.values() if isinstance(block, gr.Timer))
    ticks = {}
    for fn in demo.fns.values():
        if (timer._id, "tick") in fn.targets:
            ticks[next(o.elem_id for o in fn.outputs if o.elem_id)] = fn.fn
    table, job, compare = ticks["jobs-table"], ticks["job-summary"], ticks["compare-plot"]
    picked, three = ids[-1], ids[-3:]
    table_sig = table("all", "")[-1]
    buf = job(picked, ui_views.MetricsBuffer())[-1]
    state = compare(three, {})[-1]
    compare(three, state)  # the rebuild's second call
    out = {
        "UI tick: jobs table, nothing changed": timed(lambda: table("all", table_sig), calls),
        "UI: jobs table, page load or filter changed": timed(lambda: table("all", ""), calls),
    }
    if hasattr(manager, "changes"):  # a running job's progress changes only its live state, not the records
        real, step = manager.changes, iter(range(10**9))
        manager.changes = lambda: (real()[0], f"{real()[1]} step {next(step)}")
        out["UI tick: jobs table, a job moved"] = timed(lambda: table("all", table_sig), calls)
        manager.changes = real
    else:  # before changes() existed, every tick read, formatted and compared all the jobs
        out["UI tick: jobs table, a job moved"] = out["UI: jobs table, page load or filter changed"]
    out.update(
        {
            "UI tick: selected job, nothing new": timed(lambda: job(picked, buf), calls),
            "UI: select a job (its whole history)": timed(lambda: job(picked, ui_views.MetricsBuffer()), calls),
            "UI tick: Compare of 3 jobs, nothing new": timed(
                lambda: compare(three, {**state, "recolor": False}), calls
            ),
            "UI: Compare of 3 jobs, picked": timed(lambda: compare(three, {}), max(5, calls // 4)),
        }
    )
    manager.shutdown()
    return out


def report(runs: dict[int, dict[str, Any]], ui: dict[str, dict[str, float]], args: argparse.Namespace,
           before: str, after_load: str) -> str:
    """The markdown section: every size side by side, then the largest size's details and the UI."""
    sizes = sorted(runs)
    small, large = sizes[0], sizes[-1]
    lines = [
        f"## API at scale ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Machine: {before}; after the run: load average {after_load}. Other sessions' processes may share these "
        "cores, so wall-clock timings are noisy.",
        "",
        f"Command: `python bench/api_scale.py --jobs {' '.join(map(str, sizes))} --points {args.points} "
        f"--calls {args.calls}`: for each size a fresh data dir of that many ended jobs (each with {args.points} "
        "logged points), served by `python app.py` (no spare worker); REST calls over HTTP (one client, after a "
        "warm-up); `create_job` in the benchmark's process after the server stopped.",
        "",
        "| p95 ms | " + " | ".join(f"{n:,} jobs" for n in sizes) + f" | ratio {large:,}/{small:,} | goal |",
        "|---|" + "---:|" * (len(sizes) + 1) + "---|",
        "| server start to first answer (s) | " + " | ".join(f"{runs[n]['ready']:.2f}" for n in sizes) +
        " | | <= 5 s " + ("ok" if runs[large]["ready"] <= 5 else "**missed**") + " |",
    ]
    for label in [*runs[large]["writes"], *runs[large]["rest"]]:
        values = [runs[n]["writes"].get(label) or runs[n]["rest"].get(label) for n in sizes]
        if any(v is None for v in values):
            continue
        p95 = [v["p95"] for v in values]
        ratio = p95[-1] / p95[0] if p95[0] else float("nan")
        goal = ""
        if label in runs[large]["writes"]:
            met = p95[-1] < WRITE_GOAL_MS and ratio <= WRITE_RATIO_GOAL
            goal = f"< {WRITE_GOAL_MS:g} ms, ratio <= {WRITE_RATIO_GOAL:g}: " + ("ok" if met else "**missed**")
        elif label in ("GET /jobs?limit=50", "GET /jobs?status=failed&limit=50", "GET /jobs/{id}"):
            goal = f"< {JOB_GOAL_MS:g} ms " + ("ok" if p95[-1] < JOB_GOAL_MS else "**missed**")
        lines.append(f"| {label} | " + " | ".join(f"{x:.1f}" for x in p95) + f" | {ratio:.2f} | {goal} |")
    lines += ["", f"Details at {large:,} jobs (p50, p95, answer size) and the UI's timer handlers:", "",
              "| call | n | p50 ms | p95 ms | answer KB |", "|---|---:|---:|---:|---:|"]
    for label, v in {**runs[large]["writes"], **runs[large]["rest"], **ui}.items():
        kb = "" if math.isnan(v["kb"]) else f"{v['kb']:.1f}"
        lines.append(f"| {label} | {v['n']:.0f} | {v['p50']:.1f} | {v['p95']:.1f} | {kb} |")
    return "\n".join(lines) + "\n"


def run_size(jobs: int, args: argparse.Namespace, ui: bool) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Seed `jobs` ended jobs in a fresh data dir, serve it, time reads and writes (and the UI when asked)."""
    tmp = Path(tempfile.mkdtemp(prefix="sft-scale-"))
    data = tmp / "data"
    try:
        began = time.monotonic()
        ids, pending = seed(data, jobs, args.points, args.calls + 3)
        print(f"{jobs} jobs: seeded in {time.monotonic() - began:.1f} s", flush=True)
        # No spare worker: on a fresh data dir it would build the built-in model (~20 s of both cores) while
        # the calls are timed; this benchmark measures the store and the API.
        server = Server(data, env={"SFT_UI_SPARE_WORKER": "0"}, poll=0.05)
        try:
            run = {"ready": server.ready_seconds, "writes": time_writes(server.base, pending, args.calls),
                   "rest": time_rest(server.base, ids, args.calls, args.points)}
        finally:
            server.stop()
        run["writes"].update(time_create(data, args.calls))
        print(f"{jobs} jobs: ready in {run['ready']:.2f} s; writes p95 " + ", ".join(
            f"{label} {v['p95']:.1f} ms" for label, v in run["writes"].items()), flush=True)
        return run, (time_ui(data, ids, args.calls) if ui else {})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """Seed, serve, time, report: each size in turn."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1000],
                        help="ended job records, one run per size (default 100 1000)")
    parser.add_argument("--points", type=int, default=2000, help="metric points per job (default 2000)")
    parser.add_argument("--calls", type=int, default=100, help="timed calls per measurement (default 100)")
    parser.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The managers this process opens to seed and to time create_job need no spare worker: one would import
    # torch and build the built-in model on both cores while the server starts and the calls are timed.
    os.environ["SFT_UI_SPARE_WORKER"] = "0"

    before = machine()
    print(f"machine: {before}", flush=True)
    runs: dict[int, dict[str, Any]] = {}
    ui: dict[str, dict[str, float]] = {}
    for jobs in sorted(set(args.jobs)):
        runs[jobs], found = run_size(jobs, args, ui=jobs == max(args.jobs))
        ui = found or ui
    text = report(runs, ui, args, before, load())
    print(text)
    if args.write:
        append_results(text)


if __name__ == "__main__":
    main()
