"""`python -m sft_ui.worker JOB_DIR`: run one job's training in its own process.

Only the standard library is imported before the stop handler is installed, so a stop is
honoured from the first moment; torch and friends load afterwards, in training.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from sft_ui import jobdir

_stop = threading.Event()


def _on_signal(signum: int, frame: Any) -> None:
    _stop.set()


class Reporter:
    """What training.py tells the server: phase, progress and metrics, through the job dir."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.status: dict[str, Any] = {"phase": "starting", "step": 0, "total_steps": None, "epoch": 0.0,
                                       "eta_seconds": None, "metrics": {}}
        self._last_write = 0.0
        self._metrics = open(job_dir / jobdir.METRICS, "a", encoding="utf-8")
        self._flush(force=True)

    def should_stop(self) -> bool:
        """True once a stop was asked for, by signal or by the stop file."""
        if not _stop.is_set() and (self.job_dir / jobdir.STOP).exists():
            _stop.set()
        return _stop.is_set()

    def phase(self, name: str, **fields: Any) -> None:
        print(f"[sft-ui] {name}", flush=True)
        self.status.update(phase=name, **fields)
        self._flush(force=True)

    def progress(self, **fields: Any) -> None:
        self.status.update(fields)
        self._flush()

    def log_metrics(self, point: dict[str, Any]) -> None:
        self._metrics.write(json.dumps(point) + "\n")
        self._metrics.flush()
        self.status["metrics"] = point
        self._flush()

    def _flush(self, force: bool = False) -> None:
        # At most a few small writes a second, however fast the steps are.
        now = time.monotonic()
        if force or now - self._last_write >= 0.25:
            jobdir.write_json(self.job_dir / jobdir.STATUS, self.status)
            self._last_write = now

    def close(self) -> None:
        self._flush(force=True)
        self._metrics.close()


def _watch_parent(parent: int, grace: float = 20.0) -> None:
    """Stop when the server that started us is gone, and leave for good soon after."""
    while os.getppid() == parent:
        time.sleep(2.0)
    print("[sft-ui] the server is gone; stopping", flush=True)
    _stop.set()
    time.sleep(grace)
    os._exit(3)


def one_line(exc: BaseException) -> str:
    """A cause a person can act on, in one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = type(exc).__name__
    if "OutOfMemory" in name or "out of memory" in text.lower():
        return ("out of memory: lower batch_size or max_seq_length, turn on use_lora or "
                "gradient_checkpointing, or use a smaller model")
    return text[:500]


def _resume_point(job_dir: Path, reporter: Reporter) -> Path | None:
    """The checkpoint folder that resume.json (written by JobManager.resume_job) names, or None."""
    resume = jobdir.read_json(job_dir / jobdir.RESUME)
    if not resume:
        return None
    folder = job_dir / jobdir.CHECKPOINTS / str(resume.get("checkpoint", ""))
    if not (folder / "trainer_state.json").is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint {folder.name!r} is missing or incomplete")
    reporter.phase("starting", step=int(resume.get("step") or 0))
    return folder


def main(argv: list[str] | None = None) -> int:
    """Run the job in JOB_DIR and write its result.json; the exit code is 0 unless it crashed."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    parser = argparse.ArgumentParser(prog="python -m sft_ui.worker")
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    job_dir: Path = args.job_dir
    reporter = Reporter(job_dir)
    outcome: dict[str, Any]
    try:
        from sft_ui.config import SFTConfig

        config = SFTConfig(**json.loads((job_dir / jobdir.CONFIG).read_text(encoding="utf-8")))
        if reporter.should_stop():
            outcome = {"status": "stopped", "error": None, "result": None}
        else:
            resume = _resume_point(job_dir, reporter)
            from sft_ui import training  # heavy: torch, transformers, trl, peft

            result = training.run(config, job_dir, args.data_root, args.cache_dir, reporter, resume_from=resume)
            outcome = {"status": "stopped" if result.get("stopped_early") else "completed",
                       "error": None, "result": result}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes the job's error
        traceback.print_exc()
        outcome = {"status": "stopped" if _stop.is_set() else "failed", "error": one_line(exc), "result": None}
        if outcome["status"] == "stopped":
            outcome["error"] = None
    reporter.phase("done")
    reporter.close()
    jobdir.write_json(job_dir / jobdir.RESULT, outcome, durable=True)
    print(f"[sft-ui] finished: {outcome['status']}" + (f": {outcome['error']}" if outcome["error"] else ""),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
