"""A job's status and progress: the one definition the manager, REST models, UI filters and tests share."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """The seed's five statuses; members are plain strings, so records and JSON answers are unchanged."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


STATUSES: tuple[str, ...] = tuple(JobStatus)
ACTIVE = (JobStatus.PENDING, JobStatus.RUNNING)  # a job that may still change on its own
ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


@dataclass
class Progress:
    """Where a job stands: `progress` in its record."""

    step: int | float = 0
    total_steps: int | float | None = None
    epoch: float | None = 0.0
    eta_seconds: float | None = None

    @classmethod
    def from_live(cls, live: dict[str, Any], total_steps: int | None = None, ended: bool = False) -> Progress:
        """From a worker's status.json (`live`); `total_steps` fills a missing total; an ended job has no ETA left."""
        return cls(step=live.get("step") or 0, total_steps=live.get("total_steps") or total_steps,
                   epoch=live.get("epoch") or 0.0, eta_seconds=0 if ended else live.get("eta_seconds"))

    def as_dict(self) -> dict[str, Any]:
        """The record's JSON shape."""
        return asdict(self)


def iso_time(timestamp: float | None = None) -> str:
    """A job record's time: ISO 8601 UTC to the second (`timestamp` as from time.time() or st_mtime; now if None)."""
    when = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")
