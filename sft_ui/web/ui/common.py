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
/* Train: the preset and Save as buttons sit level with their fields' inputs, at their own height. */
#preset-row, #save-row { align-items: flex-end; }
#preset-row > button, #save-row > button { align-self: flex-end; min-height: 40px; max-height: 42px; }
/* Jobs: the table fits its width, the name column taking what is left and cutting long text with an ellipsis
   (its cell's title holds all of it); at phone width one card per job replaces the table (jobs.py). */
#jobs-table .header-table, #jobs-table .virtual-body { width: 100% !important; table-layout: fixed; }
#jobs-table th[data-heading="4"], #jobs-table .sizing-body td:nth-child(5) {
  width: auto !important; min-width: 0 !important; max-width: none !important; }
#jobs-table [role="gridcell"][data-col="4"] {
  flex: 1 1 0 !important; width: auto !important; min-width: 0 !important; }
#jobs-table [role="gridcell"] .cell-wrap, #jobs-table [role="gridcell"] .text {
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; }
#jobs-table [role="gridcell"] .text { display: block; }
#jobs-cards { display: none; }
#jobs-cards .sft-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
  margin: 6px 0; cursor: pointer; min-width: 0; }
#jobs-cards .sft-card-selected { border-color: var(--color-accent); box-shadow: 0 0 0 1px var(--color-accent); }
#jobs-cards .sft-card-name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#jobs-cards .sft-card-facts { font-size: 0.9em; overflow-wrap: anywhere; }
#job-pick input { text-overflow: ellipsis; padding-right: 28px !important; }  /* the arrow never covers text */
#metrics-table { width: 100%; font-size: 0.85em; border-collapse: collapse; }
#metrics-table th, #metrics-table td { text-align: right; padding: 2px 6px; white-space: nowrap; }
#job-summary code, #job-summary h3 { overflow-wrap: anywhere; }
@media (max-width: 640px) {
  #jobs-table { display: none !important; }
  #jobs-cards { display: block; }
}
"""
CSS += """
/* Jobs: the selected job's events (job_events.py), newest first, coloured by level. */
#job-events { list-style: none; margin: 0; padding: 0; max-height: 320px; overflow-y: auto; font-size: 0.9em; }
#job-events li { display: flex; gap: 6px; align-items: baseline; padding: 3px 6px; border-left: 3px solid #2563eb;
  margin: 2px 0; }
#job-events li.sft-ev-warning { border-left-color: #d97706; background: rgba(217, 119, 6, 0.08); }
#job-events li.sft-ev-error { border-left-color: #dc2626; background: rgba(220, 38, 38, 0.08); }
#job-events time { font-variant-numeric: tabular-nums; color: var(--body-text-color-subdued); white-space: nowrap; }
#job-events .sft-ev-msg { white-space: pre-wrap; overflow-wrap: anywhere; min-width: 0; }
"""
CSS += """
/* Jobs: the selected job's checkpoints (checkpoints_view.py), compact like the steps table. */
#checkpoints-table { width: 100%; font-size: 0.85em; border-collapse: collapse; }
#checkpoints-table th, #checkpoints-table td { text-align: right; padding: 2px 6px; white-space: nowrap; }
"""
