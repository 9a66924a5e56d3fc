"""REST endpoints of the model library: import a GGUF (a file under the data root, or uploaded), list, get, delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from python_multipart.multipart import parse_options_header

from sft_ui import settings
from sft_ui.web.rest import ERRORS, PREFIX, ErrorResponse, Manager, MessageResponse, require_api_key
from sft_ui.web.rest_datasets import FilePart, receive_file

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
NO_GGUF = ("body: send JSON {\"gguf\": \"<path under the data root>\", \"name\": \"...\"}, or the file as "
           "multipart/form-data in the field 'file' (curl -F 'file=@model.gguf')")


class ImportRequest(BaseModel):
    """Import a GGUF file that already lies under the data root."""

    model_config = ConfigDict(extra="forbid")
    gguf: str = Field(description="Path of the .gguf file, relative to the data root", max_length=1000)
    name: str | None = Field(None, description="The model's name (default: from the file name)", max_length=100)
    dtype: Dtype = Field("auto", description="auto: float32 on a CPU, bfloat16 on a GPU that has it")


class ModelEntry(BaseModel):
    """A model in the library, or an import on its way; `path` is what a config's `base_model` takes."""

    model_config = ConfigDict(extra="allow")
    name: str
    path: str = Field(description="models/<name>: put it in base_model")
    status: str = Field(description="importing, ready or failed")
    source: str | None = Field(None, description="'gguf: <file>' or 'folder' (copied in by hand)")
    architecture: str | None = None
    parameters: int | None = None
    size_bytes: int | None = None
    has_chat_template: bool | None = None
    progress: float | None = Field(None, description="0-1 while importing")
    error: str | None = None


class ModelList(BaseModel):
    """The library's models, newest first."""

    models: list[ModelEntry]


_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ImportRequest.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "A .gguf file"}}}}}}}

router = APIRouter(prefix=PREFIX, tags=["models"], dependencies=[Depends(require_api_key)],
                   responses={**ERRORS, 413: {"model": ErrorResponse,
                                              "description": "Over SFT_UI_MAX_MODEL_UPLOAD_MB"}})


@router.post("/models", response_model=ModelEntry, summary="Import a GGUF model",
             openapi_extra=_BODY)
async def import_model(request: Request, manager: Manager,
                       name: Annotated[str | None, Query(max_length=100, description="Model name (uploads)")] = None,
                       dtype: Annotated[Dtype, Query(description="Weights' dtype (uploads)")] = "auto") -> Any:
    """Convert a GGUF into a trainable folder `models/<name>` in a worker process; poll GET /models/{name} for its
    status (importing, ready, failed). 400 names an architecture transformers cannot read from GGUF."""
    ctype, params = parse_options_header(request.headers.get("content-type"))
    if ctype == b"multipart/form-data" and params.get(b"boundary"):
        return await _upload(request, manager, params[b"boundary"], name, dtype)
    if ctype != b"application/json":
        raise ValueError(NO_GGUF)
    body = ImportRequest.model_validate_json(await request.body())  # a ValidationError is a 400 naming the field
    return await run_in_threadpool(manager.models.start, body.gguf, body.name, body.dtype)


async def _upload(request: Request, manager: Manager, boundary: bytes, name: str | None, dtype: str) -> Any:
    """Stream the multipart `file` into the library's uploads, then import it."""
    limit = settings.max_model_upload_bytes()

    def consume(part: FilePart) -> dict[str, Any]:
        uploaded = manager.models.receive(part.filename(), part, limit)
        return manager.models.start(str(uploaded[0].relative_to(manager.store_root())), name, dtype, uploaded)

    return await receive_file(request, boundary, limit, "SFT_UI_MAX_MODEL_UPLOAD_MB", consume)


@router.get("/models", response_model=ModelList, summary="List the local models")
def list_models(manager: Manager) -> dict[str, Any]:
    """Models under `<data dir>/models/`, imported or copied in, and imports on their way, newest first."""
    return {"models": manager.models.list()}


@router.get("/models/{name}", response_model=ModelEntry, summary="One model or import")
def get_model(name: str, manager: Manager) -> dict[str, Any]:
    """A model's entry, or its import's record while it runs or after it failed."""
    return manager.models.get(name)


@router.delete("/models/{name}", response_model=MessageResponse, summary="Delete a local model")
def delete_model(name: str, manager: Manager) -> dict[str, str]:
    """Remove the model's folder; 400 while it is imported or a pending or running job uses it."""
    manager.models.delete(name)
    return {"message": f"Model {name} deleted"}

