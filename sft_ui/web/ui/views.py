"""Pure formatting for the UI (no manager calls): jobs table rows, the job panel, plots' data, HTML."""

import math
from typing import Any

import pandas as pd

from sft_ui import jobdir
from sft_ui.escaping import escape
from sft_ui.status import JobStatus
from sft_ui.web.ui.eval_views import SamplesBuffer
from sft_ui.web.ui.job_detail import ema
from sft_ui.web.ui.job_events import EventsTrail

MAX_PLOT_POINTS = 1000
# Essentials first: what a person scans for; the model, data set and times are in the job's detail panel.
TABLE_HEADERS = ["status", "step", "loss", "ETA", "name", "id"]
EVAL = "eval loss"  # the eval loss series' name, as the legend shows it
LOSS_SERIES = ("train", "smoothed train", EVAL)
LOSS_COLORS = {"train": "#f97316", "smoothed train": "#9a3412", EVAL: "#2563eb"}


# --- jobs table ---
def fmt_time(iso: str | None) -> str:
    """'2026-11-27T16:22:01Z' -> '2026-11-27 16:22:01' (UTC)."""
    return (iso or "").replace("T", " ").removesuffix("Z")


def fmt_eta(seconds: float | None) -> str:
    """Seconds -> '1h 02m', '3m 05s', '12s' ('' when unknown)."""
    if seconds is None:
        return ""
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def fmt_loss(value: Any) -> str:
    """A loss value with 4 significant digits ('' when missing)."""
    return f"{value:.4g}" if isinstance(value, int | float) else ""


def step_text(record: dict[str, Any]) -> str:
    """'12/200', or '12' while the total is unknown."""
    progress = record.get("progress") or {}
    step, total = progress.get("step") or 0, progress.get("total_steps")
    return f"{step}/{total}" if total else str(step)


def last_loss(record: dict[str, Any]) -> float | None:
    """The last logged training loss; for an ended job whose last log had none, its final loss."""
    loss = (record.get("metrics") or {}).get("loss")
    return loss if loss is not None else (record.get("result") or {}).get("final_loss")


def table_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per job (records come newest first), in TABLE_HEADERS order."""
    rows = []
    for r in records:
        eta = (r.get("progress") or {}).get("eta_seconds") if r["status"] == JobStatus.RUNNING else None
        status = r["status"] + (f" (#{r['queue_position']} in queue)" if r.get("queue_position") else "")
        rows.append([status, step_text(r), fmt_loss(last_loss(r)), fmt_eta(eta), r.get("name") or "", r["job_id"]])
    return rows


def job_choice(record: dict[str, Any]) -> tuple[str, str]:
    """(label, value) of a job in the job pickers."""
    return f"{record.get('name') or '(unnamed)'} · {record['job_id']}", record["job_id"]


def job_pick_choice(record: dict[str, Any]) -> tuple[str, str]:
    """(label, value) of a job in the Jobs tab's picker: the id first, so a long name never hides it."""
    return f"{record['job_id']} · {record.get('name') or '(unnamed)'}", record["job_id"]


# --- the selected job ---
def summary_markdown(r: dict[str, Any]) -> str:
    """Heading and facts of one job."""
    config = r.get("config") or {}
    phase = f" ({escape(r['phase'])})" if r.get("phase") and r["status"] == JobStatus.RUNNING else ""
    facts = [f"**{escape(r['status'])}**{phase}", f"id {_code(r['job_id'])}",
             f"model {_code(config.get('base_model', ''))}", f"data {_code(config.get('dataset_name', ''))}",
             f"created {fmt_time(r.get('created_at'))}"]
    if r.get("started_at"):
        facts.append(f"started {fmt_time(r['started_at'])}")
    if r.get("finished_at"):
        facts.append(f"finished {fmt_time(r['finished_at'])}")
    if r.get("stop_requested") and r["status"] == JobStatus.RUNNING:
        facts.append("stopping…")
    return f"### {escape(r.get('name') or r['job_id'])}\n" + " · ".join(facts)


def _code(text: Any) -> str:
    """Inline code in Markdown for any text: a `<code>` element, since a code span shows references as written."""
    return f"<code>{escape(text)}</code>"


def progress_html(r: dict[str, Any]) -> str:
    """A progress bar with step, percentage and ETA (or the queue position while waiting)."""
    progress = r.get("progress") or {}
    step, total = progress.get("step") or 0, progress.get("total_steps")
    if r["status"] == JobStatus.PENDING:
        where = f"position {r['queue_position']} in the queue" if r.get("queue_position") else "not started"
        text, fraction = f"Waiting: {where}", 0.0
    else:
        fraction = min(1.0, step / total) if total else 0.0
        text = f"Step {step_text(r)}" + (f" · {fraction:.0%}" if total else "")
        if r["status"] == JobStatus.RUNNING and progress.get("eta_seconds") is not None:
            text += f" · ETA {fmt_eta(progress['eta_seconds'])}"
        if last_loss(r) is not None:
            text += f" · loss {fmt_loss(last_loss(r))}"
    color = {JobStatus.FAILED: "#dc2626", JobStatus.STOPPED: "#9ca3af", JobStatus.COMPLETED: "#16a34a"}.get(
        r["status"], "#f97316")
    return (f'<div id="job-progress" data-status="{r["status"]}" style="margin:4px 0">'
            f'<div style="background:#e5e7eb;border-radius:6px;height:14px;overflow:hidden">'
            f'<div style="width:{fraction * 100:.1f}%;background:{color};height:100%"></div></div>'
            f'<div style="font-size:0.9em;margin-top:4px">{escape(text)}</div></div>')


def decimate(points: list[Any], limit: int = MAX_PLOT_POINTS) -> list[Any]:
    """At most `limit` evenly spaced points, always keeping the first and the last."""
    return jobdir.decimate(points, limit)


def compare_points(jobs: int) -> int:
    """How many loss points the Compare plot shows of each of `jobs` jobs (MAX_PLOT_POINTS in all, 50 at least)."""
    return max(50, MAX_PLOT_POINTS // max(1, jobs))


class MetricsBuffer:
    """The loss and learning-rate history of one job, read incrementally with get_metrics(since=)."""

    def __init__(self, job_id: str | None = None) -> None:
        self.job_id = job_id
        self.loss: list[tuple[int, float, str]] = []  # (step, value, "train" | EVAL)
        self.eval_accuracy: list[tuple[int, float]] = []  # (step, eval_mean_token_accuracy)
        self.samples = SamplesBuffer()  # the sample answers read so far (jobs_panel reads them)
        self.events = EventsTrail()  # the job's events read so far (the timeline, jobs_panel)
        self.lr: list[tuple[int, float]] = []
        self.elapsed: dict[int, float] = {}  # step -> seconds of training, summed over resumed runs
        self.recent: list[dict[str, Any]] = []  # the newest points as logged, for the metrics table
        self.last_step = -1
        self.at_last: list[dict[str, Any]] = []  # the points already read whose step == last_step
        self.final_status: str | None = None  # set once the finished job's last state was shown
        self.log_sig = ""  # what the log box shows (so an unchanged log is not sent again)
        self.plot_props: tuple[str, tuple[str, ...]] = ("step", ("train",))  # the loss plot's x and legend now
        self.resend_plot = False  # the loss plot's settings changed: send its data again
        self._run_time = (0.0, 0.0)  # (seconds of the runs before this one, the last time this run logged)

    def renew(self, job_id: str | None) -> "MetricsBuffer":
        """An empty buffer for `job_id` that knows how the loss plot is drawn now."""
        fresh = MetricsBuffer(job_id)
        fresh.plot_props, fresh.resend_plot = self.plot_props, self.resend_plot
        return fresh

    def since(self) -> int | None:
        """The `since` to ask for: one step back, so a point logged late at the last step is not missed."""
        return None if self.last_step < 0 else self.last_step - 1

    def add(self, points: list[dict[str, Any]]) -> bool:
        """Append the points not seen yet (from get_metrics(job_id, since=self.since())); True when any."""
        fresh = []
        for p in points:  # a point at the last step read may be new (logged late, or left out by max_points)
            step = int(p.get("step", 0))
            if step > self.last_step or (step == self.last_step and p not in self.at_last):
                fresh.append(p)
        for p in fresh:
            step = int(p.get("step", 0))
            if isinstance(p.get("loss"), int | float):
                self.loss.append((step, float(p["loss"]), "train"))
            if isinstance(p.get("eval_loss"), int | float):
                self.loss.append((step, float(p["eval_loss"]), EVAL))
            if isinstance(p.get("eval_mean_token_accuracy"), int | float):
                self.eval_accuracy.append((step, float(p["eval_mean_token_accuracy"])))
            if isinstance(p.get("learning_rate"), int | float):
                self.lr.append((step, float(p["learning_rate"])))
            if isinstance(p.get("time"), int | float):
                before, last = self._run_time
                if p["time"] < last:  # a resumed run counts its time from 0 again
                    before += last
                self._run_time = (before, float(p["time"]))
                self.elapsed[step] = round(before + p["time"], 3)
            self.at_last = [*self.at_last, p] if step == self.last_step else [p]
            self.last_step = step
        self.recent = (self.recent + fresh)[-50:]
        return bool(fresh)

    def legend(self, smoothing: float = 0.0) -> list[str]:
        """The loss series that have points (an empty series gets no legend entry)."""
        kinds = {q[2] for q in self.loss}
        shown = ["train", "smoothed train"] if smoothing > 0 and "train" in kinds else ["train"]
        return shown + ([EVAL] if EVAL in kinds else [])

    def loss_frame(self, smoothing: float = 0.0) -> pd.DataFrame:
        """Loss against step and elapsed seconds (train, its EMA when `smoothing` > 0, eval), at most
        MAX_PLOT_POINTS per series."""
        train = [q for q in self.loss if q[2] == "train"]
        series = {"train": train, EVAL: [q for q in self.loss if q[2] == EVAL]}
        if smoothing > 0:
            smooth = ema([q[1] for q in train], smoothing)
            series["smoothed train"] = [(q[0], v, "smoothed train") for q, v in zip(train, smooth, strict=True)]
        rows = [(math.nan, math.nan, name) for name in LOSS_SERIES]  # each series in the color domain
        rows += [q for name in LOSS_SERIES for q in decimate(series.get(name, []))]
        return pd.DataFrame({"step": pd.Series([r[0] for r in rows], dtype="float64"),
                             "elapsed": pd.Series([self.elapsed.get(r[0], math.nan) for r in rows], dtype="float64"),
                             "loss": pd.Series([r[1] for r in rows], dtype="float64"),
                             "series": pd.Series([r[2] for r in rows], dtype="str")})

    def lr_frame(self) -> pd.DataFrame:
        """Learning rate against step, at most MAX_PLOT_POINTS."""
        return plot_frame(decimate(self.lr), "learning_rate")


def plot_frame(rows: list[tuple[Any, ...]], y: str, color: str | None = None,
               series: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """(step, y[, color]) rows as a frame for gr.LinePlot, numeric even when empty.

    gr.LinePlot fixes its axis types and its color domain from the data it first draws and only
    swaps the data afterwards; so `series` adds one empty (NaN) row per series name, which the chart
    skips when drawing but keeps in its color domain.
    """
    rows = [(math.nan, math.nan, name) for name in series] + list(rows)
    columns = {"step": pd.Series([r[0] for r in rows], dtype="float64"),
               y: pd.Series([r[1] for r in rows], dtype="float64")}
    if color:
        columns[color] = pd.Series([r[2] for r in rows], dtype="str")
    return pd.DataFrame(columns)


def compare_frame(curves: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """Train loss of several jobs, one series per job label; ≤ MAX_PLOT_POINTS in all."""
    per_job = compare_points(len(curves))
    rows = []
    for label, points in curves.items():
        losses = [(int(p["step"]), float(p["loss"]), label) for p in points if isinstance(p.get("loss"), int | float)]
        rows.extend(decimate(losses, per_job))
    return plot_frame(rows, "loss", "job", list(curves))


# --- data preview ---
_BOX = "white-space:pre-wrap;font-family:monospace;font-size:0.85em;padding:6px;border-radius:4px;margin:2px 0"


def preview_html(rows: list[dict[str, Any]]) -> str:
    """The preview rows: the prompt (no loss) in grey, the part that carries the loss in green."""
    if not rows:
        return "<p>The data set has no rows.</p>"
    parts = ['<div id="data-preview">']
    for i, row in enumerate(rows, 1):
        all_tokens = row.get("loss_on") == "all tokens" or not row.get("prompt")
        note = " (truncated to max_seq_length)" if row.get("truncated") else ""
        parts.append(f"<p><b>Row {i}</b> · {row['tokens']} tokens{note} · loss on {row['loss_tokens']} tokens "
                     f"({escape(str(row.get('loss_on', '')))})</p>")
        if all_tokens:
            parts.append(f'<div style="{_BOX};background:#dcfce7" title="carries the loss">'
                         f"{escape(row.get('text') or row.get('response', ''))}</div>")
        else:
            parts.append(f'<div style="{_BOX};background:#f3f4f6;color:#4b5563" title="prompt: no loss">'
                         f"{escape(row['prompt'])}</div>")
            parts.append(f'<div style="{_BOX};background:#dcfce7" title="response: carries the loss">'
                         f"{escape(row['response'])}</div>")
    parts.append('<p style="font-size:0.85em">Grey: prompt, no loss. Green: the tokens the loss is computed on.</p>')
    return "".join(parts) + "</div>"


def message_html(text: str, kind: str = "info") -> str:
    """A short colored notice shown next to the form ('error', 'ok' or 'info')."""
    if not text:
        return ""
    style = {"error": "background:#fee2e2;color:#991b1b;border:1px solid #fca5a5",
             "ok": "background:#dcfce7;color:#166534;border:1px solid #86efac",
             "info": "background:#e0f2fe;color:#075985;border:1px solid #7dd3fc"}[kind]
    lines = "<br>".join(escape(line) for line in text.split("\n"))
    return f'<div class="sft-msg sft-msg-{kind}" style="{style};padding:8px 10px;border-radius:6px">{lines}</div>'


def error_lines(message: str) -> str:
    """describe_errors' '; '-joined message as one line per field."""
    return message.replace("; ", "\n")


def restore_banner(restored: dict[str, Any] | None) -> str:
    """What a restore of a damaged database did, for the top of the page; '' when none happened."""
    if not restored:
        return ""
    kept = ", ".join(restored.get("moved_aside") or []) or "nothing"
    text = (f"The job database could not be read at start ({restored.get('reason')}) and was restored at "
            f"{restored.get('at')}: {restored.get('jobs_rebuilt', 0)} job records were rebuilt from the job "
            f"folders and {restored.get('configs', 0)} saved configs came from "
            f"{restored.get('configs_from') or 'nowhere (no readable copy)'}"
            f"{_skipped(restored.get('journal_lines_skipped'))}.\nThe damaged files were kept in "
            f"the data dir's .sft_ui folder: {kept}.")
    return message_html(text, "error")


def _skipped(lines: int | None) -> str:
    """The restore banner's note of unreadable journal lines (each one a change that was lost)."""
    return f"; {lines} unreadable journal line(s), each one change, could not be restored" if lines else ""
