"""JobManager: creates jobs, queues them FIFO, runs each in a worker process watched by a thread."""

from __future__ import annotations

import collections
import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sft_ui import events, job_fields, jobdir, recovery, settings, supervisor
from sft_ui.config import MAX_NAME_LENGTH, SFTConfig, check_text, parse_config, whole_number
from sft_ui.errors import NotFoundError, StateError
from sft_ui.model_library import ModelLibrary
from sft_ui.spare import Spare
from sft_ui.status import ACTIVE, STATUSES, JobStatus, Progress, iso_time
from sft_ui.store import Store, StoreWriteError, new_id

if TYPE_CHECKING:
    from sft_ui.sweeps import Sweeps

log = logging.getLogger(__name__)

INTERRUPTED = recovery.INTERRUPTED
__all__ = ["ACTIVE", "STATUSES", "JobManager", "JobStatus", "LimitError", "NotFoundError", "StateError",
           "sft_job_manager"]


class LimitError(ValueError):
    """A request beyond a limit that protects the machine (pending jobs, saved configs)."""


class JobManager:
    """The one service behind the REST API, the Gradio API and the UI.

    `start()` opens the store, recovers jobs and starts the spare worker; the app's lifespan calls it. A manager
    made with `start_on_first_use` (the seed's `sft_job_manager`) starts itself at its first call instead.
    """

    def __init__(self, data_dir: Path | None = None, max_concurrent_jobs: int | None = None, *,
                 start_on_first_use: bool = False) -> None:
        self._data_dir_arg = data_dir
        self._max_arg = max_concurrent_jobs
        self._start_on_first_use = start_on_first_use
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._queue: collections.deque[str] = collections.deque()
        self._runs: dict[str, supervisor.Run] = {}
        self._metrics = jobdir.MetricsReader()  # polled histories are parsed once, then only what was appended
        self.spare: Spare | None = None  # a worker waiting with the libraries imported (SFT_UI_SPARE_WORKER)
        self._models: ModelLibrary | None = None
        self._encoded: dict[str, tuple[int, Callable[..., bytes], bytes]] = {}  # list_jobs_encoded's ended records
        self.data_dir = Path()
        self.cache_dir = Path()
        self.max_concurrent_jobs = 1

    # --- life cycle ---
    def start(self) -> JobManager:
        """Open the data dir's database, recover the jobs a stopped server left, start the spare; idempotent."""
        with self._lock:
            if self._store is None:
                self.data_dir = Path(self._data_dir_arg or settings.data_dir()).resolve()
                self.cache_dir = settings.cache_dir(self.data_dir)
                self.max_concurrent_jobs = self._max_arg or settings.max_concurrent_jobs()
                self._store = Store(recovery.database_file(self.data_dir))
                try:
                    self._recover()
                except BaseException:  # a later start() must try again, not find a store that never recovered
                    self._store.close()
                    self._store = None
                    raise
                self._models = ModelLibrary(self.data_dir, supervisor.worker_env(), self._active_records)
                self._models.recover()
                if settings.spare_worker():
                    self.spare = Spare(self.data_dir, self.cache_dir, supervisor.worker_env())
                    self.spare.refill()
        return self

    @property
    def store(self) -> Store:
        """The open store (for the manager and tests; other modules use the public methods)."""
        if self._store is None:
            if not self._start_on_first_use:
                raise RuntimeError("JobManager.start() has not been called")
            self.start()
        assert self._store is not None
        return self._store

    @property
    def models(self) -> ModelLibrary:
        """The model library of this data dir: list, import (GGUF), delete (sft_ui.model_library)."""
        self.store  # noqa: B018 - starts a start_on_first_use manager
        assert self._models is not None
        return self._models

    @property
    def sweeps(self) -> Sweeps:
        """Sweeps of this data dir: one job per point of a grid or of random draws (sft_ui.sweeps)."""
        from sft_ui.sweeps import Sweeps

        return Sweeps(self, self.store, self._lock)

    @property
    def database_path(self) -> Path:
        """The database's snapshot file (its journal lies beside it)."""
        return self.store.path

    def database_status(self) -> dict[str, Any]:
        """{"restored": None} normally; what a restore did when the database was found damaged at start."""
        return {"restored": self.store.restored}

    def _recover(self) -> None:
        """Rebuild a damaged database from the job folders; end jobs a dead server left running; requeue the rest."""
        assert self._store is not None
        if self._store.restored is not None:
            recovery.rebuild(self._store, self.data_dir, self.cache_dir, iso_time())
        now = iso_time()
        for record in self._store.list_jobs(status=JobStatus.RUNNING):  # only these are copied
            supervisor.kill_orphan(record)
            ended = recovery.ended_fields(Path(record["job_dir"]), now)
            self._store.update_job(record["job_id"], ended)
            events.ended(Path(record["job_dir"]), ended)  # the server that followed it died first
        self._queue.extend(r["job_id"] for r, _ in self._store.scan_jobs(status=JobStatus.PENDING)
                           if r.get("queued_at"))
        self._schedule()

    # --- jobs ---
    def create_job(self, config: SFTConfig | dict[str, Any], extra: dict[str, Any] | None = None, *,
                   metadata: dict[str, str] | None = None) -> str:
        """Validate `config` and `metadata`, record a pending job (with `extra`'s fields) and make its directory;
        returns its id."""
        from sft_ui import data, tracking  # light: the path rules and a look at the first rows
        from sft_ui.data import peek

        cfg = parse_config(config)
        extra = {**(extra or {}), "metadata": job_fields.check_metadata(metadata)}
        data.check_paths(cfg, self.store_root())
        peek.check_source(cfg, self.store_root())  # what Preview refuses, read from the first rows only
        job_id = new_id()
        job_dir = jobdir.output_folder(self.store_root(), cfg.output_dir, self.cache_dir) / job_id
        dumped = cfg.model_dump()
        with self._lock:
            pending, limit = self.store.count_jobs(JobStatus.PENDING), settings.max_queued_jobs()
            if pending >= limit:
                raise LimitError(f"too many pending jobs: {pending} wait to run (SFT_UI_MAX_QUEUED_JOBS={limit}); "
                                 "stop some or let them finish first")
            try:
                jobdir.make(job_dir, dumped, cfg.output_dir)
                tracking.write_run(job_dir, cfg.display_name, extra.get("sweep_id"))
            except OSError as exc:  # the disk is full: 507, like any write the disk refused
                raise StoreWriteError(exc.errno, exc.strerror) from None
            try:
                self.store.insert_job({
                    **(extra or {}), "job_id": job_id, "name": cfg.display_name, "status": JobStatus.PENDING,
                    "created_at": iso_time(), "started_at": None, "finished_at": None, "queued_at": None,
                    "config": dumped, "job_dir": str(job_dir),
                    "progress": Progress(total_steps=cfg.max_steps).as_dict(),
                    "metrics": {}, "phase": None, "error": None, "result": None,
                })
            except StoreWriteError:
                shutil.rmtree(job_dir, ignore_errors=True)  # no folder of a job that does not exist
                raise
        events.append(job_dir, "created", f"Job created: {cfg.display_name}", name=cfg.display_name)
        return job_id

    def store_root(self) -> Path:
        """The data root that job paths resolve under."""
        _ = self.store
        return self.data_dir

    def start_job(self, job_id: str) -> dict[str, Any]:
        """Queue a pending job; it runs as soon as a slot is free. Returns its status."""
        with self._lock:
            record = self._get(job_id)
            if record["status"] != JobStatus.PENDING:
                raise StateError(f"job {job_id} is {record['status']}; only a pending job can be started")
            if job_id not in self._queue and job_id not in self._runs:
                self.store.update_job(job_id, {"queued_at": iso_time()})
                self._queue.append(job_id)
                events.queued(Path(record["job_dir"]), len(self._queue))
                self._schedule()
        return self.get_job_status(job_id)

    def get_job_status(self, job_id: str) -> dict[str, Any]:
        """The job record, with live progress while it runs and queue_position while it waits."""
        with self._lock:
            return self._view(self._get(job_id))

    def list_jobs(self, status: str | None = None, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Job records, newest first, optionally only those with `status`."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status: must be one of {', '.join(STATUSES)}, got {status!r}")
        with self._lock:
            records = self.store.list_jobs(status=status, offset=offset, limit=limit, newest_first=True)
            return [self._view(r) for r in records]

    def list_jobs_encoded(self, encode: Callable[[dict[str, Any]], bytes], status: str | None = None,
                          limit: int | None = None, offset: int = 0) -> list[bytes]:
        """list_jobs' records through `encode`; an ended job's encoding is kept until its record changes."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status: must be one of {', '.join(STATUSES)}, got {status!r}")
        out = []
        with self._lock:
            for doc, revision in self.store.scan_jobs(status=status, offset=offset, limit=limit, newest_first=True):
                job_id = doc["job_id"]
                if doc["status"] in ACTIVE or job_id in self._runs:  # live progress: encoded afresh each time
                    out.append(encode(self._view(dict(doc))))
                    continue
                cached = self._encoded.get(job_id)
                if cached is None or cached[0] != revision or cached[1] is not encode:
                    cached = self._encoded[job_id] = (revision, encode, encode(doc))
                out.append(cached[2])
        return out

    def changes(self) -> tuple[int, str]:
        """(the store's revision, which grows with each write of a job record; the running jobs' live state):
        when neither differs, no record that list_jobs returns has changed."""
        with self._lock:
            live = [(job_id, run.stop_requested.is_set(), run.live) for job_id, run in self._runs.items()]
            return self.store.revision, f"{list(self._queue)}{live}"

    def count_jobs(self, status: str | None = None) -> int:
        """How many jobs there are (with `status`, when given)."""
        with self._lock:
            return self.store.count_jobs(status)

    def stop_job(self, job_id: str, wait: float = 10.0) -> dict[str, Any]:
        """Stop a pending or running job; waits up to `wait` s for a running one to save and exit."""
        with self._lock:
            record = self._get(job_id)
            if record["status"] not in ACTIVE:
                raise StateError(f"job {job_id} is already {record['status']}; only pending or running jobs stop")
            run = self._runs.get(job_id)
            if run is None or not run.stop_requested.is_set():  # a second click is no new event
                events.append(Path(record["job_dir"]), "stop_requested", "Stop requested")
            if run is None:
                if job_id in self._queue:
                    self._queue.remove(job_id)
                self.store.update_job(job_id, {"status": JobStatus.STOPPED, "finished_at": iso_time()})
                events.ended(Path(record["job_dir"]), {"status": JobStatus.STOPPED})
                return self._view(self._get(job_id))
            run.stop_requested.set()
        run.done.wait(wait)
        return self.get_job_status(job_id)

    def resume_job(self, job_id: str, checkpoint: str | None = None) -> dict[str, Any]:
        """Continue a stopped or failed job from its last checkpoint (or the named one; later ones are deleted)
        as the same job (queued like a start)."""
        from sft_ui import resume

        with self._lock:
            record = self._get(job_id)
            if record["status"] not in (JobStatus.STOPPED, JobStatus.FAILED):
                raise StateError(f"job {job_id} is {record['status']}; only a stopped or failed job can be resumed")
            job_dir = Path(record["job_dir"])
            point = resume.plan(job_dir, checkpoint)
            if point is None:
                why = "save_steps is 0" if not record["config"].get("save_steps") else "it ended before the first"
                raise StateError(f"job {job_id} has no checkpoint to resume from ({why}); set save_steps to save "
                                 "checkpoints, or start a new job with its config")
            kept = [p for p in jobdir.read_metrics(job_dir / jobdir.METRICS) if p.get("step", 0) <= point["step"]]
            last = (kept or [{}])[-1]
            times = (record.get("resumed") or {}).get("times", 0) + 1
            try:
                self.store.update_job(job_id, {
                    "status": JobStatus.PENDING, "finished_at": None, "error": None, "result": None, "phase": None,
                    "queued_at": iso_time(), "metrics": last,
                    "progress": Progress(point["step"], record["progress"].get("total_steps"),
                                         last.get("epoch", 0.0)).as_dict(),
                    "resumed": {"from_step": point["step"], "checkpoint": point["checkpoint"], "at": iso_time(),
                                "times": times},
                })
            except StoreWriteError:  # not resumed: its files stay as they were
                resume.forget(job_dir)
                raise
            resume.clean(job_dir, point["step"])  # only now: the record says it resumes
            self._queue.append(job_id)
            events.resumed(job_dir, point, len(self._queue))
            self._schedule()
        return self.get_job_status(job_id)

    def delete_job(self, job_id: str) -> None:
        """Forget a finished job (its files stay on disk); a pending or running job must stop first."""
        with self._lock:
            record = self._get(job_id)
            if record["status"] in ACTIVE:
                raise StateError(f"job {job_id} is {record['status']}; stop it before deleting it")
            self.store.delete_job(job_id)
            self._encoded.pop(job_id, None)
            with contextlib.suppress(OSError):  # a mark, so that a rebuild of the database leaves it out
                (Path(record["job_dir"]) / jobdir.DELETED).touch()

    def get_events(self, job_id: str, after: str | None = None, limit: int | None = None) -> tuple[list[dict], bool]:
        """(the job's events after the cursor `after`, at most `limit` (100); whether more follow): sft_ui.events."""
        return events.read(Path(self._get(job_id)["job_dir"]), after, events.check_limit(limit))

    def get_metrics(self, job_id: str, since: int | None = None, max_points: int | None = None) -> list[dict[str, Any]]:
        """The job's logged points (loss, learning_rate, ...) with step > since, thinned to max_points (decimate)."""
        record = self._get(job_id)
        limit = whole_number(max_points, "max_points")
        if limit is not None and limit < 2:
            raise ValueError(f"max_points: must be at least 2 (the first and the last point), got {limit}")
        return self._metrics.read(Path(record["job_dir"]) / jobdir.METRICS, whole_number(since, "since"), limit)

    def get_samples(self, job_id: str, since: int | None = None) -> list[dict[str, Any]]:
        """The job's sample answers (step, index, prompt, reference, answer), those with step > since when given."""
        record = self._get(job_id)
        return self._metrics.read(Path(record["job_dir"]) / jobdir.SAMPLES, whole_number(since, "since"))

    def get_log(self, job_id: str, max_bytes: int = 20_000) -> str:
        """The tail of the job's log."""
        record = self._get(job_id)
        return jobdir.tail(Path(record["job_dir"]) / jobdir.LOG, max_bytes)

    def preview(self, config: SFTConfig | dict[str, Any], n: int = 5,
                info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The first `n` rows of the config's data set as the model will see them (data.preview); `info` gets
        the counts: format, columns, rows read/used/dropped/truncated, token lengths, notes, warnings."""
        from sft_ui import data  # loads a tokenizer: only when someone asks

        return data.preview(parse_config(config), n, self.store_root(), self.cache_dir, info)

    # --- the upload library (sft_ui.data.library) ---
    def upload_dataset(self, filename: str, chunks: Iterable[bytes]) -> dict[str, Any]:
        """Stream a file into <data dir>/datasets/ under a safe name; the same content again returns its entry."""
        return self._library("save", filename, chunks, settings.max_upload_bytes())

    def list_datasets(self) -> list[dict[str, Any]]:
        """The library's files, newest first: name, path (what dataset_name takes), rows, format, size_bytes, ..."""
        return self._library("list_entries")

    def preview_dataset(self, name: str, n: int = 5, base_model: str | None = None) -> dict[str, Any]:
        """A library file's entry, its first `n` rows as `base_model` (default: the built-in one) sees them (as the
        Train tab's preview) and `summary`: format, columns, rows read/used/dropped/truncated, token lengths."""
        entry, summary = self._library("get_entry", name), {}
        config = {"dataset_name": entry["path"], **({"base_model": base_model} if base_model else {})}
        shown = self.preview(config, n, summary)
        return {**entry, "preview": shown, "summary": summary}

    def delete_dataset(self, name: str) -> None:
        """Remove a library file; refused while a pending or running job's config names it."""
        with self._lock:
            used = self._library("users", name, self._active_records())
            if used:
                raise StateError(f"file: {name} is used by job {used[0]}, which is pending or running; stop it first")
            self._library("delete", name)

    def memory_holders(self) -> list[tuple[str, int | None]]:
        """(label, pid) of the processes this manager started: running jobs' workers, the spare, model imports."""
        holders = [(f"job {r['job_id']} ({r.get('name') or 'training'})", r.get("worker_pid"))
                   for r in self.store.list_jobs(status=JobStatus.RUNNING)]
        holders.append(("spare worker (waiting with the libraries imported)", self.spare.pid() if self.spare else None))
        return holders + [(f"model import {name}", pid) for name, pid in self.models.pids().items()]

    def _active_records(self) -> list[dict[str, Any]]:
        """The records of pending and running jobs."""
        return [record for status in ACTIVE for record in self.store.list_jobs(status=status)]

    def _library(self, operation: str, *args: Any) -> Any:
        """sft_ui.data.library's `operation` on this data root; an unknown file is NotFoundError."""
        from sft_ui.data import library

        try:
            return getattr(library, operation)(self.store_root(), *args)
        except library.DatasetNotFoundError as exc:
            raise NotFoundError(str(exc)) from None

    # --- configs ---
    def save_config(self, name: str, config: SFTConfig | dict[str, Any]) -> str:
        """Validate and store a config under `name` (replacing one of that name); returns its id."""
        check_text(name, "name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("name: must be a non-empty string")
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"name: at most {MAX_NAME_LENGTH} characters, got {len(name)}")
        dumped = parse_config(config).model_dump()
        with self._lock:
            saved, limit = self.store.count_configs(), settings.max_configs()
            if saved >= limit and not self.store.count_configs(name.strip()):
                raise LimitError(f"too many saved configs: {saved} (SFT_UI_MAX_CONFIGS={limit}); delete some first "
                                 "or save under an existing name to replace it")
            return self.store.save_config(name.strip(), dumped, iso_time())

    def count_configs(self) -> int:
        """How many configs are saved."""
        return self.store.count_configs()

    def list_configs(self) -> list[dict[str, Any]]:
        """Saved configs, oldest first: config_id, name, config."""
        return self.store.list_configs()

    def get_config(self, config_id: str) -> dict[str, Any]:
        """One saved config: config_id, name, config."""
        found = self.store.get_config(config_id)
        if found is None:
            raise NotFoundError(f"config {config_id} not found")
        return found

    def delete_config(self, config_id: str) -> None:
        """Remove a saved config."""
        if not self.store.delete_config(config_id):
            raise NotFoundError(f"config {config_id} not found")

    def shutdown(self, wait: float = 10.0) -> None:
        """Stop every running job (used at exit and by tests)."""
        with self._lock:
            runs = list(self._runs.values())
            self._queue.clear()
        for run in runs:
            run.stop_requested.set()
        if self.spare is not None:
            self.spare.close()
        if self._models is not None:
            self._models.shutdown()
        for run in runs:
            run.done.wait(wait)

    # --- internals ---
    def _get(self, job_id: str) -> dict[str, Any]:
        record = self.store.get_job(job_id) if isinstance(job_id, str) else None
        if record is None:
            raise NotFoundError(f"job {job_id} not found")
        return record

    def _view(self, record: dict[str, Any]) -> dict[str, Any]:
        job_id = record["job_id"]
        run = self._runs.get(job_id)
        if run is not None and record["status"] == JobStatus.RUNNING and run.live:
            live = run.live
            record["phase"] = live.get("phase")
            record["progress"] = Progress.from_live(live, record["progress"]["total_steps"]).as_dict()
            record["metrics"] = live.get("metrics") or {}
        if run is not None:
            record["stop_requested"] = run.stop_requested.is_set()
        if record["status"] == JobStatus.PENDING and job_id in self._queue:
            record["queue_position"] = list(self._queue).index(job_id) + 1
        return job_fields.add_live_fields(record)

    def _schedule(self) -> None:
        with self._lock:
            while self._queue and len(self._runs) < self.max_concurrent_jobs:
                job_id = self._queue.popleft()
                record = self.store.get_job(job_id)
                if record is None or record["status"] != JobStatus.PENDING:
                    continue
                try:
                    self.store.update_job(job_id, {"status": JobStatus.RUNNING, "started_at": iso_time(),
                                                   "phase": "starting"})
                except StoreWriteError as exc:  # it keeps its place: the next job end or start tries again
                    self._queue.appendleft(job_id)
                    log.error("job %s cannot start while the database cannot be written: %s", job_id, exc)
                    return
                run = supervisor.Run(job_id, Path(record["job_dir"]))
                run.processes = int(record["config"].get("num_processes") or 1)
                self._runs[job_id] = run
                threading.Thread(target=self._supervise, args=(run,), name=f"job-{job_id}", daemon=True).start()

    def _supervise(self, run: supervisor.Run) -> None:
        """Launch the worker, follow its status file, honour stop, and record how it ended."""
        outcome: dict[str, Any] = {}
        try:
            outcome = self._follow(run)
        except Exception as exc:  # a fault here must still end the job and free the slot
            log.exception("supervisor of job %s failed", run.job_id)
            outcome = {"status": JobStatus.FAILED, "error": f"internal error: {exc}"}
        finally:
            with self._lock:
                live = run.live
                fields: dict[str, Any] = {"status": outcome.get("status", JobStatus.FAILED), "finished_at": iso_time(),
                                          "error": outcome.get("error"), "result": outcome.get("result"),
                                          "phase": None}
                if live:
                    total = (self.store.get_job(run.job_id) or {}).get("progress", {}).get("total_steps")
                    fields["progress"] = Progress.from_live(live, total, ended=True).as_dict()
                    fields["metrics"] = live.get("metrics") or {}
                saved = self._save_end(run.job_id, fields)
                events.ended(run.job_dir, fields)
                self._runs.pop(run.job_id, None)
                run.done.set()
                if self.spare is not None:  # only now: its ~5 s of imports would slow this job's steps on a small CPU
                    self.spare.refill()  # before the next queued job starts, so that it goes to the spare
                self._schedule()
            while not saved:  # the disk is full or failing: the slot is free, the record waits for the disk
                time.sleep(5)
                with self._lock:
                    saved = self._save_end(run.job_id, fields)

    def _save_end(self, job_id: str, fields: dict[str, Any]) -> bool:
        """Record how a job ended; False when the database could not be written (the worker's result.json
        still holds it, and a restart reads it from there)."""
        try:
            self.store.update_job(job_id, fields)
            return True
        except StoreWriteError as exc:
            log.error("job %s ended %s, but its record could not be written: %s", job_id, fields["status"], exc)
            return False

    def _follow(self, run: supervisor.Run) -> dict[str, Any]:
        spare = self.spare.take(run.job_dir) if self.spare is not None and run.processes == 1 else None
        run.process = spare or supervisor.start_worker(run.job_dir, self.data_dir, self.cache_dir)
        try:  # the pid only helps a restart end an orphan: a full disk must not leave the worker unwatched
            self.store.update_job(run.job_id, {"worker_pid": run.process.pid})
        except StoreWriteError as exc:
            log.error("job %s: its worker's pid could not be recorded: %s", run.job_id, exc)
        return run.follow()


sft_job_manager = JobManager(start_on_first_use=True)  # the seed's Python usage: starts at its first call
