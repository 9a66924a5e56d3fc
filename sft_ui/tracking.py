"""Experiment trackers (report_to): TensorBoard files in the job dir, a local trackio project, wandb and mlflow
when installed. Their credentials stay in the worker's environment, never in a record, log or event."""

from __future__ import annotations

import json
import os
import shutil
from importlib.util import find_spec
from pathlib import Path
from typing import Any

TRACKERS = ("tensorboard", "trackio", "wandb", "mlflow")
RUN_FILE = "tracking.json"  # {"run_name", "group"}: written by the server when the job is created
TENSORBOARD_DIR = "tensorboard"  # in the job dir: TensorBoard's event files (and so in the download zip)
TRACKIO_DIR = "trackio"  # under the data dir, unless TRACKIO_DIR is set
PROJECT = "sft-ui"  # trackio's project (wandb's too, unless WANDB_PROJECT is set)
_PACKAGES = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb", "mlflow": "mlflow"}


def write_run(job_dir: Path, name: str, group: str | None) -> None:
    """Record the run's name, "<job name> (<job id>)", and its group (the sweep) for the worker's trackers; when
    that fails (a full disk) the new job's folder goes too, as jobdir.make leaves nothing behind."""
    run = {"run_name": f"{name} ({job_dir.name})", "group": group}
    try:
        (job_dir / RUN_FILE).write_text(json.dumps(run), encoding="utf-8")
    except OSError:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise


def read_run(job_dir: Path) -> dict[str, Any]:
    """What write_run wrote (a job made before trackers existed: its folder name and no group)."""
    try:
        return json.loads((job_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"run_name": job_dir.name, "group": None}


def trackio_dir(data_root: Path) -> Path:
    """Where trackio keeps its projects: TRACKIO_DIR when set, else <data dir>/trackio."""
    return Path(os.environ.get("TRACKIO_DIR") or Path(data_root) / TRACKIO_DIR)


def check_installed(report_to: list[str]) -> None:
    """ValueError naming report_to and the pip command for a tracker whose package this machine lacks."""
    for tracker in report_to:
        if find_spec(_PACKAGES[tracker]) is None:
            raise ValueError(f"report_to: {tracker} is not installed on this machine; install it with "
                             f"`pip install {_PACKAGES[tracker]}` (and set its usual environment variables), or "
                             "leave it out of report_to")


def trainer_setup(report_to: list[str], job_dir: Path, data_root: Path) -> tuple[dict[str, Any], list[Any]]:
    """(TRL/transformers arguments, callbacks) for the trackers in `report_to`; call before the trainer is made.

    transformers reports to TensorBoard, wandb and mlflow itself; trackio goes through TrackioReporter, which
    adds the group (the sweep) that transformers' own trackio callback leaves out."""
    check_installed(report_to)
    run = read_run(job_dir)
    if "tensorboard" in report_to:  # read by transformers' TensorBoardCallback when it is made
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(job_dir / TENSORBOARD_DIR)
    if "wandb" in report_to:
        os.environ.setdefault("WANDB_PROJECT", PROJECT)
        if run.get("group"):
            os.environ.setdefault("WANDB_RUN_GROUP", run["group"])
    if "mlflow" in report_to:
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", PROJECT)
    callbacks = []
    if "trackio" in report_to:
        os.environ.setdefault("TRACKIO_DIR", str(trackio_dir(data_root)))  # trackio reads it at import
        from sft_ui.worker.trackio_callback import TrackioReporter  # imports transformers: worker only

        callbacks.append(TrackioReporter(PROJECT, run["run_name"], run.get("group")))
    native = [tracker for tracker in report_to if tracker != "trackio"]
    return {"report_to": native, "run_name": run["run_name"]}, callbacks


def views(record: dict[str, Any], data_root: Path) -> list[str]:
    """How to open this job's runs, one line per tracker in its config (a command where nothing is served)."""
    report_to = (record.get("config") or {}).get("report_to") or []
    lines = []
    job_dir = Path(record.get("job_dir") or ".")
    if "tensorboard" in report_to:
        lines.append(f"TensorBoard: tensorboard --logdir {job_dir / TENSORBOARD_DIR}")
    if "trackio" in report_to:
        lines.append(f"trackio: TRACKIO_DIR={trackio_dir(data_root)} trackio show --project {PROJECT}")
    for tracker in ("wandb", "mlflow"):
        if tracker in report_to:
            lines.append(f"{tracker}: the run is named {read_run(job_dir).get('run_name')!r}")
    return lines
