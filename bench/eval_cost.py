"""What evaluation costs per training step: the same built-in job with and without periodic evaluation, sample
answers and the final score, interleaved in one run (ABBA order), medians side by side.

    python bench/eval_cost.py [--steps 100] [--repeats 2] [--write]

The per-step cost is (runtime of the variant - runtime of the plain job) / steps; the result's own counters
(eval_seconds, samples.seconds_per_round, score.seconds) say where the time went. --write appends the table to
bench/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import append_results, machine  # noqa: E402
from sft_ui.manager import JobManager  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "plain (no eval, no samples, no score)": {"eval_max_rows": 0},
    "eval every 10 % of the steps on 116 held-out rows": {"eval_split": 0.1, "eval_max_rows": 0},
    "+ 3 sample prompts answered 10 times": {"eval_split": 0.1, "eval_max_rows": 0, "sample_prompts": "auto"},
    "+ final score on 100 rows (tuned and base)": {"eval_split": 0.1, "sample_prompts": "auto"},
}


def run(manager: JobManager, config: dict[str, Any]) -> dict[str, Any]:
    """Train one job to its end; its result with the wall time from start to end."""
    began = time.monotonic()
    job_id = manager.create_job(config)
    manager.start_job(job_id)
    while (record := manager.get_job_status(job_id))["status"] in ("pending", "running"):
        time.sleep(0.2)
    if record["status"] != "completed":
        raise SystemExit(f"{config}: {record['status']}: {record['error']}")
    return {**record["result"], "wall": time.monotonic() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2, help="ABBA rounds")
    parser.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    manager = JobManager(data_dir=Path(tempfile.mkdtemp()) / "data").start()
    names = list(VARIANTS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    try:
        run(manager, {"max_steps": 5})  # warm the caches (tokenized rows, the spare's imports)
        for round_ in range(args.repeats):
            for name in names if round_ % 2 == 0 else names[::-1]:
                runs[name].append(run(manager, {"max_steps": args.steps, "seed": 7, **VARIANTS[name]}))
    finally:
        manager.shutdown()
    plain = statistics.median(r["runtime_seconds"] for r in runs[names[0]])
    lines = [f"## Evaluation cost ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"Machine: {machine()}. Built-in model, {args.steps} steps, batch 8, medians of {args.repeats} "
             "interleaved runs (bench/eval_cost.py).", "",
             "| variant | job runtime s | vs plain | extra ms per step | eval s | samples s/round | score s |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        med = statistics.median(r["runtime_seconds"] for r in runs[name])
        last = runs[name][-1]
        samples = (last.get("samples") or {}).get("seconds_per_round")
        score = (last.get("score") or {}).get("seconds")
        lines.append(f"| {name} | {med:.2f} | {med / plain:.2f}x | {(med - plain) / args.steps * 1000:.0f} | "
                     f"{last.get('eval_seconds', '-')} | {samples if samples is not None else '-'} | "
                     f"{score if score is not None else '-'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        append_results(text)


if __name__ == "__main__":
    main()
