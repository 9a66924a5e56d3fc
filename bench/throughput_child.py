"""One variant of bench/throughput.py, in its own process: `python bench/throughput_child.py SPEC_JSON`.

Trains through `sft_ui.worker.training.run` with a Reporter that times every step, and prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULT_TAG = "BENCH_RESULT "


class BenchReporter:
    """A training.Reporter that keeps the time of every step and the logged points."""

    def __init__(self, want_liger: bool) -> None:
        self.want_liger = want_liger
        self.step_ends: dict[int, float] = {}
        self.points: dict[int, dict[str, Any]] = {}
        self.liger_modules = 0
        self.rss_at_train_mb = 0.0

    def should_stop(self) -> bool:
        """Never: the benchmark runs to max_steps."""
        return False

    def phase(self, name: str, **fields: Any) -> None:
        """At the start of training, note memory and whether Liger's modules are in the model."""
        if name == "training":
            self.rss_at_train_mb = _rss_mb()
            if self.want_liger:
                import gc

                import torch

                self.liger_modules = sum(1 for o in gc.get_objects() if isinstance(o, torch.nn.Module) and _liger(o))

    def progress(self, **fields: Any) -> None:
        """Time the end of each step."""
        self.step_ends[int(fields["step"])] = time.perf_counter()

    def log_metrics(self, point: dict[str, Any]) -> None:
        """Keep the logged point (loss, num_tokens) of each step."""
        self.points[int(point["step"])] = point


def _liger(module: Any) -> bool:
    """Whether Liger replaced this module or patched its forward (it binds its own forward to the instance)."""
    forward = getattr(module.__dict__.get("forward"), "__func__", None)
    return "liger" in type(module).__module__ or "liger" in (getattr(forward, "__module__", None) or "")


def _rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux)."""
    fields = dict(line.split(":", 1) for line in _read("/proc/self/status").splitlines() if ":" in line)
    return int(fields.get("VmRSS", "0 kB").split()[0]) / 1024


def _count_batches(stats: dict[str, int]) -> None:
    """Count what TRL's collator hands the model: positions (with padding), real tokens, flattened batches."""
    from trl.trainer import sft_trainer

    cls = sft_trainer.DataCollatorForLanguageModeling
    original = cls.torch_call

    def counted(self: Any, examples: list[dict[str, Any]]) -> dict[str, Any]:
        out = original(self, examples)
        stats["batches"] += 1
        stats["positions"] += out["input_ids"].numel()
        stats["real"] += int(out["attention_mask"].sum()) if "attention_mask" in out else out["input_ids"].numel()
        stats["flattened"] += "attention_mask" not in out
        stats["rows"] += sum(len(e["seq_lengths"]) if "seq_lengths" in e else 1 for e in examples)
        return out

    cls.torch_call = counted


def child(spec: dict[str, Any]) -> int:
    """Train one variant and print its measurements as one JSON line."""
    import torch

    from sft_ui import settings
    from sft_ui.config import SFTConfig
    from sft_ui.worker import training

    config = SFTConfig(**spec["config"])
    data_root = Path(spec["data_root"])
    stats = {"batches": 0, "positions": 0, "real": 0, "flattened": 0, "rows": 0}
    _count_batches(stats)
    reporter = BenchReporter(want_liger=config.use_liger_kernel)
    with tempfile.TemporaryDirectory(prefix="bench-job-") as job_dir:
        result = training.run(config, Path(job_dir), data_root, settings.cache_dir(data_root), reporter)
    steps = sorted(reporter.step_ends)
    warm = min(spec["warmup"], len(steps) - 2)
    first, last = steps[warm], steps[-1]
    seconds = reporter.step_ends[last] - reporter.step_ends[first]
    tokens = reporter.points.get(last, {}).get("num_tokens")
    if tokens is not None and reporter.points.get(first, {}).get("num_tokens") is not None:
        tokens -= reporter.points[first]["num_tokens"]
    else:  # TRL did not log num_tokens: use the collator's count of real tokens
        tokens = stats["real"] / max(1, stats["batches"]) * (last - first)
    durations = [reporter.step_ends[b] - reporter.step_ends[a] for a, b in pairwise(steps[warm:])]
    cuda = torch.cuda.is_available()
    peak = (
        torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(
        RESULT_TAG
        + json.dumps(
            {
                "tokens_per_s": tokens / seconds,
                "positions_per_s": tokens / seconds * stats["positions"] / max(1, stats["real"]),
                "padding": 1 - stats["real"] / max(1, stats["positions"]),
                "step_ms": statistics.median(durations) * 1000,
                "rows_per_step": stats["rows"] / max(1, stats["batches"]),
                "flattened": stats["flattened"] == stats["batches"] > 0,
                "peak_mb": peak,
                "rss_at_train_mb": reporter.rss_at_train_mb,
                "liger_modules": reporter.liger_modules,
                "loss": result.get("final_loss"),
                "steps": result.get("steps"),
                "device": torch.cuda.get_device_name(0) if cuda else "cpu",
                "precision": "bf16"
                if training.pick_precision(config.precision)[0]
                else ("fp16" if training.pick_precision(config.precision)[1] else "fp32"),
            }
        ),
        flush=True,
    )
    return 0


def _read(path: str) -> str:
    """A text file's content, or '' when it cannot be read (not Linux)."""
    try:
        return Path(path).read_text()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(child(json.loads(sys.argv[1])))
