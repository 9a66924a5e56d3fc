"""Overhead benchmark: the same training job run by a plain TRL script and through sft-ui, side by side.

    python bench/overhead.py [--steps 200] [--full] [--repeats 3] [--model MODEL_DIR] [--batch-size 8]
                             [--max-length 256] [--warmup-steps 5] [--trl-defaults-steps 0] [--write]

Trains the built-in model (builtin:tiny-gpt2), or the local model folder --model (hard-linked under the server's
temporary data root, so that the job names it as `models/<folder name>`), on the built-in data set with SFTConfig()'s
defaults (LoRA, batch 8, max length 256, --steps steps) (a) with bench/plain_trl.py, a plain script using only
transformers, datasets, peft and trl, in a fresh Python process on the same rows (exported to a jsonl exactly as
sft_ui.data.prepare shapes them), and (b) through sft-ui: `python app.py` on a temporary data dir, POST
/api/sft/train, then GET the job until it is completed. Plain and sft-ui runs alternate (ABBA), --repeats pairs after
one untimed warm-up of each; medians.

Reports TRL's train_runtime for both (goal: sft-ui / plain <= 1.03), the whole-job time (plain: process spawn to exit,
imports included; sft-ui: POST to the first GET that says completed) and where sft-ui's extra seconds go, phase by
phase: worker spawn, Python start + imports, model load, data prep + trainer init, training, save, exit, reap and the
server's record update; and each side's peak resident memory (VmHWM: the plain script's own, the worker's as last read
from /proc while it ran). --trl-defaults-steps N also runs the plain script once with TRL's own SFTConfig defaults for
bf16 and gradient checkpointing (not sft-ui's) and reports its time per step. sft-ui's phases come from the worker's
`[sft-ui] <phase>` lines in log.txt and its process in /proc (start time, exit, reap), watched every 20 ms; the plain
script stamps its own phases.
Prints a markdown section; --write appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, append_results, link_model, load, machine, training_env  # noqa: E402

WATCH_POLL = 0.02  # seconds between looks at the job dir and /proc
RATIO_GOAL = 1.03
# (label, plain phase, sft-ui phase); each phase is a pair of stamps (from, to).
PHASES: list[tuple[str, tuple[str, str] | None, tuple[str, str] | None]] = [
    ("POST /train answered", None, ("post", "posted")),
    ("POST sent -> worker process started", None, ("post", "worker_start")),
    ("Python start + imports", ("spawn", "imported"), ("worker_start", "loading_model")),
    ("model + tokenizer load", ("imported", "model_loaded"), ("loading_model", "loading_data")),
    ("data prep + trainer init (to the first step)", ("model_loaded", "train_begin"), ("loading_data", "training")),
    ("training loop", ("train_begin", "trained"), ("training", "saving")),
    ("save model + tokenizer", ("trained", "saved"), ("saving", "done")),
    ("result file + process exit", ("saved", "exited"), ("done", "exited")),
    ("server reaps the worker (polls every 0.25 s)", None, ("exited", "reaped")),
    ("record updated -> client sees completed", None, ("reaped", "seen")),
]


def export_rows(config: dict[str, Any], data: Path, cache: Path, path: Path) -> int:
    """Write the job's train rows as sft_ui.data.prepare gives them to TRL (the built-in model: alpaca prompt, output
    + eos; a model with its own chat template: user and assistant turns)."""
    from sft_ui import data as sft_data
    from sft_ui.config import SFTConfig

    job = SFTConfig(**config)
    tokenizer = sft_data.load_tokenizer(job.base_model, data, cache)
    rows, _, kwargs = sft_data.prepare(job, data, tokenizer)
    if not kwargs.get("completion_only_loss") or kwargs.get("assistant_only_loss"):
        raise SystemExit(f"bench/plain_trl.py trains prompt/completion rows only; sft-ui's loss settings: {kwargs}")
    path.write_text("".join(json.dumps(row) + "\n" for row in rows.to_list()), encoding="utf-8")
    return len(rows)


def run_plain(
    model_dir: Path, rows: Path, work: Path, steps: int, args: argparse.Namespace, trl_defaults: bool = False
) -> dict[str, Any]:
    """bench/plain_trl.py in a fresh process; its stamps plus spawn and exit as seen from here."""
    work.mkdir(parents=True)
    command = [
        sys.executable,
        str(ROOT / "bench" / "plain_trl.py"),
        str(model_dir),
        str(rows),
        str(work),
        "--steps",
        str(steps),
        "--stamps",
        str(work / "stamps.json"),
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--lora-targets",
        ",".join(args.lora_targets),
    ]
    command += (["--full"] if args.full else []) + (["--trl-defaults"] if trl_defaults else [])
    with open(work / "log.txt", "wb") as log:
        spawn = time.time()
        code = subprocess.call(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=training_env(), cwd=work
        )
        exited = time.time()
    if code != 0:
        raise SystemExit(f"the plain TRL script failed (exit {code}); see {work / 'log.txt'}")
    report = json.loads((work / "stamps.json").read_text())
    report["stamps"].update(spawn=spawn, exited=exited)
    report["wall"] = exited - spawn
    return report


def proc_start(pid: int) -> float:
    """When process `pid` started, as a time.time() value (10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)


def find_child(parent: int, *needles: str) -> int | None:
    """The pid of a child of `parent` whose command line contains every one of `needles`, or None."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            if all(needle in cmdline for needle in needles):
                return int(entry.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def vm_hwm_mb(pid: int) -> float:
    """Process `pid`'s peak resident memory so far (VmHWM) in MiB; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0.0)


class Watch(threading.Thread):
    """Stamps (time.time()) each `[sft-ui] <phase>` line of a job's log.txt and its worker's start, exit and reap."""

    def __init__(self, job_dir: Path, server_pid: int) -> None:
        super().__init__(daemon=True)
        self.job_dir, self.server_pid = job_dir, server_pid
        self.stamps: dict[str, float] = {}
        self.pid: int | None = None
        self.peak_rss_mb = 0.0  # the worker's VmHWM as last read
        self.halt = threading.Event()

    def run(self) -> None:
        """Look every WATCH_POLL s until halted."""
        offset, pending = 0, b""
        while not self.halt.wait(WATCH_POLL):
            now = time.time()
            if self.pid is None:
                self.pid = find_child(self.server_pid, str(self.job_dir))
                if self.pid is not None:
                    self.stamps["worker_start"] = proc_start(self.pid)
            try:
                with open(self.job_dir / "log.txt", "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                offset += len(chunk)
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.startswith(b"[sft-ui] "):
                        name = line[9:].decode(errors="replace").split(":")[0].split()[0]
                        self.stamps.setdefault(name, now)
            except OSError:
                pass
            if self.pid is not None and "exited" not in self.stamps:
                self.peak_rss_mb = max(self.peak_rss_mb, vm_hwm_mb(self.pid))
            if self.pid is not None and "reaped" not in self.stamps:
                try:
                    state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state == "Z":
                        self.stamps.setdefault("exited", now)
                except (OSError, IndexError):
                    self.stamps.setdefault("exited", now)
                    self.stamps["reaped"] = now


def run_sftui(server: Server, data: Path, steps: int, job: dict[str, Any]) -> dict[str, Any]:
    """POST /train, then GET the job until it ends (every 0.5 s, every 20 ms once the worker said done)."""
    config = {**job, "max_steps": steps, "job_name": f"overhead {steps} steps"}
    with httpx.Client(base_url=server.base, timeout=60) as http:
        post = time.time()
        answer = http.post("/train", json={"config": config})
        posted = time.time()
        answer.raise_for_status()
        job_id = answer.json()["job_id"]
        watch = Watch(data / "outputs" / job_id, server.proc.pid)
        watch.start()
        while True:
            record = http.get(f"/jobs/{job_id}").json()
            if record["status"] not in ("pending", "running"):
                seen = time.time()
                break
            time.sleep(WATCH_POLL if "done" in watch.stamps else 0.5)
    time.sleep(3 * WATCH_POLL)  # let the watcher see the reap, if the record won the race
    watch.halt.set()
    watch.join()
    if record["status"] != "completed":
        raise SystemExit(f"the sft-ui job ended {record['status']}: {record.get('error')}")
    stamps = {**watch.stamps, "post": post, "posted": posted, "seen": seen}
    stamps.setdefault("reaped", min(seen, stamps.get("exited", seen)))
    result = record["result"]
    return {
        "stamps": stamps,
        "train_runtime": float(result["train_runtime_seconds"]),
        "train_loss": float(result["train_loss"]),
        "steps": result["steps"],
        "train_rows": result["train_rows"],
        "wall": seen - post,
        "started_at": record["started_at"],
        "peak_rss_mb": watch.peak_rss_mb,
        "finished_at": record["finished_at"],
    }


def span(run: dict[str, Any], phase: tuple[str, str] | None) -> float | None:
    """Seconds between a phase's two stamps in one run, or None."""
    if phase is None or phase[0] not in run["stamps"] or phase[1] not in run["stamps"]:
        return None
    return run["stamps"][phase[1]] - run["stamps"][phase[0]]


def median_span(runs: list[dict[str, Any]], phase: tuple[str, str] | None) -> float | None:
    """The median of a phase over runs, or None where no run has it."""
    values = [v for run in runs if (v := span(run, phase)) is not None]
    return statistics.median(values) if values else None


def wrap(text: str) -> str:
    """Markdown lines wrapped at 118 columns, bullets indented; tables and headings as they are."""
    out = []
    for line in text.split("\n"):
        if line.startswith(("|", "#")) or len(line) <= 118:
            out.append(line)
        else:
            out.append(
                textwrap.fill(
                    line,
                    118,
                    subsequent_indent="  " if line.startswith("- ") else "",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
    return "\n".join(out)


def fmt(value: float | None) -> str:
    """Seconds with two decimals, or a dash."""
    return "-" if value is None else f"{value:.2f}"


def report(
    args: argparse.Namespace, plain: list[dict[str, Any]], sftui: list[dict[str, Any]], before: str, after: str
) -> str:
    """The markdown section."""
    p_rt = statistics.median(r["train_runtime"] for r in plain)
    s_rt = statistics.median(r["train_runtime"] for r in sftui)
    pairs = statistics.median(s["train_runtime"] / p["train_runtime"] for p, s in zip(plain, sftui, strict=True))
    p_wall = statistics.median(r["wall"] for r in plain)
    s_wall = statistics.median(r["wall"] for r in sftui)
    mode = "full fine-tune" if args.full else "LoRA r 16"
    model = f"{args.model.name} (a local model folder)" if args.model else "builtin:tiny-gpt2"
    options = "".join(
        f" {flag} {value}"
        for flag, value, default in (
            ("--model", args.model, None),
            ("--batch-size", args.batch_size, 8),
            ("--max-length", args.max_length, 256),
            ("--warmup-steps", args.warmup_steps, 5),
            ("--trl-defaults-steps", args.trl_defaults_steps, 0),
        )
        if value != default
    )
    p_mem = statistics.median(r["peak_rss_mb"] for r in plain)
    s_mem = statistics.median(r["peak_rss_mb"] for r in sftui)
    lines = [
        f"## Overhead ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Machine: {before}; after the run: load average {after}. CPU only; other sessions' processes may share "
        "these cores, so single timings are noisy: runs alternate plain / sft-ui and the medians are compared.",
        "",
        f"Command: `python bench/overhead.py --steps {args.steps} --repeats {args.repeats}"
        + (" --full" if args.full else "")
        + f"{options}` ({args.steps} steps of {model} on builtin:tasks, {mode}, "
        f"batch {args.batch_size}, max length {args.max_length}, logging every step; plain = bench/plain_trl.py on "
        f"the same {plain[0]['train_rows']} rows).",
        "",
        "- Training time (TRL's train_runtime): plain "
        + ", ".join(f"{r['train_runtime']:.2f}" for r in plain)
        + f" s (median {p_rt:.2f}); sft-ui "
        + ", ".join(f"{r['train_runtime']:.2f}" for r in sftui)
        + f" s (median {s_rt:.2f}): **ratio {s_rt / p_rt:.3f}** (median of the pairs' ratios {pairs:.3f}; "
        f"goal <= {RATIO_GOAL}).",
        f"- Same training: final train_loss plain {plain[0]['train_loss']:.6f}, sft-ui {sftui[0]['train_loss']:.6f} "
        f"({plain[0]['steps']} vs {sftui[0]['steps']} steps, {plain[0]['train_rows']} vs {sftui[0]['train_rows']} "
        "rows).",
        "- Whole job: plain script, spawn to exit, "
        + ", ".join(f"{r['wall']:.2f}" for r in plain)
        + f" s (median {p_wall:.2f}); sft-ui, POST to completed, "
        + ", ".join(f"{r['wall']:.2f}" for r in sftui)
        + f" s (median {s_wall:.2f}): **{s_wall - p_wall:+.2f} s** ({100 * (s_wall / p_wall - 1):+.0f} %).",
        f"- Peak resident memory (VmHWM) of the training process: plain {p_mem:.0f} MiB, sft-ui's worker "
        f"{s_mem:.0f} MiB (medians).",
        *trl_defaults_lines(args, plain, sftui),
        "",
        "| phase (median s) | plain TRL | sft-ui | sft-ui - plain |",
        "|---|---|---|---|",
    ]
    for label, plain_phase, sftui_phase in PHASES:
        a, b = median_span(plain, plain_phase), median_span(sftui, sftui_phase)
        diff = None if b is None else b - (a or 0.0)
        lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(diff)} |")
    lines.append(f"| **whole job** | {p_wall:.2f} | {s_wall:.2f} | {s_wall - p_wall:+.2f} |")
    p_data = median_span(plain, ("model_loaded", "data_loaded"))
    p_init = median_span(plain, ("data_loaded", "trainer_ready"))
    lines += [
        "",
        f"The plain script's data prep + trainer init splits into reading the jsonl {fmt(p_data)} s and building "
        f"SFTTrainer (it tokenizes the rows) {fmt(p_init)} s. sft-ui's phases are the worker's `[sft-ui] <phase>` "
        f"lines as a watcher saw them (every {WATCH_POLL * 1000:.0f} ms) and its process in /proc; the medians of "
        "the phases need not add up to the median of the whole.",
        "",
    ]
    return wrap("\n".join(lines))


def trl_defaults_lines(args: argparse.Namespace, plain: list[dict[str, Any]], sftui: list[dict[str, Any]]) -> list[str]:
    """The bullet on the plain script run with TRL's own bf16 / gradient checkpointing defaults, if there was one."""
    if not args.trl_defaults:
        return []
    runs = args.trl_defaults
    per_step = statistics.median(r["train_runtime"] / r["steps"] for r in runs)
    p_step = statistics.median(r["train_runtime"] / r["steps"] for r in plain)
    s_step = statistics.median(r["train_runtime"] / r["steps"] for r in sftui)
    return [
        f"- TRL's own SFTConfig defaults (bf16={runs[0]['bf16']}, gradient_checkpointing="
        f"{runs[0]['gradient_checkpointing']}; plain script, {runs[0]['steps']} steps, {len(runs)} run(s)): "
        f"{per_step:.2f} s per step (train_runtime / steps) against {p_step:.2f} (plain) and {s_step:.2f} (sft-ui) "
        f"with sft-ui's choice (fp32 and no checkpointing on a CPU): **{per_step / s_step:.1f}x** sft-ui's; final "
        f"train_loss {runs[0]['train_loss']:.4f}, peak memory {runs[0]['peak_rss_mb']:.0f} MiB."
    ]


def link_model_under(folder: Path, data: Path) -> str:
    """Link a model folder under the data root's models/; its base_model name there."""
    link_model(folder, data / "models" / folder.name)
    return f"models/{folder.name}"


def main() -> None:
    """Warm up, run the pairs, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps of each job (default 200)")
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    parser.add_argument("--repeats", type=int, default=3, help="timed plain / sft-ui pairs (default 3)")
    parser.add_argument("--model", type=Path, help="a local model folder instead of builtin:tiny-gpt2")
    parser.add_argument("--batch-size", type=int, default=8, help="rows per step (default 8)")
    parser.add_argument("--max-length", type=int, default=256, help="max_seq_length (default 256)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="steps of the untimed warm-up runs (default 5)")
    parser.add_argument(
        "--trl-defaults-steps", type=int, default=0, help="also time the plain script with TRL's defaults (0: no)"
    )
    parser.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    if args.model is not None and not (args.model / "config.json").is_file():
        parser.error(f"--model: {args.model} is not a model folder (no config.json)")

    before = machine()
    print(f"machine: {before}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="sft-overhead-")).resolve()
    data = tmp / "data"
    cache = Path(os.environ.get("SFT_UI_CACHE_DIR") or tmp / "cache")  # one built-in model for all runs
    job: dict[str, Any] = {"use_lora": not args.full, "batch_size": args.batch_size, "max_seq_length": args.max_length}
    if args.model is not None:
        job["base_model"] = link_model_under(args.model.resolve(), data)
    model_type = json.loads((args.model / "config.json").read_text())["model_type"] if args.model else "gpt2"
    from sft_ui.config import BUILTIN_MODEL
    from sft_ui.worker.training import LORA_TARGETS  # the modules sft-ui adapts, for the plain script too

    args.lora_targets = LORA_TARGETS[model_type]
    server = Server(data, env={"SFT_UI_CACHE_DIR": str(cache), "SFT_UI_SPARE_WORKER": "0"})
    plain: list[dict[str, Any]] = []
    sftui: list[dict[str, Any]] = []
    args.trl_defaults = []
    try:
        # untimed: makes the built-in model if needed, warms the disk cache
        run_sftui(server, data, args.warmup_steps, job)
        from sft_ui.data import resolve_model_path

        model_dir = Path(resolve_model_path(job.get("base_model", BUILTIN_MODEL), data, cache))
        rows = tmp / "rows.jsonl"
        export_rows(job, data, cache, rows)
        run_plain(model_dir, rows, tmp / "plain-warm", args.warmup_steps, args)
        for n in range(args.repeats):
            order = ("plain", "sftui") if n % 2 == 0 else ("sftui", "plain")
            for side in order:
                if side == "plain":
                    plain.append(run_plain(model_dir, rows, tmp / f"plain-{n}", args.steps, args))
                    got = plain[-1]
                else:
                    sftui.append(run_sftui(server, data, args.steps, job))
                    got = sftui[-1]
                print(
                    f"{side}: train_runtime {got['train_runtime']:.2f} s, whole job {got['wall']:.2f} s, "
                    f"peak RSS {got['peak_rss_mb']:.0f} MiB",
                    flush=True,
                )
        if args.trl_defaults_steps:
            args.trl_defaults.append(
                run_plain(model_dir, rows, tmp / "plain-trl-defaults", args.trl_defaults_steps, args, trl_defaults=True)
            )
            got = args.trl_defaults[-1]
            print(
                f"plain, TRL defaults: train_runtime {got['train_runtime']:.2f} s for {got['steps']} steps", flush=True
            )
    finally:
        server.stop()
    text = report(args, plain, sftui, before, load())
    print(text)
    if args.write:
        append_results(text)


if __name__ == "__main__":
    main()
