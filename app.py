"""sft-ui entry point (`python app.py`, and a Space's app_file): the app served by uvicorn on 0.0.0.0:$PORT."""

from __future__ import annotations

import logging

from sft_ui import settings
from sft_ui.web.app import build_app


def main() -> None:
    """Serve the REST API and the UI on 0.0.0.0:$PORT (7860 by default)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Open browser tabs keep streams open: give them 5 s on Ctrl-C, then stop running jobs and exit.
    uvicorn.run(build_app(), host="0.0.0.0", port=settings.port(), timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
