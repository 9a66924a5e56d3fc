"""Job fields beside the seed's: metadata (checked, filtered on), estimated_finish, and cursor paging of the list."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sft_ui.config import check_text
from sft_ui.status import JobStatus, iso_time

if TYPE_CHECKING:
    from sft_ui.manager import JobManager

MAX_METADATA_KEYS = 16  # as OpenAI's fine-tuning jobs
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def check_metadata(metadata: Any) -> dict[str, str]:
    """`metadata` as a dict of strings, or ValueError naming `metadata.<key>` (None and "" mean none)."""
    if metadata is None or metadata == "":
        return {}
    if isinstance(metadata, str):  # the Gradio API and the form send JSON text
        try:
            metadata = json.loads(metadata)
        except ValueError:
            raise ValueError('metadata: must be a JSON object of strings, e.g. {"team": "nlp"}') from None
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata: must be an object of string keys and values, got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata: at most {MAX_METADATA_KEYS} keys, got {len(metadata)}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY:
            raise ValueError(f"metadata.{str(key)[:80]}: keys must be 1-{MAX_METADATA_KEY} characters")
        check_text(key, f"metadata.{key!r}")
        if not isinstance(value, str):
            raise ValueError(f"metadata.{key}: must be a string, got {type(value).__name__}")
        if len(value) > MAX_METADATA_VALUE:
            raise ValueError(f"metadata.{key}: at most {MAX_METADATA_VALUE} characters, got {len(value)}")
        check_text(value, f"metadata.{key}")
    return dict(metadata)


def metadata_filter(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The `metadata.<key>=<value>` pairs of a query string, as {key: value} (several keys: all must match)."""
    return {name[len("metadata."):]: value for name, value in query if name.startswith("metadata.")}


def estimated_finish(record: dict[str, Any], now: float | None = None) -> str | None:
    """ISO UTC time the running job should end (now + its ETA); None unless it runs with an ETA."""
    eta = (record.get("progress") or {}).get("eta_seconds")
    if record.get("status") != JobStatus.RUNNING or not isinstance(eta, int | float):
        return None
    return iso_time((time.time() if now is None else now) + eta)


def add_live_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The record with estimated_finish and trained_tokens (the last logged num_tokens) filled in."""
    record["estimated_finish"] = estimated_finish(record)
    tokens = (record.get("metrics") or {}).get("num_tokens")
    if isinstance(tokens, int | float):
        record["trained_tokens"] = int(tokens)
    record.setdefault("trained_tokens", None)
    record.setdefault("metadata", {})
    return record


def page(manager: JobManager, encode: Callable[[dict[str, Any]], bytes], status: str | None, limit: int | None,
         offset: int, after: str | None, metadata: dict[str, str]) -> bytes:
    """GET /jobs' body: {"jobs": [...], "has_more", "last_id"}, newest first, after the job `after` when given.

    Without a metadata filter the page goes through the manager's encoded list (ended records are encoded once);
    a cursor becomes an offset under the manager's lock, so a job created meanwhile cannot shift the page."""
    want = None if limit is None else limit + 1  # one more says whether more follow
    with manager._lock:  # noqa: SLF001 - the list must not change between the cursor's lookup and the page
        if not metadata:
            start = offset + (_position(manager, status, after) if after is not None else 0)
            records = manager.list_jobs_encoded(encode, status=status, limit=want, offset=start)
        else:
            records = [encode(manager.get_job_status(job_id))
                       for job_id in _matching(manager, status, metadata, after, offset, want)]
    has_more = limit is not None and len(records) > limit
    records = records[:limit] if limit is not None else records
    last_id = json.loads(records[-1])["job_id"] if records else None
    return (b'{"jobs":[' + b",".join(records) + b'],"has_more":' + (b"true" if has_more else b"false")
            + b',"last_id":' + json.dumps(last_id).encode() + b"}")


def _position(manager: JobManager, status: str | None, after: str) -> int:
    """How many jobs (with `status`) come before and including `after`, newest first; ValueError when unknown."""
    for index, (doc, _) in enumerate(manager.store.scan_jobs(status=status, newest_first=True)):
        if doc["job_id"] == after:
            return index + 1
    raise ValueError(f"after: no job {after!r}" + (f" with status {status}" if status else "") + " in the list")


def _matching(manager: JobManager, status: str | None, metadata: dict[str, str], after: str | None, offset: int,
              want: int | None) -> list[str]:
    """Ids of the jobs whose metadata has every pair, newest first, past `after` and `offset`, at most `want`."""
    ids: list[str] = []
    seen = after is None
    skipped = 0
    for doc, _ in manager.store.scan_jobs(status=status, newest_first=True):
        if not seen:
            seen = doc["job_id"] == after
            continue
        held = doc.get("metadata") or {}
        if any(held.get(key) != value for key, value in metadata.items()):
            continue
        if skipped < offset:
            skipped += 1
            continue
        if want is not None and len(ids) >= want:
            break
        ids.append(doc["job_id"])
    if not seen:
        raise ValueError(f"after: no job {after!r}" + (f" with status {status}" if status else "") + " in the list")
    return ids
