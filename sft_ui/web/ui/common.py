"""What the tab modules share: the options of UI-internal events and the live-refresh period."""

from typing import Any

REFRESH_SECONDS = 2.0  # the gr.Timer that refreshes the jobs table, the selected job and the Compare plot
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
QUIET: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden", "concurrency_limit": None}
# The job pickers list the newest jobs only: at 10,000 jobs listing them all took 245 ms per refresh under the
# manager's lock (bench/RESULTS.md, API at scale), and a list that long cannot be scrolled anyway.
PICKER_JOBS = 500
