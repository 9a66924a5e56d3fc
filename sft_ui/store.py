"""TinyDB persistence for jobs, saved configs and sweeps: one lock; a write reaches the disk or changes nothing."""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tinydb import TinyDB

from sft_ui.storage import (
    CorruptDatabase,
    DirectTable,
    JournalStorage,
    StoreWriteError,
    _copy,
    quarantine,
    read_snapshot,
    replay,
)

log = logging.getLogger(__name__)

__all__ = ["Store", "StoreWriteError", "new_id"]


def new_id() -> str:
    """A short random id for jobs and configs."""
    return uuid.uuid4().hex[:12]


class _Database(TinyDB):
    """TinyDB whose tables write only the documents they change (DirectTable)."""

    table_class = DirectTable


class Store:
    """Jobs and saved configs in one TinyDB database; every call holds one lock.

    Reads never scan every record: jobs are looked up by id through an index, pages are cut from the table in
    insertion order, and counts by status are kept as jobs change, so each call costs the same at 10,000 jobs as
    at 100.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self.restored: dict[str, Any] | None = None  # set when a damaged database was replaced at opening
        loaded = JournalStorage(self.path)
        saved = _open(loaded)
        self._db = _Database(storage=lambda: loaded)  # the storage read once above, not a second parse
        if saved is not None:  # the files were damaged: start from what could be saved
            self._db.storage.write(saved["data"])
            self.restored = saved["restored"]
        self._jobs = self._db.table("jobs")
        self._configs = self._db.table("configs")
        self.revision = 0  # grows with every write to a job record: equal revisions, equal records
        self._revisions: dict[str, int] = {}  # job_id -> the revision of its last write (0: none since opening)
        self._doc_ids: dict[str, str] = {}  # job_id -> TinyDB document id (as stored)
        self._statuses: collections.Counter[str] = collections.Counter()
        for key, doc in self._raw("jobs").items():
            self._doc_ids[doc["job_id"]] = key
            self._statuses[doc.get("status")] += 1
        self._sweeps = self._db.table("sweeps")
        self._sweep_keys = {doc["sweep_id"]: key for key, doc in self._raw("sweeps").items()}

    def _raw(self, table: str) -> dict[str, Any]:
        """The table's documents as stored, {doc id: document}, in insertion order: read them, never change them."""
        return (self._db.storage.read() or {}).get(table, {})

    # --- jobs ---
    def _written(self, job_id: str) -> None:
        self.revision += 1
        self._revisions[job_id] = self.revision

    def insert_job(self, record: dict[str, Any]) -> None:
        with self._lock:
            doc_id = self._jobs.insert(record)
            self._doc_ids[record["job_id"]] = str(doc_id)
            self._statuses[record.get("status")] += 1
            self._written(record["job_id"])

    def update_job(self, job_id: str, fields: dict[str, Any]) -> None:
        with self._lock:
            key = self._doc_ids.get(job_id)
            if key is None:
                return
            old = self._raw("jobs")[key].get("status")
            self._jobs.update(fields, doc_ids=[int(key)])
            if "status" in fields:
                self._statuses[old] -= 1
                self._statuses[fields["status"]] += 1
            self._written(job_id)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            key = self._doc_ids.get(job_id) if isinstance(job_id, str) else None
            return _copy(self._raw("jobs")[key]) if key is not None else None

    def list_jobs(self, status: str | None = None, offset: int = 0, limit: int | None = None,
                  newest_first: bool = False) -> list[dict[str, Any]]:
        """Job records, oldest first (or newest first), only those with `status` when given, one page of them."""
        with self._lock:
            return [_copy(doc) for doc, _ in self.scan_jobs(status, offset, limit, newest_first)]

    def scan_jobs(self, status: str | None = None, offset: int = 0, limit: int | None = None,
                  newest_first: bool = False) -> list[tuple[dict[str, Any], int]]:
        """Like list_jobs, each record with its revision, but not copied: read the records, never change them."""
        with self._lock:
            docs = self._raw("jobs").values()
            ordered = reversed(docs) if newest_first else iter(docs)
            page = []
            skipped = 0
            for doc in ordered:
                if status is not None and doc.get("status") != status:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                if limit is not None and len(page) >= limit:
                    break
                page.append((doc, self._revisions.get(doc["job_id"], 0)))
            return page

    def count_jobs(self, status: str | None = None) -> int:
        """How many jobs have `status`, or all of them."""
        with self._lock:
            return len(self._doc_ids) if status is None else max(0, self._statuses[status])

    def delete_job(self, job_id: str) -> bool:
        with self._lock:
            key = self._doc_ids.get(job_id)
            if key is None:
                return False
            old = self._raw("jobs")[key].get("status")
            self._jobs.remove(doc_ids=[int(key)])
            del self._doc_ids[job_id]
            self._statuses[old] -= 1
            self._written(job_id)
            return True

    # --- configs ---
    def _config_key(self, field: str, value: str) -> str | None:
        return next((key for key, doc in self._raw("configs").items() if doc.get(field) == value), None)

    def save_config(self, name: str, config: dict[str, Any], now: str) -> str:
        """Store `config` under `name`; an existing name is replaced and keeps its id."""
        with self._lock:
            key = self._config_key("name", name)
            if key is not None:
                self._configs.update({"config": config, "updated_at": now}, doc_ids=[int(key)])
                return self._raw("configs")[key]["config_id"]
            config_id = new_id()
            self._configs.insert(
                {"config_id": config_id, "name": name, "config": config, "created_at": now, "updated_at": now}
            )
            return config_id

    def count_configs(self, name: str | None = None) -> int:
        """How many configs are saved (only those called `name`, when given)."""
        with self._lock:
            if name is None:
                return len(self._raw("configs"))
            return sum(1 for doc in self._raw("configs").values() if doc.get("name") == name)

    def list_configs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_copy(doc) for doc in self._raw("configs").values()]

    def get_config(self, config_id: str) -> dict[str, Any] | None:
        with self._lock:
            key = self._config_key("config_id", config_id)
            return _copy(self._raw("configs")[key]) if key is not None else None

    def delete_config(self, config_id: str) -> bool:
        with self._lock:
            key = self._config_key("config_id", config_id)
            if key is None:
                return False
            self._configs.remove(doc_ids=[int(key)])
            return True

    # --- sweeps (a record each, written once) ---
    def insert_sweep(self, record: dict[str, Any]) -> None:
        """Store a sweep's record: its id, name, config, what it varies and its job ids."""
        with self._lock:
            doc_id = self._sweeps.insert(record)
            self._sweep_keys[record["sweep_id"]] = str(doc_id)

    def get_sweep(self, sweep_id: str) -> dict[str, Any] | None:
        with self._lock:
            key = self._sweep_keys.get(sweep_id) if isinstance(sweep_id, str) else None
            return _copy(self._raw("sweeps")[key]) if key is not None else None

    def list_sweeps(self) -> list[dict[str, Any]]:
        """Sweep records, newest first."""
        with self._lock:
            return [_copy(doc) for doc in reversed(self._raw("sweeps").values())]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _open(storage: JournalStorage) -> dict[str, Any] | None:
    """None when the database reads whole; else what can be saved of it, after moving the damage aside.

    What is saved: the newest snapshot that reads (or its backup copy), with the journal's readable lines replayed
    on top. The manager then rebuilds the job records from the job folders.
    """
    path = storage.path
    try:
        storage.read()
        return None
    except CorruptDatabase as exc:
        reason = str(exc)
    data: dict[str, Any] = {}
    source = None
    for candidate in (path, storage.backup):  # the newest snapshot that reads whole
        if candidate.exists():
            try:
                data, source = read_snapshot(candidate), candidate.name
                break
            except CorruptDatabase:
                log.error("database: %s is unreadable", candidate)
    journal_copy = None
    if storage.journal.exists():
        journal_copy = storage.journal.read_bytes()
    moved = quarantine(path, storage.journal)
    skipped = 0
    if journal_copy is not None:  # each line holds a whole document: the readable ones replay in order
        good, skipped = _readable_lines(journal_copy)
        storage.journal.write_bytes(good)
        replay(storage.journal, data)
        storage.journal.unlink()
    restored = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reason": reason,
                "moved_aside": [p.name for p in moved], "configs_from": source,
                "configs": len(data.get("configs", {})), "journal_lines_skipped": skipped}
    log.error("database %s is damaged (%s); moved aside to %s; configs restored from %s", path, reason,
              ", ".join(restored["moved_aside"]), source or "nothing")
    return {"data": data, "restored": restored}


def _readable_lines(raw: bytes) -> tuple[bytes, int]:
    """The journal's lines that parse as changes, and how many did not (a cut-short last line is not counted)."""
    import json

    good, skipped = [], 0
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            change = json.loads(line)
            readable = isinstance(change, dict) and {"t", "id", "doc"} <= change.keys()
        except ValueError:
            readable = False
        if readable:
            good.append(line)
        else:
            skipped += 1
    return b"".join(good), skipped
