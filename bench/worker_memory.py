"""Where a training worker's resident memory goes: /proc VmRSS sampled every 10 ms around each phase of a run.

    python bench/worker_memory.py MODEL_DIR [--rows short|long] [--steps 4] [--batch-size 4] [--max-length 256]
                                  [--variants base,trl-tile,arena2] [--repeats 1]

Each variant trains MODEL_DIR (LoRA, through sft_ui.worker.training.run, as a job's worker does) in a fresh process
and reports the resident memory after the imports, after loading the model, when training begins, the peak during the
steps, after the steps, and VmHWM. Variants: base (sft-ui as it is), trl-tile (TRL's fused LM head in vocabulary tiles
of 32768, its default, instead of sft-ui's CPU_LM_HEAD_TILE), arena2 (MALLOC_ARENA_MAX=2), trim (malloc_trim(0) after
each step), metrics-off (the fused head computes log-probabilities only, no entropy / token accuracy); join them with
+ (trl-tile+trim). Rows: short = the built-in tasks (~40 tokens), long = alpaca rows cut at --max-length (every batch
is max-length wide). Variants alternate each round (ABBA); medians. --profile writes torch.profiler's memory timeline
of the third step (JSON: times, bytes per category).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TAG = "MEMORY_RESULT "


def rss_mb(field: str = "VmRSS") -> float:
    """This process's VmRSS (or VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    """Keeps the highest VmRSS seen since the last `take()`."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.high = 0.0
        self.lock = threading.Lock()

    def run(self) -> None:
        """Sample every 10 ms, forever."""
        while True:
            now = rss_mb()
            with self.lock:
                self.high = max(self.high, now)
            time.sleep(0.01)

    def take(self) -> float:
        """The highest VmRSS since the last call; restarts from now."""
        with self.lock:
            high, self.high = self.high, rss_mb()
        return high


def child(spec: dict[str, Any]) -> None:
    """One run in this process; prints TAG + JSON."""
    marks: dict[str, float] = {"start": rss_mb()}
    import torch

    from sft_ui.config import SFTConfig
    from sft_ui.worker import training

    marks["imported"] = rss_mb()
    variant = set(spec["variant"].split("+"))
    if "trl-tile" in variant:
        training.CPU_LM_HEAD_TILE = 32768  # TRL's own tile width: as before sft-ui narrowed it
    if "metrics-off" in variant:
        import trl.trainer.sft_trainer as sft

        original = sft.add_fused_lm_head

        def log_probs_only(model: Any, **kwargs: Any) -> None:
            original(model, **{**kwargs, "outputs": ("log_probs",)})
            forward = model.forward

            def forward_with_zeros(*args: Any, **kw: Any) -> Any:
                out = forward(*args, **kw)
                if kw.get("fused_lm_head"):  # compute_loss reads these two: zeros of the right shape
                    out.entropy = torch.zeros_like(out.log_probs)
                    out.is_top1 = torch.zeros_like(out.label_mask)
                return out

            model.forward = forward_with_zeros

        sft.add_fused_lm_head = log_probs_only
    trim = None
    if "trim" in variant:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
    profiler = None
    if spec.get("profile"):
        from torch.profiler import ProfilerActivity, profile

        profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True)
    sampler = Sampler()
    sampler.start()
    steps: list[dict[str, float]] = []
    losses: list[float] = []

    class Reporter:
        last = time.perf_counter()

        def should_stop(self) -> bool:
            return False

        def phase(self, name: str, **fields: Any) -> None:
            marks[name] = rss_mb()
            if name == "training":
                marks["training_peak_before"] = sampler.take()
                Reporter.last = time.perf_counter()

        def progress(self, **fields: Any) -> None:
            now = time.perf_counter()
            steps.append({"peak": sampler.take(), "after": rss_mb(), "seconds": now - Reporter.last})
            if trim is not None:
                trim(0)
            if profiler is not None and len(steps) == 2:
                profiler.start()  # the third step, warm
            if profiler is not None and len(steps) == 3:
                profiler.stop()
                profiler.export_memory_timeline(spec["profile"], device="cpu")
                print(profiler.key_averages().table(sort_by="self_cpu_memory_usage", row_limit=25), flush=True)
            Reporter.last = time.perf_counter()

        def log_metrics(self, point: dict[str, Any]) -> None:
            if "loss" in point:
                losses.append(point["loss"])

    config = SFTConfig(**spec["config"])
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as job:
        data_root = Path(spec["data_root"])
        training.run(config, Path(job), data_root, data_root / "cache", Reporter())
    marks["saved"] = rss_mb()
    marks["hwm"] = rss_mb("VmHWM")
    print(TAG + json.dumps({"marks": marks, "steps": steps, "losses": losses}), flush=True)


def long_rows(path: Path, n: int) -> None:
    """Alpaca rows of ~400 words: every one is cut at max length, so every batch is max-length wide."""
    from sft_ui.builtin import builtin_rows

    tasks = builtin_rows("train")
    words = " ".join(f"{r['instruction']} {r['input']} {r['output']}" for r in tasks).split()
    rows = []
    for i in range(n):
        start = (i * 37) % max(1, len(words) - 400)
        rows.append({"instruction": "Continue the text.", "input": "", "output": " ".join(words[start : start + 400])})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    """Run the variants in fresh processes, print a table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--rows", choices=["short", "long"], default="short")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--variants", default="base,trl-tile")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--profile", default=None, help="torch.profiler memory timeline of the third step to this .html")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    root = Path(tempfile.mkdtemp(prefix="sft-mem-"))
    model = root / "models" / args.model_dir.name
    model.mkdir(parents=True)
    for f in args.model_dir.iterdir():
        os.link(f, model / f.name)  # the worker loads models from under its data root
    config = {
        "base_model": f"models/{model.name}",
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "max_seq_length": args.max_length,
        "save_steps": 0,
        "logging_steps": 1,
        "seed": 42,
    }
    if args.rows == "long":
        long_rows(root / "long.jsonl", args.steps * args.batch_size + 8)
        config.update(dataset_name="long.jsonl", dataset_format="alpaca")
    variants = [v for v in args.variants.split(",") if v]
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for n in range(args.repeats):
        for v in variants if n % 2 == 0 else variants[::-1]:
            env = {**os.environ, "HF_HUB_OFFLINE": "1"}
            if "arena2" in v.split("+"):
                env["MALLOC_ARENA_MAX"] = "2"
            spec = {"variant": v, "config": config, "data_root": str(root), "profile": args.profile}
            out = subprocess.run(
                [sys.executable, __file__, str(args.model_dir), "--child", json.dumps(spec)],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            found = [line for line in out.stdout.splitlines() if line.startswith(TAG)]
            if args.profile:
                print(out.stdout[-12000:])
            if not found:
                print(f"{v}: failed\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}", flush=True)
                continue
            got = json.loads(found[-1][len(TAG) :])
            results[v].append(got)
            m = got["marks"]
            print(
                f"{v}: imported {m['imported']:.0f}, model {m.get('loading_data', 0):.0f}, train start "
                f"{m.get('training', 0):.0f}, step peaks {[round(s['peak']) for s in got['steps']]}, after "
                f"{[round(s['after']) for s in got['steps']]}, s/step {[round(s['seconds'], 2) for s in got['steps']]}"
                f", hwm {m['hwm']:.0f} MiB, losses {got['losses']}",
                flush=True,
            )
    print("\n| variant | imports | + model | train start | peak in steps | after steps | VmHWM | s/step |")
    print("|---|---|---|---|---|---|---|---|")
    for v, runs in results.items():
        if not runs:
            continue

        def med(f: Any, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(f(r) for r in runs)

        print(
            f"| {v} | {med(lambda r: r['marks']['imported']):.0f} | {med(lambda r: r['marks']['loading_data']):.0f} "
            f"| {med(lambda r: r['marks']['training']):.0f} | {med(lambda r: max(s['peak'] for s in r['steps'])):.0f} "
            f"| {med(lambda r: r['steps'][-1]['after']):.0f} | {med(lambda r: r['marks']['hwm']):.0f} "
            f"| {med(lambda r: statistics.median(s['seconds'] for s in r['steps'][1:])):.2f} |"
        )


if __name__ == "__main__":
    main()
