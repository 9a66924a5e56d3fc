"""What the tab modules share: the options of UI-internal events and the live-refresh period."""

from typing import Any

REFRESH_SECONDS = 2.0  # the gr.Timer that refreshes the jobs table, the selected job and the Compare plot
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
QUIET: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden", "concurrency_limit": None}
# The job pickers list the newest jobs only: at 10,000 jobs listing them all took 245 ms per refresh under the
# manager's lock (bench/RESULTS.md, API at scale), and a list that long cannot be scrolled anyway.
PICKER_JOBS = 500

# Page-wide CSS, given to gr.mount_gradio_app (sft_ui/web/app.py): Gradio 6 takes css at launch or mount, and mounting
# replaces whatever gr.Blocks(css=...) set. Each tab appends its own part.
CSS = """
/* Train: a field that the last Start or Save refused (marks.py), its help line carries the message. */
.field-error { box-shadow: 0 0 0 2px #dc2626 !important; }
.field-error .info-text { color: #b91c1c !important; font-weight: 600; }
.field-error input, .field-error textarea { border-color: #dc2626 !important; }
/* Train on a phone: Start (and its message) stay on screen at the bottom while the form scrolls above it. */
@media (max-width: 768px) {
  #start-bar { position: fixed; left: 0; right: 0; bottom: 0; z-index: 50; margin: 0; padding: 8px 12px;
               background: var(--background-fill-primary); box-shadow: 0 -2px 10px rgba(0, 0, 0, 0.18);
               max-height: 40vh; overflow-y: auto; gap: 6px; }
  #train-layout { padding-bottom: 88px; }
}
"""
