"""Jobs with `num_processes > 1`: the worker launches data-parallel copies of itself with `accelerate launch`.

The first process (rank 0) reports status and metrics and writes the result; every process checks the stop
file, and all of them stop after the same step (training.stop_everywhere). Each process records its pid in
the job dir so that the server can end every one of them: torch's launcher puts each in its own session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from sft_ui import jobdir, settings
from sft_ui.status import JobStatus

LAUNCHED = "SFT_UI_LAUNCHED"  # set in the environment of the processes that accelerate starts


def rank() -> int | None:
    """This process's rank when accelerate launched it for a job, else None."""
    return int(os.environ.get("RANK", "0")) if os.environ.get(LAUNCHED) else None


def processes(job_dir: Path) -> int:
    """The job's num_processes, read from its config.json (1 when unreadable: the worker then reports why)."""
    config = jobdir.read_json(job_dir / jobdir.CONFIG) or {}
    value = config.get("num_processes", 1)
    return value if isinstance(value, int) and value > 0 else 1


def command(job_dir: Path, data_root: Path, cache_dir: Path, count: int) -> list[str]:
    """The `accelerate launch` command line that runs `count` copies of the worker on this job."""
    config_file = settings.accelerate_config()
    if config_file:  # machines, rendezvous address and port come from the accelerate config
        where = ["--config_file", config_file]
    else:  # --multi_gpu picks torch's distributed launcher; on a machine without GPUs the processes use gloo
        # A free rendezvous port of its own, so that two such jobs can run at once.
        where = ["--multi_gpu", "--num_machines", "1", "--main_process_port", str(settings.free_port())]
    return [sys.executable, "-m", "accelerate.commands.launch", *where, "--num_processes", str(count),
            "--mixed_precision", "no", "--dynamo_backend", "no",
            *jobdir.worker_args(job_dir, data_root, cache_dir)]


def _fail(job_dir: Path, error: str) -> int:
    print(f"[sft-ui] finished: failed: {error}", flush=True)
    jobdir.write_json(job_dir / jobdir.RESULT, {"status": JobStatus.FAILED, "error": error, "result": None},
                      durable=True)
    return 0


def launch(job_dir: Path, data_root: Path, cache_dir: Path, stop: threading.Event) -> int:
    """Run the job's processes and wait for them; a stop asked of this process reaches all of them."""
    count = processes(job_dir)
    jobdir.write_json(job_dir / jobdir.STATUS, {"phase": "starting", "step": 0, "num_processes": count})
    import torch  # the launcher imports it anyway

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and gpus < count and not settings.accelerate_config():
        return _fail(job_dir, f"num_processes: {count} processes need {count} GPUs; this machine has {gpus}")
    print(f"[sft-ui] launching {count} processes" + (f" on {gpus} GPUs" if gpus else " on the CPU (gloo)"),
          flush=True)
    argv = command(job_dir, data_root, cache_dir, count)
    if settings.accelerate_config():  # possibly several machines: say how the others join
        rest = " ".join(argv[argv.index("--num_processes"):])
        print(f"[sft-ui] on each other machine (same paths, shared job dir), run: {LAUNCHED}=1 python -m "
              f"accelerate.commands.launch --config_file <its config> --machine_rank <N> {rest}", flush=True)
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env={**os.environ, LAUNCHED: "1"})
    while process.poll() is None:
        if stop.is_set() and not (job_dir / jobdir.STOP).exists():
            (job_dir / jobdir.STOP).touch()  # the processes see it between steps
        time.sleep(0.2)
    if jobdir.read_json(job_dir / jobdir.RESULT) is None:
        return _fail(job_dir, f"a training process failed (launcher exit code {process.returncode}); see the log")
    return 0
