"""REST endpoint of job events: what happened to a job, in order, paged by cursor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from sft_ui import events
from sft_ui.web.rest import ERRORS, PREFIX, Manager, require_api_key


class EventsResponse(BaseModel):
    """A page of the job's events, oldest first: each has `id` (the cursor), `created_at` (ISO 8601 UTC), `level`
    (info, warning, error), `type`, `message` and `data`."""

    job_id: str
    events: list[dict[str, Any]]
    has_more: bool = Field(description="True when more events follow this page: ask again with after=<last id>")


router = APIRouter(prefix=PREFIX, tags=["sft"], dependencies=[Depends(require_api_key)], responses=ERRORS)


@router.get("/jobs/{job_id}/events", response_model=EventsResponse, summary="Get job events")
def get_events(
    job_id: str,
    manager: Manager,
    after: Annotated[str | None, Query(description="Only events after this event id (the last one you read)")] = None,
    limit: Annotated[int, Query(ge=1, le=events.MAX_LIMIT, description="At most this many events")] =
    events.DEFAULT_LIMIT,
) -> EventsResponse:
    """Created, queued, started, each phase, checkpoints, evaluations, warnings, stop and the end, in order."""
    found, more = manager.get_events(job_id, after, limit)
    return EventsResponse(job_id=job_id, events=found, has_more=more)
