"""The Jobs tab: the jobs table, the selected job's live panel (progress, plots, log), stop and the job actions."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from sft_ui import artifacts
from sft_ui.escaping import escape
from sft_ui.manager import JobManager, NotFoundError, StateError
from sft_ui.status import ACTIVE, JobStatus
from sft_ui.web.ui import views
from sft_ui.web.ui.common import PICKER_JOBS, PRIVATE, QUIET

EMPTY_PANEL = "Select a job to see its progress."
TABLE_PAGE = 50  # rows of the jobs table: the newest jobs (older ones are in the job picker)


@dataclass
class JobsTab:
    """What build_ui wires across tabs: the filter, table and picker, the message box, reuse and try buttons."""

    status_filter: gr.Dropdown
    table: gr.Dataframe
    table_sig: gr.State  # the last table update's signature (jobs_table)
    job_pick: gr.Dropdown
    message: gr.HTML
    reuse: gr.Button
    try_it: gr.Button


@dataclass
class _Panel:
    """The selected job's panel: the outputs of show_job, in its order, and their metrics buffer."""

    components: list[gr.components.Component]
    metrics_buf: gr.State


def build(manager: JobManager, timer: gr.Timer) -> JobsTab:
    """The Jobs tab (call inside gr.Tabs) with its own events; the table's refresh is wired by build_ui."""
    with gr.Tab("Jobs", id="jobs"):
        metrics_buf = gr.State(views.MetricsBuffer())
        table_sig = gr.State("")  # the last table update's signature (jobs_table)
        with gr.Row():
            status_filter = gr.Dropdown(["all", *(s.value for s in JobStatus)], value="all", label="Show", scale=1,
                                        elem_id="status-filter")
            job_pick = gr.Dropdown([], value=None, label="Selected job", scale=3, elem_id="job-pick",
                                   info="Click a row of the table or pick a job here.")
        table = gr.Dataframe(headers=views.TABLE_HEADERS, value=[], interactive=False, max_height=360,
                             label="Jobs (newest first; click a row)", elem_id="jobs-table")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                # No LaTeX: a "$$" in a job's name or error is text, not a formula.
                summary = gr.Markdown(EMPTY_PANEL, latex_delimiters=[], elem_id="job-summary")
                progress = gr.HTML(elem_id="job-progress-box")
                with gr.Row():
                    stop_btn = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop-btn")
                    reuse_btn = gr.Button("Use as new config", interactive=False, elem_id="reuse-btn")
                message = gr.HTML(elem_id="job-msg")
                try_btn = _job_actions(manager, job_pick, message, metrics_buf)
                error_box = gr.Markdown(visible=False, latex_delimiters=[], elem_id="job-error")
                loss_plot = gr.LinePlot(views.MetricsBuffer().loss_frame(), x="step", y="loss", color="series",
                                        title="Loss", height=280, elem_id="loss-plot")
                lr_plot = gr.LinePlot(views.plot_frame([], "learning_rate"), x="step", y="learning_rate",
                                      title="Learning rate", height=200, elem_id="lr-plot")
            with gr.Column(scale=2):
                result_box = gr.JSON(label="Result", visible=False, elem_id="job-result")
                log_box = gr.Textbox(label="Log (tail)", lines=14, max_lines=14, autoscroll=True, interactive=False,
                                     elem_id="job-log")
                with gr.Accordion("Config", open=False):
                    config_box = gr.JSON(label="Config", elem_id="job-config")
    panel = _Panel([summary, progress, stop_btn, reuse_btn, error_box, result_box, log_box, loss_plot, lr_plot,
                    config_box], metrics_buf)
    _wire_panel(manager, panel, job_pick, timer)
    stop_btn.click(lambda job_id: stop(manager, job_id), job_pick, message, **PRIVATE).then(
        lambda job_id, buf: show_job(manager, job_id, buf), [job_pick, panel.metrics_buf],
        [*panel.components, panel.metrics_buf], **QUIET)
    table.select(pick_row, None, job_pick, **PRIVATE)
    return JobsTab(status_filter, table, table_sig, job_pick, message, reuse_btn, try_btn)


def _wire_panel(manager: JobManager, panel: _Panel, job_pick: gr.Dropdown, timer: gr.Timer) -> None:
    """Show the picked job, then follow it on every tick of `timer` (only what changed)."""
    outputs = [*panel.components, panel.metrics_buf]

    def show_job_tick(job_id: str | None, buf: views.MetricsBuffer) -> list[Any]:
        """show_job for a timer tick."""
        return show_job(manager, job_id, buf, tick=True)

    job_pick.change(lambda job_id, buf: show_job(manager, job_id, buf), [job_pick, panel.metrics_buf], outputs,
                    **PRIVATE)
    timer.tick(show_job_tick, [job_pick, panel.metrics_buf], outputs, **QUIET)


def show_job(manager: JobManager, job_id: str | None, buf: views.MetricsBuffer, tick: bool = False) -> list[Any]:
    """The selected job's panel and metrics buffer; on a tick only what changed, reading new metric points only."""
    count = 10  # the panel's components (_Panel.components)
    if not job_id:
        if tick:
            return [gr.skip()] * (count + 1)
        return [EMPTY_PANEL, "", gr.Button(interactive=False), gr.Button(interactive=False),
                gr.Markdown(visible=False), gr.JSON(visible=False), "", views.MetricsBuffer().loss_frame(),
                views.plot_frame([], "learning_rate"), None, views.MetricsBuffer()]
    try:
        record = manager.get_job_status(job_id)
    except NotFoundError:
        return [f"Job {escape(job_id)} no longer exists.", *([gr.skip()] * (count - 1)), views.MetricsBuffer()]
    fresh = buf.job_id != job_id or not tick
    if fresh:
        buf = views.MetricsBuffer(job_id)
    active = record["status"] in ACTIVE
    if tick and not fresh and not active and buf.final_status == record["status"]:
        return [gr.skip()] * (count + 1)
    new_points = buf.add(manager.get_metrics(job_id, since=buf.since(), max_points=views.MAX_PLOT_POINTS))
    buf.final_status = None if active else record["status"]
    error, result = record.get("error"), record.get("result")
    return [
        views.summary_markdown(record),
        views.progress_html(record),
        gr.Button(interactive=active and not record.get("stop_requested")),
        gr.Button(interactive=True),
        gr.Markdown(views.error_markdown(error), visible=bool(error)),
        gr.JSON(result, visible=bool(result)),
        manager.get_log(job_id, max_bytes=6000),
        buf.loss_frame() if new_points or fresh else gr.skip(),
        buf.lr_frame() if new_points or fresh else gr.skip(),
        record.get("config") if fresh else gr.skip(),
        buf,
    ]


def refresh_table(manager: JobManager, status: str, sig: str, force: bool = False) -> tuple[Any, ...]:
    """The jobs table (the newest page), two job pickers and the new signature; skipped when nothing changed."""
    new = jobs_table(manager, status, "" if force else sig)
    if new is None:
        return gr.skip(), gr.skip(), gr.skip(), sig
    frame = gr.skip() if new.frame is None else gr.Dataframe(new.frame, label=new.label)
    picks = [gr.skip() if new.choices is None else gr.Dropdown(choices=new.choices) for _ in range(2)]
    return frame, *picks, new.sig


@dataclass
class TableUpdate:
    """One refresh of the Jobs tab: the table (None: unchanged), its label, the pickers' choices (None: unchanged)."""

    frame: pd.DataFrame | None
    label: str
    choices: list[tuple[str, str]] | None
    sig: str


def jobs_table(manager: JobManager, status: str | None, sig: str, page: int = TABLE_PAGE) -> TableUpdate | None:
    """The newest `page` jobs (only `status` unless 'all'), the newest PICKER_JOBS as picker choices; None when
    unchanged.

    `sig` is the last update's: when no job record changed since, this reads nothing but manager.changes(); the
    pickers are rebuilt only after a write to the job records (not while a job merely makes progress).
    """
    wanted = None if status in (None, "", "all") else status
    revision, live = manager.changes()
    head = [str(wanted), str(revision), live]
    old = sig.split("\x1f")
    if old[:3] == head:
        return None
    records = manager.list_jobs(status=wanted, limit=page)
    total = manager.count_jobs(wanted)
    label = "Jobs (newest first; click a row)"
    if total > len(records):
        label = f"Jobs: the newest {len(records)} of {total} (pick older ones in Selected job); click a row"
    rows = views.table_rows(records)
    rows_sig = str(hash(repr((rows, label))))
    choices, choices_sig = None, old[4] if len(old) > 4 else ""
    if old[1:2] != [str(revision)]:
        choices = [views.job_choice(r) for r in manager.list_jobs(limit=PICKER_JOBS)]
        fresh_sig = str(hash(repr(choices)))
        choices, choices_sig = (choices if fresh_sig != choices_sig else None), fresh_sig
    frame = pd.DataFrame(rows, columns=views.TABLE_HEADERS) if old[3:4] != [rows_sig] else None
    return TableUpdate(frame, label, choices, "\x1f".join([*head, rows_sig, choices_sig]))


def pick_row(evt: gr.SelectData) -> Any:
    """The job id of the clicked table row."""
    row = evt.row_value or []
    return row[1] if len(row) > 1 and row[1] else gr.skip()


def stop(manager: JobManager, job_id: str | None) -> str:
    """Stop the selected job."""
    if not job_id:
        return views.message_html("Select a job first.", "error")
    try:
        record = manager.stop_job(job_id, wait=3.0)
    except (NotFoundError, StateError) as exc:
        return views.message_html(str(exc), "error")
    state = "stopped" if record["status"] == JobStatus.STOPPED else "stopping (it saves what it has first)"
    return views.message_html(f"Job {job_id} {state}.", "ok")


def _job_actions(manager: JobManager, job_pick: gr.Dropdown, message: gr.HTML, metrics_buf: gr.State) -> gr.Button:
    """Resume, download, merge and push the selected job (answering in `message`); the Try button, for build_ui."""
    with gr.Row():
        resume_btn = gr.Button("Resume from checkpoint", size="sm", elem_id="resume-btn")
        try_btn = gr.Button("Try in Playground", size="sm", elem_id="try-btn")
        prepare_btn = gr.Button("Prepare zip", size="sm", elem_id="zip-btn")
        download = gr.DownloadButton("Download zip", size="sm", visible=False, elem_id="download-btn")
        merge_btn = gr.Button("Merge LoRA", size="sm", elem_id="merge-btn")
    with gr.Accordion("Push to the Hugging Face Hub", open=False):
        with gr.Row():
            repo = gr.Textbox(label="Repo id", placeholder="you/my-model", max_lines=1, scale=3, elem_id="push-repo")
            private = gr.Checkbox(True, label="Private", scale=1, elem_id="push-private")
            merged = gr.Checkbox(False, label="The merged model", scale=1, elem_id="push-merged")
        push_btn = gr.Button("Push", size="sm", elem_id="push-btn")
        gr.Markdown("Needs `HF_TOKEN` (write access) in the server's environment, e.g. a Space secret. "
                    "The token is read for each push and never stored.")
    served: set[Path] = set()  # export folders handed to Gradio as static paths
    resume_btn.click(lambda job_id: resume(manager, job_id), job_pick, [message, metrics_buf], **PRIVATE)
    prepare_btn.click(lambda job_id: prepare(manager, job_id, served), job_pick, [message, download], **PRIVATE)
    merge_btn.click(lambda job_id: merge(manager, job_id), job_pick, message, **PRIVATE)
    push_btn.click(lambda job_id, *args: push(manager, job_id, *args), [job_pick, repo, private, merged], message,
                   **PRIVATE)
    job_pick.change(lambda _: ("", gr.DownloadButton(visible=False)), job_pick, [message, download], **PRIVATE)
    return try_btn


def _failed(exc: Exception) -> str:
    """An error notice."""
    return views.message_html(str(exc), "error")


def resume(manager: JobManager, job_id: str | None) -> tuple[Any, Any]:
    """Resume the selected job; a fresh metrics buffer makes the panel re-read the trimmed curve."""
    try:
        record = manager.resume_job(job_id or "")
    except (LookupError, ValueError) as exc:
        return _failed(exc), gr.skip()
    text = f"Job {job_id} resumed from step {record['resumed']['from_step']} ({record['status']})."
    return views.message_html(text, "ok"), views.MetricsBuffer()


def prepare(manager: JobManager, job_id: str | None, served: set[Path]) -> tuple[Any, Any]:
    """Build the zip and show the button that downloads it."""
    try:
        path = artifacts.zip_job(manager, job_id or "")
    except (LookupError, ValueError) as exc:
        return _failed(exc), gr.DownloadButton(visible=False)
    if path.parent not in served:
        # Served where it lies: Gradio would otherwise copy it into its cache in the shared temp dir, and
        # refuse a data dir outside the working and temp dirs (a Space's /data).
        gr.set_static_paths([path.parent])
        served.add(path.parent)
    size = path.stat().st_size / 1e6
    return (views.message_html(f"{path.name} is ready ({size:.1f} MB).", "ok"),
            gr.DownloadButton(f"Download {path.name}", value=str(path), visible=True))


def merge(manager: JobManager, job_id: str | None) -> str:
    """Merge the selected job's adapter into its base model."""
    try:
        return views.message_html(artifacts.merge(manager, job_id or "")["message"], "ok")
    except (LookupError, ValueError, OSError) as exc:
        return _failed(exc)


def push(manager: JobManager, job_id: str | None, repo: str, private: bool, merged: bool) -> str:
    """Push the selected job's model to the Hub."""
    try:
        return views.message_html(artifacts.push(manager, job_id or "", repo, private, merged)["message"], "ok")
    except (LookupError, ValueError) as exc:
        return _failed(exc)
