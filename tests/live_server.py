"""A live app (app.build_app over an injected JobManager) served by uvicorn in a thread on a free port."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from sft_ui.manager import JobManager
from sft_ui.settings import free_port
from sft_ui.web.app import build_app


@contextlib.contextmanager
def live_server(manager: JobManager, timeout: float = 60.0) -> Iterator[str]:
    """Serve the app the way app.py builds it; yields its base URL ('http://127.0.0.1:PORT/')."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(manager), host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True  # the app's lifespan stops running jobs (manager.shutdown)
        thread.join(30)
