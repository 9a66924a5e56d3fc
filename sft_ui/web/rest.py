"""REST API under /api/sft: a thin translation between HTTP and the JobManager."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sft_ui import job_fields, openai_shape, settings
from sft_ui.config import SFTConfig, Text, describe_errors
from sft_ui.manager import JobManager, NotFoundError
from sft_ui.status import STATUSES, JobStatus, Progress
from sft_ui.store import StoreWriteError

PREFIX = "/api/sft"
UNAUTHORIZED = "missing or wrong API key: send 'Authorization: Bearer <SFT_UI_API_KEY>'"

# --- request and response models (they are what /docs shows) ---


class TrainRequest(BaseModel):
    """Body of POST /train."""

    model_config = ConfigDict(extra="forbid")
    config: SFTConfig = Field(description="The job's options; keys left out take their defaults. Unknown keys are 400.")
    metadata: dict[str, Any] | None = Field(
        None, description="Up to 16 string keys (1-64 characters) and string values (up to 512), as OpenAI's jobs "
        "have; returned in the record and filtered on by GET /jobs?metadata.<key>=<value>")


class TrainResponse(BaseModel):
    """A started job: `running`, or `pending` while it waits for a free slot."""

    job_id: str
    status: JobStatus


class JobRecord(BaseModel):
    """One job: its status, config, progress, last metrics, and error or result when it ended."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    name: str
    status: JobStatus
    created_at: str = Field(description="ISO 8601 UTC")
    started_at: str | None = None
    finished_at: str | None = None
    config: dict[str, Any] = Field(description="The full validated SFTConfig")
    progress: Progress
    metrics: dict[str, Any] = Field(default_factory=dict, description="Last logged loss, learning_rate, ...")
    queue_position: int | None = Field(None, description="Place in the queue (1 = next), pending jobs only")
    error: str | None = Field(None, description="Why it failed (failed only)")
    result: dict[str, Any] | None = Field(
        None, description="Output path, final loss, runtime, rows (read, used, dropped, truncated), tokens, warnings "
        "(completed only)")


class JobList(BaseModel):
    """Job records, newest first; `has_more` and `last_id` (the `after` of the next page) when a page was asked
    for (limit or after)."""

    jobs: list[JobRecord]
    has_more: bool | None = Field(None, description="More jobs follow this page (only with limit or after)")
    last_id: str | None = Field(None, description="The last job's id: pass it as `after` for the next page")


class StopResponse(BaseModel):
    """Answer of POST /jobs/{job_id}/stop; `status` is the job's status once it has saved and exited."""

    message: str
    job_id: str
    status: JobStatus


class ResumeResponse(BaseModel):
    """Answer of POST /jobs/{job_id}/resume: the job is queued again and continues from checkpoint `step`."""

    message: str
    job_id: str
    status: JobStatus
    step: int


class MetricsResponse(BaseModel):
    """The job's logged points, oldest first (each has `step`, and `loss`, `learning_rate`, ... as logged)."""

    job_id: str
    points: list[dict[str, Any]]


class SamplesResponse(BaseModel):
    """The sample answers, oldest step first: `step`, `index` (of the prompt), `prompt`, `reference` (a held-out
    row's reply, or null for a typed prompt), `answer`, `seconds` (per prompt)."""

    job_id: str
    samples: list[dict[str, Any]]


class LogResponse(BaseModel):
    """The tail of the job's log."""

    job_id: str
    log: str


class MessageResponse(BaseModel):
    """A one-line answer."""

    message: str


class SaveConfigRequest(BaseModel):
    """Body of POST /configs; a config saved under an existing name replaces it and keeps its id."""

    model_config = ConfigDict(extra="forbid")
    name: Text = Field(description="A name to find the config by (1-200 characters)")
    config: SFTConfig


class SaveConfigResponse(BaseModel):
    """A saved config's id and name."""

    config_id: str
    name: str


class SavedConfig(BaseModel):
    """A saved config."""

    model_config = ConfigDict(extra="allow")
    config_id: str
    name: str
    config: dict[str, Any]


class Health(BaseModel):
    """The server is up; job counts by status and the number of saved configs."""

    status: Literal["ok"]
    jobs: dict[str, int]
    configs: int
    max_concurrent_jobs: int
    database: dict[str, Any] = Field(
        default_factory=dict,
        description="`restored` is null, or what a restore did when the database was found damaged at start: "
                    "`at`, `reason`, `moved_aside`, `configs_from`, `configs`, `jobs_rebuilt`")


class ErrorResponse(BaseModel):
    """Every error: `detail` says what was wrong, naming the field ('config.max_steps: ...')."""

    detail: str


# --- dependencies ---


def get_manager(request: Request) -> JobManager:
    """The JobManager behind the API: `app.state.sft_manager`, set by build_app."""
    return request.app.state.sft_manager


def _key_ok(given: str | None) -> bool:
    """True when no API key is configured or `given` is it."""
    key = settings.api_key()
    return key is None or (given is not None and secrets.compare_digest(given.strip().encode(), key.encode()))


def authorized(request: Request) -> bool:
    """True when no API key is configured or the request carries `Authorization: Bearer <key>`."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return _key_ok(given if scheme.lower() == "bearer" else None)


_bearer = HTTPBearer(auto_error=False, description="SFT_UI_API_KEY, when the server sets one")


def require_api_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """401 unless the key matches (or none is configured)."""
    if not _key_ok(credentials.credentials if credentials else None):
        raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


Manager = Annotated[JobManager, Depends(get_manager)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in ((400, "Invalid input"), (401, "Missing or wrong API key"), (404, "Unknown job or config"),
                       (500, "Internal server error"))
}

router = APIRouter(prefix=PREFIX, tags=["sft"])
_guarded = APIRouter(dependencies=[Depends(require_api_key)], responses=ERRORS)

# --- endpoints ---


@_guarded.post("/train", response_model=TrainResponse, summary="Start training")
def train(body: TrainRequest, manager: Manager) -> TrainResponse:
    """Create a job from the config and start it (`pending` while all slots are busy)."""
    job_id = manager.create_job(body.config, metadata=body.metadata)
    record = manager.start_job(job_id)
    return TrainResponse(job_id=job_id, status=record["status"])


@_guarded.get("/jobs", response_model=JobList, summary="List jobs")
def list_jobs(
    manager: Manager,
    request: Request,  # its metadata.<key>=<value> pairs filter the list
    status: Annotated[JobStatus | None, Query(description="Only jobs with this status")] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000, description="At most this many jobs")] = None,
    offset: Annotated[int, Query(ge=0, description="Skip this many (newest first)")] = 0,
    after: Annotated[str | None, Query(max_length=64, description="Only jobs older than this job id (a cursor: "
                                       "the last_id of the previous page)")] = None,
) -> Response:
    """Job records, newest first; `?metadata.<key>=<value>` keeps the jobs whose metadata has every such pair."""
    wanted = job_fields.metadata_filter(request.query_params.multi_items())
    if limit is None and after is None and not wanted:  # the seed's answer, as it was
        records = manager.list_jobs_encoded(_encode_record, status=status, limit=limit, offset=offset)
        return Response(b'{"jobs":[' + b",".join(records) + b"]}", media_type="application/json")
    body = job_fields.page(manager, _encode_record, status, limit, offset, after, wanted)
    return Response(body, media_type="application/json")


def _encode_record(record: dict[str, Any]) -> bytes:
    """One job record as the JobRecord JSON that GET /jobs/{id} answers (the manager keeps ended ones)."""
    return JobRecord.model_validate(job_fields.add_live_fields(dict(record))).model_dump_json().encode()


@_guarded.get("/jobs/{job_id}", response_model=JobRecord, summary="Get job status",
              responses={200: {"description": "The job record; with `?format=openai`, OpenAI's fine_tuning.job "
                               "object (sft_ui.openai_shape)"}})
def get_job(job_id: str, manager: Manager,
            format: Annotated[Literal["openai"] | None, Query(  # noqa: A002 - the query parameter's name
                description="openai: the record in the shape of OpenAI's fine-tuning job object")] = None) -> Any:
    """The job record, with live progress while it runs."""
    record = manager.get_job_status(job_id)
    if format == "openai":
        return JSONResponse(openai_shape.fine_tuning_job(record))
    return record


@_guarded.post("/jobs/{job_id}/stop", response_model=StopResponse, summary="Stop job")
def stop_job(job_id: str, manager: Manager) -> StopResponse:
    """Stop a pending or running job (it saves what it has); a job that already ended is 400."""
    record = manager.stop_job(job_id)
    return StopResponse(message=f"Job {job_id} stopped", job_id=job_id, status=record["status"])


class ResumeRequest(BaseModel):
    """Optional body of POST /jobs/{job_id}/resume: which checkpoint to continue from (later ones are deleted)."""

    model_config = ConfigDict(extra="forbid")
    checkpoint: str | None = Field(None, max_length=40, description="e.g. 'checkpoint-150'; default: the last")


@_guarded.post("/jobs/{job_id}/resume", response_model=ResumeResponse, summary="Resume job")
def resume_job(job_id: str, manager: Manager, body: Annotated[ResumeRequest | None, Body()] = None) -> ResumeResponse:
    """Continue a stopped or failed job from its last checkpoint (or `checkpoint`) as the same job; 400 when it has
    none."""
    record = manager.resume_job(job_id, body.checkpoint if body else None)
    step = record["resumed"]["from_step"]
    return ResumeResponse(message=f"Job {job_id} resumed from step {step}", job_id=job_id, status=record["status"],
                          step=step)


@_guarded.delete("/jobs/{job_id}", response_model=MessageResponse, summary="Delete job")
def delete_job(job_id: str, manager: Manager) -> MessageResponse:
    """Forget an ended job (its files stay on disk); a pending or running job is 400: stop it first."""
    manager.delete_job(job_id)
    return MessageResponse(message=f"Job {job_id} deleted")


@_guarded.get("/jobs/{job_id}/metrics", response_model=MetricsResponse, summary="Get loss history")
def get_metrics(
    job_id: str,
    manager: Manager,
    since: Annotated[int | None, Query(description="Only points with step > since")] = None,
    max_points: Annotated[int | None, Query(ge=2, description="At most this many points, evenly spread, "
                                            "keeping the first and the last (for plots)")] = None,
) -> MetricsResponse:
    """The job's logged points (loss, learning_rate, ...) per step."""
    return MetricsResponse(job_id=job_id, points=manager.get_metrics(job_id, since=since, max_points=max_points))


@_guarded.get("/jobs/{job_id}/samples", response_model=SamplesResponse, summary="Get sample answers")
def get_samples(
    job_id: str,
    manager: Manager,
    since: Annotated[int | None, Query(description="Only answers from steps > since")] = None,
) -> SamplesResponse:
    """The model's greedy answers to the sample prompts, one item per prompt and step (empty without prompts)."""
    return SamplesResponse(job_id=job_id, samples=manager.get_samples(job_id, since=since))


@_guarded.get("/jobs/{job_id}/log", response_model=LogResponse, summary="Get job log")
def get_log(job_id: str, manager: Manager) -> LogResponse:
    """The last 20 kB of the job's log."""
    return LogResponse(job_id=job_id, log=manager.get_log(job_id))


@_guarded.post("/configs", response_model=SaveConfigResponse, summary="Save config")
def save_config(body: SaveConfigRequest, manager: Manager) -> SaveConfigResponse:
    """Save a config under a name (replacing one of that name)."""
    config_id = manager.save_config(body.name, body.config)
    return SaveConfigResponse(config_id=config_id, name=manager.get_config(config_id)["name"])


@_guarded.get("/configs", response_model=list[SavedConfig], summary="List configs")
def list_configs(manager: Manager) -> list[dict[str, Any]]:
    """Saved configs, oldest first."""
    return manager.list_configs()


@_guarded.get("/configs/{config_id}", response_model=SavedConfig, summary="Get config")
def get_config(config_id: str, manager: Manager) -> dict[str, Any]:
    """One saved config."""
    return manager.get_config(config_id)


@_guarded.delete("/configs/{config_id}", response_model=MessageResponse, summary="Delete config")
def delete_config(config_id: str, manager: Manager) -> MessageResponse:
    """Remove a saved config."""
    manager.delete_config(config_id)
    return MessageResponse(message=f"Config {config_id} deleted")


@router.get("/health", response_model=Health, summary="Health check")
def health(manager: Manager) -> Health:
    """Up or not; job counts by status. Needs no API key."""
    return Health(status="ok", jobs={s: manager.count_jobs(s) for s in STATUSES}, configs=manager.count_configs(),
                  max_concurrent_jobs=manager.max_concurrent_jobs, database=manager.database_status())


router.include_router(_guarded)

# --- errors: 400 invalid input, 401 key, 404 unknown id, 500 real faults; always JSON ---

_SOURCES = ("body", "query", "path", "header", "cookie")


class _Errors:
    """Request-validation errors shaped like a pydantic ValidationError, for describe_errors."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self._items = items

    def errors(self) -> list[dict[str, Any]]:
        return self._items


def _field_error(item: dict[str, Any]) -> dict[str, Any]:
    """One FastAPI error with its location made a field name ('config.max_steps', 'body', 'limit')."""
    loc = tuple(item.get("loc", ()))
    item = dict(item)
    if item.get("type") == "json_invalid":
        pos = loc[1] if len(loc) > 1 else "?"
        return {**item, "loc": ("body",), "type": "missing",
                "msg": f"malformed JSON: {item.get('ctx', {}).get('error', 'cannot parse')} at position {pos}"}
    if loc == ("body",) and isinstance(item.get("input"), bytes | str):
        return {**item, "type": "missing", "msg": "must be a JSON object sent with 'Content-Type: application/json'"}
    item["loc"] = loc[1:] if len(loc) > 1 and loc[0] in _SOURCES else loc
    if item["type"] == "missing" and loc == ("body",):
        item["msg"] = "a JSON object is required"
    return item


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    if not authorized(request):  # an unauthorized caller learns nothing about the body it sent
        return JSONResponse({"detail": UNAUTHORIZED}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    assert isinstance(exc, RequestValidationError)
    items = [_field_error(item) for item in exc.errors()]
    return _error(400, describe_errors(_Errors(items)))  # type: ignore[arg-type]


async def _invalid_value(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ValidationError):
        return _error(400, describe_errors(exc))
    return _error(400, str(exc))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _error(404, str(exc))


async def _fault(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, so the server logs the traceback; the client gets JSON only.
    return _error(500, f"internal server error: {type(exc).__name__}: {exc}"[:500])


async def _not_written(request: Request, exc: Exception) -> JSONResponse:
    # Nothing the request would have changed is visible: say so, and whether the disk is full.
    assert isinstance(exc, StoreWriteError)
    status = 507 if exc.disk_full else 503
    return _error(status, exc.explain())


def install_error_handlers(app: FastAPI) -> None:
    """Map validation errors to 400 (not 422), NotFoundError to 404, ValueError to 400, faults to JSON 500."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ValueError, _invalid_value)  # StateError, ValidationError, bad paths
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(StoreWriteError, _not_written)  # 507 disk full, 503 another write failure
    app.add_exception_handler(Exception, _fault)
