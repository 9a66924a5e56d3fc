"""REST endpoints of sweeps: several jobs from one config with up to three fields varied, ranked by eval."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from sft_ui.status import JobStatus
from sft_ui.sweep_plan import SweepRequest
from sft_ui.web.rest import ERRORS, PREFIX, Manager, require_api_key


class SweepJob(BaseModel):
    """One job of a sweep, in ranking order."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    name: str
    status: JobStatus
    point: dict[str, Any] = Field(description="The varied fields and this job's values")
    rank: int = Field(description="1 = best so far")
    best: bool = Field(description="True for the best job (rank 1, once it has an eval value or a train loss)")
    final_loss: float | None = Field(None, description="Last training loss")
    best_eval: dict[str, Any] | None = Field(None, description="The best value of the sweep's metric and its step")
    score: dict[str, Any] | None = Field(None, description="exact_match, f1 (and the base model's) on held-out rows")


class SweepView(BaseModel):
    """A sweep: what it varies, and its jobs ranked by `metric` (eval loss ascending, accuracy descending; jobs
    without an eval value after those with one, by final train loss)."""

    model_config = ConfigDict(extra="allow")
    sweep_id: str
    name: str
    created_at: str = Field(description="ISO 8601 UTC")
    config: dict[str, Any] = Field(description="What every job shares: the config without the varied fields")
    mode: str = Field(description="grid or random")
    fields: list[str] = Field(description="The varied fields")
    metric: str = Field(description="The config's metric_for_best: what ranks the jobs")
    job_ids: list[str] = Field(description="The jobs, in point (queue) order")
    jobs: list[SweepJob]
    best_job_id: str | None = None


class SweepSummary(BaseModel):
    """A sweep in the list: its jobs' ids and how many have each status."""

    model_config = ConfigDict(extra="allow")
    sweep_id: str
    name: str
    created_at: str
    mode: str
    fields: list[str]
    metric: str
    job_ids: list[str]
    counts: dict[str, int] = Field(description="Jobs by status")


class SweepList(BaseModel):
    """Sweeps, newest first."""

    sweeps: list[SweepSummary]


class SweepStopped(BaseModel):
    """Answer of POST /sweeps/{sweep_id}/stop."""

    message: str
    sweep_id: str
    stopped: int = Field(description="How many pending or running jobs were stopped")


router = APIRouter(prefix=PREFIX, tags=["sweeps"], dependencies=[Depends(require_api_key)], responses=ERRORS)


@router.post("/sweeps", response_model=SweepView, summary="Start a sweep")
def create_sweep(body: SweepRequest, manager: Manager) -> dict[str, Any]:
    """One queued job per point of `grid` (every combination) or of `random` (`trials` draws), at most
    SFT_UI_MAX_SWEEP_JOBS; every point is checked first, and a bad one is a 400 naming the field and the value.
    All or nothing: the queue limit (SFT_UI_MAX_QUEUED_JOBS) counts the whole sweep."""
    return manager.sweeps.create(body)


@router.get("/sweeps", response_model=SweepList, summary="List sweeps")
def list_sweeps(manager: Manager) -> dict[str, Any]:
    """Sweeps, newest first, with their jobs' counts by status."""
    return {"sweeps": manager.sweeps.list()}


@router.get("/sweeps/{sweep_id}", response_model=SweepView, summary="Get a sweep, ranked")
def get_sweep(sweep_id: str, manager: Manager) -> dict[str, Any]:
    """The sweep's jobs with status, final train loss, best eval value, score, ranked by the metric; best marked."""
    return manager.sweeps.get(sweep_id)


@router.post("/sweeps/{sweep_id}/stop", response_model=SweepStopped, summary="Stop a sweep")
def stop_sweep(sweep_id: str, manager: Manager) -> SweepStopped:
    """Stop every pending or running job of the sweep (running ones save what they have)."""
    stopped = manager.sweeps.stop(sweep_id)
    return SweepStopped(message=f"Sweep {sweep_id}: {stopped} job{'s' if stopped != 1 else ''} stopped",
                        sweep_id=sweep_id, stopped=stopped)
