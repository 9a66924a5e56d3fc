"""The app factory: the REST API under /api/sft and the Gradio UI at /, with their lifespan and middleware."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import AsyncIterator

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sft_ui import settings
from sft_ui.manager import JobManager
from sft_ui.playground import Playground
from sft_ui.web import rest, rest_artifacts, rest_datasets, rest_events, rest_models, rest_sweeps
from sft_ui.web.ui import build_ui
from sft_ui.web.ui.common import CSS

log = logging.getLogger("sft_ui.app")


def build_app(manager: JobManager | None = None) -> FastAPI:
    """The FastAPI app over `manager` (a new JobManager when None): REST routers, JSON errors, the UI at '/'.

    The app owns the manager and its Playground (`app.state.sft_manager`, `app.state.playground`); handlers get them
    from there.
    """
    manager = manager or JobManager()
    playground = Playground(manager)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager.start()  # opens the database, recovers the jobs a stopped server left, starts the spare
        log.info("data dir %s", manager.data_dir)
        yield
        manager.shutdown()  # running jobs save what they have and end `stopped`

    app = FastAPI(
        title="sft-ui",
        summary="Run, watch and manage supervised fine-tuning jobs",
        description="REST API under `/api/sft`; the Gradio UI is at `/`. Errors are JSON `{\"detail\": ...}`.",
        version="0.1.0",
        lifespan=lifespan,
        # A trailing slash is a 404 like any unknown path. With redirects on, only paths the Gradio mount
        # cannot match (a newline in an id) got a 307, so the same request answered two ways.
        redirect_slashes=False,
    )
    app.state.sft_manager = manager
    app.state.playground = playground
    rest.install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(rest_artifacts.router)  # playground, download, merge, push
    app.include_router(rest_datasets.router)  # the upload library
    app.include_router(rest_models.router)  # the model library
    app.include_router(rest_sweeps.router)  # sweeps: several jobs from one config, ranked
    app.include_router(rest_events.router)  # a job's events, paged by cursor
    key = settings.api_key()
    # With a key, the Gradio UI and its API ask for it too: any user name, the key as password.
    auth = (lambda _user, password: secrets.compare_digest(str(password).encode(), key.encode())) if key else None
    blocks = build_ui(manager, playground)
    # Gradio's uploads (the Data tab, /upload_dataset) stop at the library's limit before they reach its cache.
    app = gr.mount_gradio_app(app, blocks, path="/", auth=auth, ssr_mode=False,
                              max_file_size=settings.max_upload_bytes(), css=CSS)
    _calm_queue(blocks)
    names = {fn.api_name for fn in blocks.fns.values() if fn.api_name and fn.api_visibility != "private"}
    app.add_middleware(UnknownGradioEndpoint, names=frozenset(names))
    return app


def _calm_queue(blocks: gr.Blocks) -> None:
    """Let Gradio's idle event queue look for work every 20 ms instead of every 1 ms.

    Polling every millisecond wakes the server ~1,000 times a second; on a small machine each wake-up
    preempts a training thread of a CPU job (bench/RESULTS.md, Overhead). UI events wait at most 20 ms more.
    """
    queue = getattr(blocks, "_queue", None)
    if queue is not None and hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = max(queue.sleep_when_free, 0.02)
        queue.progress_update_sleep_when_free = max(getattr(queue, "progress_update_sleep_when_free", 0), 0.05)


class UnknownGradioEndpoint:
    """Answer 404 JSON to a Gradio call naming no public endpoint (Gradio itself fails with a 500)."""

    ROUTE = re.compile(r"^/gradio_api/(?:call/v2|call|run|api)/([^/]+)/?$")

    def __init__(self, app: ASGIApp, names: frozenset[str]) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = self.ROUTE.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match and match.group(1) not in self.names:
            detail = f"no Gradio endpoint named {match.group(1)[:100]!r}; see /gradio_api/info"
            await JSONResponse({"detail": detail}, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)
