"""sft-ui entry point: the REST API under /api/sft and the Gradio UI at /, served by uvicorn."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator

import gradio as gr
from fastapi import FastAPI

from sft_ui import api, settings
from sft_ui.jobs import JobManager, sft_job_manager
from sft_ui.ui import build_ui

log = logging.getLogger("sft_ui.app")


def build_app(manager: JobManager | None = None) -> FastAPI:
    """The FastAPI app: REST router, JSON error handlers, and the Gradio Blocks mounted at '/'."""
    manager = manager or sft_job_manager

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("data dir %s", manager.store_root())  # opens the database; recovers and resumes jobs
        yield
        manager.shutdown()  # running jobs save what they have and end `stopped`

    app = FastAPI(
        title="sft-ui",
        summary="Run, watch and manage supervised fine-tuning jobs",
        description="REST API under `/api/sft`; the Gradio UI is at `/`. Errors are JSON `{\"detail\": ...}`.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.sft_manager = manager
    api.install_error_handlers(app)
    app.include_router(api.router)
    key = settings.api_key()
    # With a key, the Gradio UI and its API ask for it too: any user name, the key as password.
    auth = (lambda _user, password: secrets.compare_digest(str(password).encode(), key.encode())) if key else None
    return gr.mount_gradio_app(app, build_ui(manager), path="/", auth=auth, ssr_mode=False)


def main() -> None:
    """Serve on 0.0.0.0:$PORT (7860 by default)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Open browser tabs keep streams open: give them 5 s on Ctrl-C, then stop running jobs and exit.
    uvicorn.run(build_app(), host="0.0.0.0", port=int(os.environ.get("PORT", "7860")), timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
