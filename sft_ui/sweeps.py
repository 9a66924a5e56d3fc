"""Sweeps: one queued job per point of a grid or of random draws, and their ranking by the config's metric."""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from typing import TYPE_CHECKING, Any

from sft_ui import settings, sweep_plan
from sft_ui.errors import NotFoundError, StateError
from sft_ui.status import ACTIVE, JobStatus, iso_time
from sft_ui.store import Store, new_id

if TYPE_CHECKING:
    from sft_ui.manager import JobManager

log = logging.getLogger(__name__)
SCORE_KEYS = ("exact_match", "f1", "base_exact_match", "base_f1", "rows", "summary")
STOP_WAIT_SECONDS = 10.0  # as long as POST /jobs/{id}/stop waits for a running job to save


class Sweeps:
    """The sweeps of one manager: create (all jobs or none), list, get (ranked) and stop."""

    def __init__(self, manager: JobManager, store: Store, lock: threading.RLock) -> None:
        self._manager = manager
        self._store = store
        self._lock = lock  # the manager's: a sweep's jobs are made and queued together, in point order

    def create(self, request: dict[str, Any] | sweep_plan.SweepRequest) -> dict[str, Any]:
        """Check every point, then create and queue one job per point (FIFO, in point order); the sweep's view.

        All or nothing: a bad point, the queue limit or a failed write leaves no job behind.
        """
        from sft_ui.manager import LimitError

        plan = sweep_plan.plan(request)
        sweep_id, made = new_id(), []
        with self._lock:
            pending, limit = self._manager.count_jobs(JobStatus.PENDING), settings.max_queued_jobs()
            if pending + len(plan.configs) > limit:
                raise LimitError(f"too many pending jobs: this sweep's {len(plan.configs)} jobs and the {pending} "
                                 f"waiting would pass SFT_UI_MAX_QUEUED_JOBS={limit}; stop some, let them finish, "
                                 "or sweep fewer points")
            try:
                for config, point in zip(plan.configs, plan.points, strict=True):
                    made.append(self._manager.create_job(config, {"sweep_id": sweep_id, "sweep_point": point}))
                self._store.insert_sweep({
                    "sweep_id": sweep_id, "name": plan.name, "created_at": iso_time(), "config": plan.config,
                    "mode": plan.mode, "fields": plan.fields, **plan.spec, "metric": plan.configs[0].metric_for_best,
                    "job_ids": made, "points": plan.points,
                })
            except BaseException:
                self._forget(made)
                raise
            for job_id in made:
                self._manager.start_job(job_id)
        return self.get(sweep_id)

    def _forget(self, job_ids: list[str]) -> None:
        """Remove jobs made for a sweep that was refused; they never started."""
        for job_id in job_ids:
            record = self._store.get_job(job_id)
            try:
                self._store.delete_job(job_id)
            except OSError as exc:  # the disk refuses even this: the job stays, pending and never started
                log.error("sweep: job %s could not be removed after a refused sweep: %s", job_id, exc)
                continue
            if record is not None:
                shutil.rmtree(record["job_dir"], ignore_errors=True)

    def list(self) -> list[dict[str, Any]]:
        """Sweeps, newest first: id, name, created_at, mode, fields, metric, job_ids and job counts by status."""
        summaries = []
        for record in self._store.list_sweeps():
            counts: dict[str, int] = {}
            for job_id in record["job_ids"]:
                job = self._store.get_job(job_id)
                if job is not None:  # plain str keys: Gradio's JSON encoder refuses an enum as a key
                    counts[str(job["status"])] = counts.get(str(job["status"]), 0) + 1
            summaries.append({key: record.get(key) for key in ("sweep_id", "name", "created_at", "mode", "fields",
                                                                "metric", "job_ids")} | {"counts": counts})
        return summaries

    def get(self, sweep_id: str) -> dict[str, Any]:
        """The sweep with its jobs ranked by its metric (see `rank`), the best marked; NotFoundError if unknown."""
        record = self._record(sweep_id)
        metric = record["metric"]
        rows = []
        for job_id, point in zip(record["job_ids"], record["points"], strict=True):
            try:
                job = self._manager.get_job_status(job_id)
            except NotFoundError:  # deleted since
                continue
            rows.append(self._row(job, point, metric))
        rank(rows, metric)
        best = next((row["job_id"] for row in rows if row["best"]), None)
        view = {key: value for key, value in record.items() if key != "points"}
        return view | {"jobs": rows, "best_job_id": best}

    def stop(self, sweep_id: str) -> int:
        """Stop the sweep's pending and running jobs (waiting, as stop_job does, for running ones to save);
        returns how many were stopped."""
        record = self._record(sweep_id)
        stopped, running = 0, []
        with self._lock:  # no queued job of the sweep starts while the others are stopped
            jobs = [job for job in map(self._store.get_job, record["job_ids"]) if job and job["status"] in ACTIVE]
            for job in sorted(jobs, key=lambda job: job["status"] != JobStatus.PENDING):
                try:
                    self._manager.stop_job(job["job_id"], wait=0)
                except (NotFoundError, StateError):  # it ended or was deleted just now
                    continue
                stopped += 1
                if job["status"] == JobStatus.RUNNING:
                    running.append(job["job_id"])
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while running and time.monotonic() < deadline:
            running = [job_id for job_id in running if (self._store.get_job(job_id) or {}).get("status") in ACTIVE]
            time.sleep(0.1 if running else 0)
        return stopped

    def _record(self, sweep_id: str) -> dict[str, Any]:
        record = self._store.get_sweep(sweep_id)
        if record is None:
            raise NotFoundError(f"sweep {sweep_id} not found")
        return record

    def _row(self, job: dict[str, Any], point: dict[str, Any], metric: str) -> dict[str, Any]:
        """One job of a sweep: status, point, step, final train loss, best eval value and step, score."""
        result = job.get("result") or {}
        best, final_loss = result.get("best") or {}, result.get("final_loss")
        best_eval = {"value": best.get("value"), "step": best.get("step")} \
            if best.get("metric") == metric and best.get("value") is not None else None
        if best_eval is None or final_loss is None:  # a running job, or one that ended without them: its points
            points = self._manager.get_metrics(job["job_id"])
            best_eval = best_eval or best_point(points, metric)
            final_loss = final_loss if final_loss is not None else last_loss(points)
        score = result.get("score")
        return {"job_id": job["job_id"], "name": job["name"], "status": str(job["status"]), "point": point,
                "step": job["progress"].get("step"), "total_steps": job["progress"].get("total_steps"),
                "final_loss": final_loss, "best_eval": best_eval, "eval_loss": result.get("eval_loss"),
                "score": {key: score[key] for key in SCORE_KEYS if key in score} if isinstance(score, dict) else None,
                "error": job.get("error")}


def lower_is_better(metric: str) -> bool:
    """eval_loss falls as a model improves; eval_mean_token_accuracy rises."""
    return metric.endswith("loss")


def best_point(points: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """{"value", "step"} of the best evaluation among a job's logged points (the first when tied), or None."""
    found = [(p[metric], p.get("step")) for p in points if _finite(p.get(metric))]
    if not found:
        return None
    value, step = (min if lower_is_better(metric) else max)(found, key=lambda pair: pair[0])
    return {"value": value, "step": step}


def last_loss(points: list[dict[str, Any]]) -> float | None:
    """The last training loss among a job's logged points."""
    return next((p["loss"] for p in reversed(points) if _finite(p.get("loss"))), None)


def _finite(value: Any) -> bool:
    """A number a ranking can use (a diverged run logs nan or inf)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def rank(rows: list[dict[str, Any]], metric: str) -> None:
    """Sort a sweep's jobs in place: those with an eval value by it (loss ascending, accuracy descending), then
    those with only a final train loss by it, then the rest, each in point order; set `rank` (1, 2, ...) and
    `best` (the first, when it has either value)."""
    sign = 1 if lower_is_better(metric) else -1

    def key(item: tuple[int, dict[str, Any]]) -> tuple[int, float, int]:
        index, row = item
        if row["best_eval"] is not None:
            return 0, sign * row["best_eval"]["value"], index
        return (1, row["final_loss"], index) if row["final_loss"] is not None else (2, 0.0, index)

    ordered = [row for _, row in sorted(enumerate(rows), key=key)]
    rows[:] = ordered
    for place, row in enumerate(rows, 1):
        row["rank"] = place
        row["best"] = place == 1 and (row["best_eval"] is not None or row["final_loss"] is not None)
