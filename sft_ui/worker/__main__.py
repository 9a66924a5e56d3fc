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

from sft_ui import events, jobdir
from sft_ui.errors import one_line
from sft_ui.status import JobStatus

_stop = threading.Event()
_server: int | None = None  # the pid of the process whose end ends us: the server, or a rank's launcher
_launched: Path | None = None  # the job dir whose processes this worker launched (launch.py), if any


def _server_gone() -> bool:
    """True once the server is gone: we were handed to another parent (pid 1 or a subreaper)."""
    return _server is not None and os.getppid() != _server


def _on_signal(signum: int, frame: Any) -> None:
    _stop.set()


def _stop_asked(job_dir: Path) -> bool:
    """True once a stop was asked for, by signal or by the job dir's stop file, or the server is gone."""
    # The server check here too, between steps, so that training stops even if the watcher thread could not.
    if not _stop.is_set() and ((job_dir / jobdir.STOP).exists() or _server_gone()):
        _stop.set()
    return _stop.is_set()


PHASES = {"loading_model": "Loading the model", "loading_data": "Loading the data", "training": "Training",
          "saving": "Saving the model", "scoring": "Scoring against the base model"}  # the phases that are events


class StatusReporter:
    """What training.py tells the server: phase, progress and metrics, through the job dir."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.status: dict[str, Any] = {"phase": "starting", "step": 0, "total_steps": None, "epoch": 0.0,
                                       "eta_seconds": None, "metrics": {}}
        self._last_write = 0.0
        self._began = time.monotonic()
        self.phase_seconds: dict[str, float] = {}  # when each phase began, in seconds since the job reached us
        self._metrics = open(job_dir / jobdir.METRICS, "a", encoding="utf-8")
        self._flush(force=True)

    def should_stop(self) -> bool:
        """True once a stop was asked for, by signal or by the stop file."""
        return _stop_asked(self.job_dir)

    def phase(self, name: str, **fields: Any) -> None:
        self.phase_seconds.setdefault(name, self.since_start())
        print(f"[sft-ui] {name}", flush=True)
        self.status.update(phase=name, **fields)
        self._flush(force=True)
        if name in PHASES:
            self.event("phase", PHASES[name], phase=name, **fields)

    def event(self, type: str, message: str, level: str = "info", **data: Any) -> None:  # noqa: A002
        """Append a job event (sft_ui.events): a phase, a checkpoint, an evaluation, a warning."""
        events.append(self.job_dir, type, message, level, **data)

    def progress(self, **fields: Any) -> None:
        self.status.update(fields)
        self._flush()

    def log_metrics(self, point: dict[str, Any]) -> None:
        self._metrics.write(json.dumps(point) + "\n")
        self._metrics.flush()
        # Training and eval points alternate: the record keeps the last of each (loss beside eval_loss).
        self.status["metrics"] = {**self.status["metrics"], **point}
        self._flush()

    def write_samples(self, lines: list[dict[str, Any]]) -> None:
        """Append one round of sample answers (one line per prompt) to samples.jsonl."""
        with open(self.job_dir / jobdir.SAMPLES, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))

    def _flush(self, force: bool = False) -> None:
        # At most a few small writes a second, however fast the steps are.
        now = time.monotonic()
        if force or now - self._last_write >= 0.25:
            jobdir.write_json(self.job_dir / jobdir.STATUS, self.status)
            self._last_write = now

    def since_start(self) -> float:
        """Seconds since this reporter (the worker's job) began."""
        return round(time.monotonic() - self._began, 3)

    def close(self) -> None:
        self._flush(force=True)
        self._metrics.close()


class SilentReporter:
    """The reporter of a data-parallel process other than the first: it only hears stop requests."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir

    def should_stop(self) -> bool:
        """True once a stop was asked for, by signal or by the stop file."""
        return _stop_asked(self.job_dir)

    def phase(self, name: str, **fields: Any) -> None:
        """Nothing: rank 0 reports."""

    def progress(self, **fields: Any) -> None:
        """Nothing: rank 0 reports."""

    def log_metrics(self, point: dict[str, Any]) -> None:
        """Nothing: rank 0 reports."""

    def write_samples(self, lines: list[dict[str, Any]]) -> None:
        """Nothing: rank 0 reports."""

    def event(self, type: str, message: str, level: str = "info", **data: Any) -> None:  # noqa: A002
        """Nothing: rank 0 reports."""

    def close(self) -> None:
        """Nothing to close."""


def _watch_server(grace: float = 20.0) -> None:
    """Stop when the server that started us is gone, and leave for good soon after."""
    while not _server_gone():
        time.sleep(1.0)
    _stop.set()
    try:
        print("[sft-ui] the server is gone; stopping", flush=True)
    except OSError:  # a spare before its hand-over writes to a pipe that died with the server
        pass
    time.sleep(grace)
    if _launched is not None:  # the training ranks, each in a session of its own
        from sft_ui import pids

        pids.kill_all(None, _launched, skip=os.getpid())
    if os.getpgrp() == os.getpid():  # the group we lead: ourselves and the launcher we started
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(3)


def job_error(exc: BaseException) -> str:
    """A cause a person can act on, in one line (what to change when the machine ran out of memory)."""
    text = one_line(exc, 500)
    if "OutOfMemory" in type(exc).__name__ or "out of memory" in text.lower():
        return ("out of memory: lower batch_size or max_seq_length, turn on use_lora or "
                "gradient_checkpointing, or use a smaller model")
    return text


def _resume_point(job_dir: Path, reporter: StatusReporter) -> Path | None:
    """The checkpoint folder that resume.json (written by JobManager.resume_job) names, or None."""
    resume = jobdir.read_json(job_dir / jobdir.RESUME)
    if not resume:
        return None
    folder = job_dir / jobdir.CHECKPOINTS / str(resume.get("checkpoint", ""))
    if not (folder / "trainer_state.json").is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint {folder.name!r} is missing or incomplete")
    reporter.phase("starting", step=int(resume.get("step") or 0))
    return folder


def _make_builtin_model(cache_dir: Path) -> None:
    """Make the built-in model in the cache when the shipped one is stale (its recipe changed and it was not
    rebuilt); otherwise this returns at once. A job that needs the model meanwhile waits on its lock."""
    from sft_ui.builtin import resolve_builtin_model
    from sft_ui.config import BUILTIN_MODEL

    try:
        resolve_builtin_model(BUILTIN_MODEL, cache_dir)
    except Exception:  # noqa: BLE001 - a job that needs the model will make it and report why it cannot
        traceback.print_exc()


def main(argv: list[str] | None = None) -> int:
    """Run the job in JOB_DIR and write its result.json; the exit code is 0 unless it crashed."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    parser = argparse.ArgumentParser(prog="python -m sft_ui.worker")
    parser.add_argument("job_dir", type=Path, nargs="?")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--spare", action="store_true", help="import the libraries, then read JOB_DIR on stdin")
    parser.add_argument("--server-pid", type=int, help="the server's pid: when it is no longer our parent, stop")
    args = parser.parse_args(argv)
    global _server
    # Named by the server, not read from getppid() here: a server that died while we started is noticed too.
    _server = args.server_pid or os.getppid()
    threading.Thread(target=_watch_server, name="sft-ui-server-watch", daemon=True).start()
    job_dir = wait_for_job(args.cache_dir) if args.spare else args.job_dir
    if job_dir is None:
        return 0 if args.spare else 2
    from sft_ui.worker import launch

    if launch.rank() is None:  # the job's own process, not a rank launched below it
        events.started(job_dir, os.getpid(), args.spare)  # here, not in the server: before this process's events
    return run_job(job_dir, args.data_root, args.cache_dir)


def wait_for_job(cache_dir: Path) -> Path | None:
    """A spare worker: import the heavy libraries now, then take the job dir the server writes on stdin.

    The server keeps one spare waiting (SFT_UI_SPARE_WORKER), so a job's first step does not wait ~5 s for
    torch, transformers, trl and peft to import. Its output goes to the job's log from the hand-over on.
    While it waits it also makes the built-in model if the shipped one is stale and the cache lacks it.
    """
    from peft import LoraConfig  # noqa: F401
    from trl import SFTTrainer  # noqa: F401

    from sft_ui.worker import training  # noqa: F401

    threading.Thread(target=_make_builtin_model, args=(cache_dir,), daemon=True).start()

    try:
        os.write(1, b"ready\n")  # to the server, through the pipe that fd 1 is until the hand-over
    except OSError:  # the server took this spare before the imports ended and no longer listens
        pass
    line = sys.stdin.readline().strip()
    if not line:  # the server went away or no longer wants a spare
        return None
    job_dir = Path(line)
    log = os.open(job_dir / jobdir.LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(job_dir)
    return job_dir


def run_job(job_dir: Path, data_root: Path, cache_dir: Path) -> int:
    """Train the job in `job_dir`: in this process, or in several launched by accelerate (see launch.py)."""
    from sft_ui import pids
    from sft_ui.worker import launch

    rank, count = launch.rank(), launch.processes(job_dir)
    if rank is not None or count > 1:
        pids.record(job_dir, rank)
    if rank is None and count > 1:
        global _launched
        _launched = job_dir
        return launch.launch(job_dir, data_root, cache_dir, _stop)
    if rank:  # a data-parallel process other than the first: it trains, the first one reports
        reporter: Any = SilentReporter(job_dir)
    else:
        reporter = StatusReporter(job_dir)
    outcome: dict[str, Any]
    try:
        from sft_ui.config import SFTConfig

        config = SFTConfig(**json.loads((job_dir / jobdir.CONFIG).read_text(encoding="utf-8")))
        if reporter.should_stop():
            outcome = {"status": JobStatus.STOPPED, "error": None, "result": None}
        else:
            resume = _resume_point(job_dir, reporter)
            from sft_ui.worker import training  # heavy: torch, transformers, trl, peft

            result = training.run(config, job_dir, data_root, cache_dir, reporter, resume_from=resume)
            if isinstance(reporter, StatusReporter):
                result["phase_seconds"] = {**reporter.phase_seconds, "finished": reporter.since_start()}
            outcome = {"status": JobStatus.STOPPED if result.get("stopped_early") else JobStatus.COMPLETED,
                       "error": None, "result": result}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes the job's error
        traceback.print_exc()
        outcome = {"status": JobStatus.STOPPED if _stop.is_set() else JobStatus.FAILED, "error": job_error(exc),
                   "result": None}
        if outcome["status"] == JobStatus.STOPPED:
            outcome["error"] = None
    reporter.phase("done")
    reporter.close()
    if rank:
        return 0 if outcome["status"] != JobStatus.FAILED else 1
    jobdir.write_json(job_dir / jobdir.RESULT, outcome, durable=True)
    print(f"[sft-ui] finished: {outcome['status']}" + (f": {outcome['error']}" if outcome["error"] else ""),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
