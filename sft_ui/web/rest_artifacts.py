"""REST endpoints for what a job trained: playground answers, zip download, LoRA merge, push to the Hub."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from sft_ui import artifacts, checkpoints
from sft_ui.config import MultilineText, Text
from sft_ui.playground import MAX_NEW_TOKENS, MAX_PROMPT_CHARS, Playground, free_models
from sft_ui.web.rest import ERRORS, PREFIX, Manager, MessageResponse, require_api_key

log = logging.getLogger(__name__)

CHECKPOINT = "A checkpoint of the job, like 'checkpoint-150' (GET /jobs/{id}/checkpoints); default: its model"


class GenerateRequest(BaseModel):
    """Body of POST /jobs/{job_id}/generate: a prompt, written for the model as in training."""

    model_config = ConfigDict(extra="forbid")
    prompt: MultilineText = Field(min_length=1, max_length=MAX_PROMPT_CHARS,
                                  description="The instruction or user message (newlines and tabs allowed)")
    input: MultilineText = Field("", max_length=MAX_PROMPT_CHARS, description="Optional input (alpaca's `input` field)")
    max_new_tokens: int = Field(64, ge=1, le=MAX_NEW_TOKENS, description="Most tokens to generate")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0: greedy (the same answer every time)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling (when temperature > 0)")
    checkpoint: str | None = Field(None, max_length=40, description=CHECKPOINT)


class GenerateResponse(BaseModel):
    """The base model's and the tuned model's answers, and the prompt exactly as the models read it."""

    model_config = ConfigDict(extra="allow")
    base: str
    tuned: str
    prompt_formatted: str
    prompt_style: str = Field(description="alpaca, chat (the tokenizer's chat template) or plain")


class MergeResponse(BaseModel):
    """Where the merged model was saved (loadable with AutoModelForCausalLM)."""

    message: str
    job_id: str
    merged_dir: str


class PushRequest(BaseModel):
    """Body of POST /jobs/{job_id}/push; the server's HF_TOKEN environment variable authorizes it."""

    model_config = ConfigDict(extra="forbid")
    repo_id: Text = Field(min_length=1, max_length=200, description="Hub repo id, e.g. 'me/my-model'")
    private: bool = Field(True, description="Create the repo private (an existing repo keeps its visibility)")
    merged: bool = Field(False, description="Push the merged model (after /merge) instead of the adapter")
    checkpoint: str | None = Field(None, max_length=40, description=CHECKPOINT)


class MergeRequest(BaseModel):
    """Optional body of POST /jobs/{job_id}/merge."""

    model_config = ConfigDict(extra="forbid")
    checkpoint: str | None = Field(None, max_length=40, description=CHECKPOINT)


class Checkpoint(BaseModel):
    """One saved checkpoint: its losses at its step, and whether it is the best (kept whatever keep_checkpoints)."""

    name: str = Field(description="The folder name, e.g. 'checkpoint-150': the `checkpoint` other calls take")
    step: int
    path: str = Field(description="The folder, relative to the data root")
    size_bytes: int
    train_loss: float | None = Field(description="The training loss last logged at or before this step")
    eval_loss: float | None = Field(description="The eval loss of the evaluation at this step (null: none)")
    best: bool = Field(description="trainer_state.json's best_model_checkpoint (only when evaluating)")


class CheckpointList(BaseModel):
    """The job's checkpoints on disk, oldest first."""

    job_id: str
    checkpoints: list[Checkpoint]


class PushResponse(BaseModel):
    """The repo the model went to."""

    model_config = ConfigDict(extra="allow")
    message: str
    repo_id: str
    url: str
    private: bool


@contextlib.asynccontextmanager
async def _sweep_exports(app: FastAPI) -> AsyncIterator[None]:
    """At the server's start, delete download zips older than an hour (each new export does too)."""
    try:
        artifacts.remove_old_exports(app.state.sft_manager)
    except OSError as exc:  # a read-only data dir still serves; exports will say what is wrong
        log.warning("could not sweep old download zips: %s", exc)
    yield


# The app includes this router, so FastAPI runs its lifespan inside the app's own (after the store is open).
router = APIRouter(prefix=PREFIX, tags=["sft"], dependencies=[Depends(require_api_key)], responses=ERRORS,
                   lifespan=_sweep_exports)


def get_playground(request: Request) -> Playground:
    """The app's playground: `app.state.playground`, made by build_app."""
    return request.app.state.playground


@router.post("/jobs/{job_id}/generate", response_model=GenerateResponse, summary="Try the tuned model")
def generate(job_id: str, body: GenerateRequest, playground: Annotated[Playground, Depends(get_playground)]) -> dict:
    """Answer a prompt with the base and the tuned model of a completed or stopped job (400 without a model)."""
    return playground.generate(job_id, body.prompt, body.max_new_tokens, body.temperature, body.top_p, body.input,
                               body.checkpoint)


@router.get("/jobs/{job_id}/checkpoints", response_model=CheckpointList, summary="List checkpoints")
def list_checkpoints(job_id: str, manager: Manager) -> dict:
    """Each checkpoint saved on disk (keep_checkpoints of them, and the best): step, path, size, losses, best."""
    return checkpoints.for_job(manager, job_id)


@router.get("/resources", summary="CPU, memory and GPUs, and what holds the memory")
def resources(request: Request, manager: Manager) -> dict[str, Any]:
    """cpu_percent, memory {total_bytes, available_bytes}, gpus [{index, name, memory_used_bytes, ...}] and
    processes [{holder, pid, rss_bytes}]: the server (with the playground's loaded models) and its workers."""
    from sft_ui import resources as machine

    return machine.report(manager, get_playground(request))


@router.post("/playground/release", response_model=MessageResponse, summary="Free the playground's models")
def release(playground: Annotated[Playground, Depends(get_playground)]) -> dict[str, str]:
    """Drop the base and tuned models the playground keeps loaded, giving their memory back."""
    return {"message": free_models(playground)}


@router.get("/jobs/{job_id}/download", response_class=FileResponse, summary="Download the model",
            responses={200: {"content": {"application/zip": {}}, "description": "The zip"}})
def download(job_id: str, manager: Manager,
             checkpoint: Annotated[str | None, Query(max_length=40, description=CHECKPOINT)] = None) -> FileResponse:
    """A zip of the job's model/ (adapter or full model, tokenizer; or a checkpoint's), config.json and
    metrics.jsonl."""
    path = artifacts.zip_job(manager, job_id, checkpoint)
    return FileResponse(path, media_type="application/zip", filename=path.name)


@router.post("/jobs/{job_id}/merge", response_model=MergeResponse, summary="Merge the LoRA adapter")
def merge(job_id: str, manager: Manager, body: Annotated[MergeRequest | None, Body()] = None) -> dict:
    """Merge the adapter (or a checkpoint's) into its base model and save it to <job dir>/merged
    (merged-<checkpoint>); 400 for a full fine-tune."""
    return artifacts.merge(manager, job_id, body.checkpoint if body else None)


@router.post("/jobs/{job_id}/push", response_model=PushResponse, summary="Push to the Hugging Face Hub")
def push(job_id: str, body: PushRequest, manager: Manager) -> dict:
    """Upload the model to a Hub repo (private by default); 400 when HF_TOKEN is not set."""
    return artifacts.push(manager, job_id, body.repo_id, private=body.private, merged=body.merged,
                          checkpoint=body.checkpoint)
