"""Job records from what job folders hold: after a crash, and to rebuild a damaged database."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sft_ui import jobdir, settings
from sft_ui.status import ENDED, JobStatus, iso_time
from sft_ui.store import Store

INTERRUPTED = "interrupted: the server stopped while it ran"
DATABASE = "sft_ui.json"  # the database's file name, in settings.private_dir
log = logging.getLogger(__name__)
_MAX_DEPTH = 6  # output_dir may nest folders; a data root deeper than this holds no job folders we made


def find_job_folders(root: Path, skip: tuple[Path, ...]) -> Iterator[Path]:
    """Every job folder under `root` (not entering `skip` or a job folder), oldest config first."""
    found = []
    for folder, dirs, _files in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        if jobdir.is_job_folder(here):
            if not jobdir.was_deleted(here):
                found.append(here)
            dirs.clear()
            continue
        dirs[:] = [d for d in dirs if depth < _MAX_DEPTH and (here / d) not in skip and not d.startswith(".")]
    found.sort(key=lambda p: (p / jobdir.CONFIG).stat().st_mtime)
    yield from found


def last_state(job_dir: Path) -> dict[str, Any]:
    """The step, epoch and last metrics the worker reported (status.json, else metrics.jsonl's last point)."""
    status = jobdir.read_json(job_dir / jobdir.STATUS) or {}
    points = jobdir.read_metrics(job_dir / jobdir.METRICS)
    metrics = status.get("metrics") or (points[-1] if points else {})
    step = status.get("step") or (points[-1].get("step", 0) if points else 0)
    return {"progress": {"step": step or 0, "total_steps": status.get("total_steps"),
                         "epoch": status.get("epoch") or metrics.get("epoch") or 0.0, "eta_seconds": None},
            "metrics": metrics}


def ended_fields(job_dir: Path, now: str) -> dict[str, Any]:
    """How a job that was running ended: what its worker wrote in result.json, else interrupted at its last step."""
    state = last_state(job_dir)
    outcome = jobdir.read_json(job_dir / jobdir.RESULT)
    fields: dict[str, Any] = {"phase": None, "finished_at": now, "metrics": state["metrics"]}
    progress = {k: v for k, v in state["progress"].items() if v is not None}
    if outcome and outcome.get("status") in ENDED:
        fields.update(status=outcome["status"], error=outcome.get("error"), result=outcome.get("result"))
        progress["eta_seconds"] = 0
        fields["finished_at"] = iso_time((job_dir / jobdir.RESULT).stat().st_mtime)
    else:
        fields.update(status=JobStatus.FAILED, error=INTERRUPTED)
    fields["progress"] = progress
    return fields


def record_from_folder(job_dir: Path, base: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """A job record rebuilt from its folder; `base` (from the last good database copy) fills what files lack."""
    config = jobdir.read_json(job_dir / jobdir.CONFIG) or {}
    created = iso_time((job_dir / jobdir.CONFIG).stat().st_mtime)
    record: dict[str, Any] = {
        "job_id": job_dir.name, "name": config.get("job_name") or
        f"{config.get('base_model', '?')} on {config.get('dataset_name', '?')}",
        "status": JobStatus.PENDING, "created_at": created, "started_at": None, "finished_at": None, "queued_at": None,
        "config": config, "job_dir": str(job_dir),
        "progress": {"step": 0, "total_steps": config.get("max_steps"), "epoch": 0.0, "eta_seconds": None},
        "metrics": {}, "phase": None, "error": None, "result": None,
    }
    if base:
        record.update({k: v for k, v in base.items() if k not in ("job_dir", "job_id")})
    began = (job_dir / jobdir.STATUS).exists() or (job_dir / jobdir.RESULT).exists()
    if began or record["status"] == JobStatus.RUNNING:
        fields = ended_fields(job_dir, now)
        fields["progress"] = {**record["progress"], **fields["progress"]}
        record.update(fields)
        record["started_at"] = record["started_at"] or created
    elif record["status"] == JobStatus.PENDING:
        record["queued_at"] = None  # it never started: created, waiting for a start
    return record


def database_file(data_dir: Path) -> Path:
    """The database in the data dir's private folder; one from before it (`<data dir>/sft_ui.json`) is moved in."""
    private = settings.private_dir(data_dir)
    private.mkdir(mode=0o700, parents=True, exist_ok=True)
    database = private / DATABASE
    legacy = data_dir / DATABASE
    if legacy.is_file() and not database.exists():
        os.replace(legacy, database)  # same file system: an atomic move, nothing to lose
        log.info("database moved from %s to %s", legacy, database)
    return database


def rebuild(store: Store, data_dir: Path, cache_dir: Path, now: str) -> None:
    """Job records from every job folder under the data dir, over what a restored database copy still had."""
    assert store.restored is not None
    known = {r["job_id"]: r for r in store.list_jobs()}
    rebuilt = 0
    for folder in find_job_folders(data_dir, (settings.private_dir(data_dir), cache_dir.resolve())):
        base = known.pop(folder.name, None)
        record = record_from_folder(folder, base, now)
        if base is None:
            store.insert_job(record)
        else:
            store.update_job(folder.name, record)
        rebuilt += 1
    for job_id, record in known.items():  # in the old copy, but its folder is gone or marked deleted
        folder = Path(record.get("job_dir", ""))
        if not folder.is_dir() or jobdir.was_deleted(folder):
            store.delete_job(job_id)
    store.restored["jobs_rebuilt"] = rebuilt
    log.error("database restored: %d job records rebuilt from job folders, %d saved configs kept", rebuilt,
              store.restored["configs"])
