"""REST endpoints of the upload library: upload (multipart, streamed to disk), list, preview, delete."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from python_multipart.multipart import MultipartParser, parse_options_header

from sft_ui import settings
from sft_ui.config import check_text
from sft_ui.data.library import ACCEPTED
from sft_ui.uploads import TooLargeError
from sft_ui.web.rest import ERRORS, PREFIX, ErrorResponse, Manager, MessageResponse, require_api_key

NO_FILE = "file: send the file as multipart/form-data in the field 'file' (curl -F 'file=@data.jsonl')"
_MULTIPART = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": f"The data set file ({', '.join(ACCEPTED)})"}}}}}}}


class DatasetEntry(BaseModel):
    """A file in the upload library; `path` is what a config's `dataset_name` takes."""

    model_config = ConfigDict(extra="allow")
    name: str
    path: str = Field(description="datasets/<name>: put it in dataset_name")
    rows: int | None = Field(description="Rows in the file (null when it cannot be read)")
    format: str | None = Field(description="The format detected from the first rows; null when none fits")
    size_bytes: int
    uploaded_at: str | None = Field(None, description="ISO 8601 UTC")


class DatasetList(BaseModel):
    """The library's files, newest first."""

    datasets: list[DatasetEntry]


class DatasetPreview(DatasetEntry):
    """The file's entry and its first rows as the model will see them (the Train tab's preview)."""

    preview: Any = Field(description="The first n rows: prompt, response, text, tokens, loss_tokens, loss_on, ...")


router = APIRouter(prefix=PREFIX, tags=["datasets"], dependencies=[Depends(require_api_key)],
                   responses={**ERRORS, 413: {"model": ErrorResponse, "description": "Over SFT_UI_MAX_UPLOAD_MB"}})


@router.post("/datasets", response_model=DatasetEntry, summary="Upload a data set file", openapi_extra=_MULTIPART)
async def upload(request: Request, manager: Manager) -> Any:
    """Stream a .json/.jsonl/.csv/.parquet/.txt file into `<data dir>/datasets/` under a safe name; the same content
    again returns the file already holding it (`already_uploaded`). 413 over SFT_UI_MAX_UPLOAD_MB."""
    ctype, params = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise ValueError(NO_FILE)
    return await receive_file(request, params[b"boundary"], settings.max_upload_bytes(), "SFT_UI_MAX_UPLOAD_MB",
                              lambda part: manager.upload_dataset(part.filename(), part))


async def receive_file(request: Request, boundary: bytes, limit: int, setting: str,
                       consume: Callable[[FilePart], Any]) -> Any:
    """Hand the multipart body's `file` part to `consume` (run in a worker thread, so the file goes to disk as it
    arrives); 413 past `limit` bytes, before a byte is read when the body says its length."""
    if int(request.headers.get("content-length") or 0) > limit + 64 * 1024:
        return _too_large(TooLargeError(f"file: larger than the upload limit of {limit / 2**20:g} MB ({setting})"))
    stream = request.stream()

    async def next_chunk() -> bytes:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return b""

    try:
        return await run_in_threadpool(consume, FilePart(boundary, lambda: anyio.from_thread.run(next_chunk)))
    except TooLargeError as exc:
        return _too_large(exc)


@router.get("/datasets", response_model=DatasetList, summary="List uploaded data sets")
def list_datasets(manager: Manager) -> dict[str, Any]:
    """Every file in the library, newest first: name, path, rows, format, size_bytes, uploaded_at."""
    return {"datasets": manager.list_datasets()}


@router.get("/datasets/{name}/preview", response_model=DatasetPreview, summary="Preview an uploaded data set")
def preview(name: str, manager: Manager,
            n: Annotated[int, Query(ge=1, le=50, description="How many rows to show")] = 5,
            base_model: Annotated[str | None, Query(max_length=500, description="Whose tokenizer and chat template "
                                                    "(default: the built-in model)")] = None) -> dict[str, Any]:
    """The file's first `n` rows as `base_model` would see them (its chat template and tokens), as the UI's preview
    shows them."""
    return manager.preview_dataset(name, n, check_text(base_model, "base_model") if base_model else None)


@router.delete("/datasets/{name}", response_model=MessageResponse, summary="Delete an uploaded data set")
def delete(name: str, manager: Manager) -> dict[str, str]:
    """Remove the file; 400 while a pending or running job's config names it."""
    manager.delete_dataset(name)
    return {"message": f"Data set {name} deleted"}


def _too_large(exc: TooLargeError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=413)


class FilePart:
    """The part named `file` of a multipart body pulled chunk by chunk: filename(), then its bytes by iteration."""

    def __init__(self, boundary: bytes, pull: Callable[[], bytes]) -> None:
        self._pull, self._pending = pull, deque[bytes]()
        self._headers: dict[bytes, bytes] = {}
        self._field = self._value = b""
        self._name: str | None = None
        self._in_file = self._done = self._ended = False
        self._parser = MultipartParser(boundary, {
            "on_header_field": self._on_field, "on_header_value": self._on_value, "on_header_end": self._on_header,
            "on_headers_finished": self._on_headers, "on_part_data": self._on_data, "on_part_end": self._on_end})

    def filename(self) -> str:
        """The file's name as the client sent it; ValueError when the body holds no `file` part."""
        while self._name is None:
            if not self._feed():
                raise ValueError(NO_FILE)
        return self._name

    def __iter__(self) -> Iterator[bytes]:
        while True:
            while self._pending:
                yield self._pending.popleft()
            if self._done:
                return
            if not self._feed():
                raise ValueError("file: the upload was cut short")

    def _feed(self) -> bool:
        """Parse one more chunk of the body; False at its end."""
        chunk = b"" if self._ended else self._pull()
        if not chunk:
            self._ended = True
            return False
        self._parser.write(chunk)
        return True

    def _on_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _on_headers(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        self._headers = {}
        if options.get(b"name") == b"file" and self._name is None:
            self._in_file = True
            self._name = options.get(b"filename", b"").decode("utf-8", "replace")

    def _on_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pending.append(bytes(data[start:end]))

    def _on_end(self) -> None:
        if self._in_file:
            self._in_file, self._done = False, True
