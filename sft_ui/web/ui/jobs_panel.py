"""What the Jobs tab shows, read from the manager: the jobs table and cards, and the selected job's panel, from one
read of the job's record so that its step is the same in the progress line, the table row and the plots."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from sft_ui import jobdir
from sft_ui.config import SFTConfig
from sft_ui.escaping import escape
from sft_ui.manager import JobManager, NotFoundError
from sft_ui.status import ACTIVE
from sft_ui.web.ui import eval_views, job_detail, job_fields_view, jobs_actions, views
from sft_ui.web.ui.common import PICKER_JOBS
from sft_ui.web.ui.job_events import timeline_update

EMPTY_PANEL = "Select a job to see its progress."
TABLE_PAGE = 50  # rows of the jobs table: the newest jobs (older ones are in the job picker)
LOG_BYTES = 20_000  # the log tail read for the shown log and the failure's traceback
FIELDS = tuple(SFTConfig.model_fields)
# The panel's outputs, in order (jobs.build makes the components; show_job fills them).
PANEL = ("summary", "progress", "next_step", "error_box", *jobs_actions.Actions.__dataclass_fields__, "loss_plot",
         "lr_plot", "metrics", "log_box", "log_download", "result_box", "config_box", "evaluation", "samples")
PANEL += ("events",)  # the timeline (job_events.py)


@dataclass
class TableUpdate:
    """One refresh of the Jobs tab: the table (None: unchanged), its label, the pickers' choices (None: unchanged),
    the signature, and the records read (None when nothing was read)."""

    frame: pd.DataFrame | None
    label: str
    choices: list[tuple[str, str]] | None
    sig: str
    records: list[dict[str, Any]] | None = None
    pick_choices: list[tuple[str, str]] | None = None  # the Jobs tab's picker: the id first


def jobs_table(manager: JobManager, status: str | None, sig: str, page: int = TABLE_PAGE,
               pickers: bool = True) -> TableUpdate | None:
    """The newest `page` jobs (only `status` unless 'all'), the newest PICKER_JOBS as picker choices; None when
    unchanged.

    `sig` is the last update's: when no job record changed since, this reads nothing but manager.changes(); the
    pickers are rebuilt only after a write to the job records (not while a job merely makes progress), and not
    at all without `pickers` (the signature then leaves them to the next update that sends them).
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
    choices, pick_choices, choices_sig = None, None, old[4] if len(old) > 4 else ""
    if not pickers:
        head[1] = old[1] if len(old) > 1 else ""
    elif old[1:2] != [str(revision)]:
        listed = manager.list_jobs(limit=PICKER_JOBS)
        choices = [views.job_choice(r) for r in listed]
        fresh_sig = str(hash(repr(choices)))
        if fresh_sig != choices_sig:
            pick_choices = [views.job_pick_choice(r) for r in listed]
        else:
            choices = None
        choices_sig = fresh_sig
    frame = pd.DataFrame(rows, columns=views.TABLE_HEADERS) if old[3:4] != [rows_sig] else None
    return TableUpdate(frame, label, choices, "\x1f".join([*head, rows_sig, choices_sig]), records, pick_choices)


def table_outputs(update: TableUpdate | None, selected: str | None, pickers: bool) -> list[Any]:
    """The table, (the Jobs and Compare pickers when `pickers`), the signature and the cards, for `update`."""
    if update is None:
        return [gr.skip()] * (5 if pickers else 3)
    frame = gr.skip() if update.frame is None else gr.Dataframe(update.frame, label=update.label)
    cards = gr.skip() if update.frame is None else cards_html(update.frame, selected)
    if not pickers:
        return [frame, update.sig, cards]
    jobs_pick = gr.skip() if update.pick_choices is None else gr.Dropdown(choices=update.pick_choices)
    compare_pick = gr.skip() if update.choices is None else gr.Dropdown(choices=update.choices)
    return [frame, jobs_pick, compare_pick, update.sig, cards]


def cards_html(frame: pd.DataFrame, selected: str | None) -> str:
    """The table's rows as the phone's cards."""
    return job_detail.job_cards_html(frame.to_dict("records"), selected)


def refresh(manager: JobManager, status: str, sig: str, job_id: str | None, buf: views.MetricsBuffer,
            smoothing: float, x_axis: str, tick: bool, pickers: bool) -> list[Any]:
    """The table (when a record changed since `sig`) and the selected job's panel, with its metrics buffer.

    The job's record is read before the table: an unchanged table then shows that same record, and a table read
    anew replaces it, so the row and the panel always show one state of the job.
    """
    record = None
    if job_id:
        try:
            record = manager.get_job_status(job_id)
        except NotFoundError:
            record = None
    update = jobs_table(manager, status, sig, pickers=pickers)
    if record is not None and update is not None and update.records is not None:
        record = next((r for r in update.records if r["job_id"] == job_id), record)
    if record is not None and update is not None and update.pick_choices is not None and \
            job_id not in {value for _, value in update.pick_choices}:  # an old job opened by its link
        update.pick_choices.append(views.job_pick_choice(record))
    return [*table_outputs(update, job_id, pickers),
            *show_job(manager, job_id, record, buf, smoothing, x_axis, tick)]


def show_job(manager: JobManager, job_id: str | None, record: dict[str, Any] | None, buf: views.MetricsBuffer,
             smoothing: float, x_axis: str, tick: bool) -> list[Any]:
    """The panel's outputs (PANEL order) and the metrics buffer; on a tick only what changed."""
    skip = [gr.skip()] * (len(PANEL) + 1)
    if not job_id or record is None:
        if tick:
            return skip
        text = EMPTY_PANEL if not job_id else f"Job {escape(job_id)} no longer exists."
        return empty_panel(text, buf.renew(None))
    fresh = buf.job_id != job_id or not tick
    if fresh:
        buf = buf.renew(job_id)
    status = record["status"]
    active = status in ACTIVE
    if tick and not active and buf.final_status == status and not buf.resend_plot:
        return skip
    step = (record.get("progress") or {}).get("step")
    points = manager.get_metrics(job_id, since=buf.since(), max_points=views.MAX_PLOT_POINTS)
    if isinstance(step, int):  # the plots stop at the step this read of the record shows
        points = [p for p in points if p.get("step", 0) <= step]
    new_points = buf.add(points) or fresh
    changed_status = buf.final_status != status or fresh
    buf.final_status = None if active else status
    log = manager.get_log(job_id, max_bytes=LOG_BYTES)
    shown_log = job_detail.filter_log(log)
    log_update = gr.skip() if buf.log_sig == shown_log and not fresh else shown_log
    buf.log_sig = shown_log
    can = jobs_actions.allowed(record)
    error, result = record.get("error"), record.get("result")
    has_model = can["try_it"]
    return [
        views.summary_markdown(record) + phases_line(result)
        + job_fields_view.fields_markdown(record, manager.data_dir),
        views.progress_html(record),
        job_detail.next_step_html(status, has_model),
        gr.HTML(job_detail.error_card(error, log, can["resume"], FIELDS), visible=bool(error)),
        *jobs_actions.button_updates(can),
        plot_update(buf, smoothing, x_axis, new_points),
        buf.lr_frame() if new_points else gr.skip(),
        job_detail.metrics_table_html(buf.recent) if new_points else gr.skip(),
        log_update,
        log_download(record) if changed_status else gr.skip(),
        gr.JSON(job_detail.result_view(result), visible=bool(result)),
        record.get("config") if fresh else gr.skip(),
        *evaluation_updates(manager, record, buf, read_samples=active or changed_status),
        timeline_update(manager, job_id, buf.events),
        buf,
    ]


def empty_panel(text: str, buf: views.MetricsBuffer) -> list[Any]:
    """The panel with no job: every action off, empty plots."""
    return [text, "", "", gr.HTML(visible=False), *jobs_actions.button_updates(jobs_actions.allowed(None)),
            buf.loss_frame(), views.plot_frame([], "learning_rate"), job_detail.metrics_table_html([]),
            "", gr.DownloadButton(visible=False), gr.JSON(visible=False), None, gr.HTML("", visible=False),
            gr.HTML("", visible=False), "", buf]


def evaluation_updates(manager: JobManager, record: dict[str, Any], buf: views.MetricsBuffer,
                       read_samples: bool) -> list[Any]:
    """The Evaluation block and the samples table, each only when what it shows changed; the sample answers are
    read (only those after the last step read) while the job runs and once when it ends."""
    samples = buf.samples
    if read_samples:
        samples.add(manager.get_samples(record["job_id"], since=samples.since()))
    metric = (record.get("config") or {}).get("metric_for_best") or "eval_loss"
    evals = [(q[0], q[1]) for q in buf.loss if q[2] == views.EVAL]
    live = eval_views.live_eval_text(evals, evals if metric == "eval_loss" else buf.eval_accuracy, metric)
    shown = {"evaluation": eval_views.evaluation_html(record.get("result"), live),
             "samples": eval_views.samples_table_html(samples.lines(), total_steps=len(samples.steps))}
    updates = [gr.skip() if samples.sent.get(key) == html else gr.HTML(html, visible=bool(html))
               for key, html in shown.items()]
    samples.sent = shown
    return updates


def phases_line(result: dict[str, Any] | None) -> str:
    """' · phases: loading model 3.1 s, ...' for the summary ('' before the job ended)."""
    text = job_detail.phases_text((result or {}).get("phase_seconds"))
    return f"\n\nTime: {text}" if text else ""


def plot_update(buf: views.MetricsBuffer, smoothing: float, x_axis: str, new_points: bool) -> Any:
    """The loss plot's update: its data alone after new points, or with its x axis and legend when those change.

    Gradio 6.31 redraws a LinePlot whose settings change from the data it had before that update, so an update
    that changes them is followed by one with the data alone (plot_again, or the next tick).
    """
    x = "elapsed" if x_axis == "elapsed" else "step"
    props = (x, tuple(buf.legend(smoothing)))
    if props != buf.plot_props:
        buf.plot_props, buf.resend_plot = props, True
        return gr.LinePlot(buf.loss_frame(smoothing), x=x, x_title="elapsed seconds" if x == "elapsed" else "step",
                           colors_in_legend=list(props[1]))
    if new_points or buf.resend_plot:
        buf.resend_plot = False
        return buf.loss_frame(smoothing)
    return gr.skip()


def plot_again(buf: views.MetricsBuffer, smoothing: float) -> tuple[Any, Any]:
    """The loss plot's data once more after an update that changed its settings (and the buffer)."""
    if not buf.resend_plot:
        return gr.skip(), gr.skip()
    buf.resend_plot = False
    return buf.loss_frame(smoothing), buf


_served_logs: set[Path] = set()


def log_download(record: dict[str, Any]) -> Any:
    """The button that downloads the whole log.txt (served where it lies), shown once the log exists."""
    path = Path(record.get("job_dir") or ".") / jobdir.LOG
    if not path.is_file():
        return gr.DownloadButton(visible=False)
    if path not in _served_logs:  # this file only: the rest of the job's folder stays unserved
        gr.set_static_paths([path])
        _served_logs.add(path)
    return gr.DownloadButton("Download the full log", value=str(path), visible=True)
